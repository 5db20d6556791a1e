"""Import networks from PyTorch (`from_torch`) and ONNX (`from_onnx`) as jaxcim networks (nnx modules whose
weight-stationary matrix products run on crossbars); see `jaxcim.nn.importers.network`."""

from jaxcim.nn.importers.network import DigitalMatmul, ImportedNetwork, layer_names
from jaxcim.nn.importers.onnx_graph import from_onnx
from jaxcim.nn.importers.torch_graph import from_torch, to_torch_state_dict

__all__ = ["DigitalMatmul", "ImportedNetwork", "from_onnx", "from_torch", "layer_names", "to_torch_state_dict"]
