"""The network an importer builds: an nnx module that runs a captured graph, step by step, in JAX.

Every weight-stationary matrix product of the source graph (a dense layer, a convolution, a recurrent cell's
input and hidden projections, a matrix product with a constant operand) becomes an ``nnx.Linear`` or
``nnx.Conv`` in ``net.layers`` (a dict keyed by the source's layer name), so `jaxcim.nn.analogize`,
`jaxcim.nn.evaluate` and `jaxcim.nn.fit` map them onto crossbars like the layers of a hand-written model.
Layers the user keeps digital become `DigitalMatmul` (never converted). Everything else runs digitally in
the periphery: normalization, activations, pooling, residual additions, softmax and products of two
activations (attention scores), as on NeuRRAM and IBM HERMES, where only the weight matrices are stored in
the arrays.

The graph is a static tuple of `Step`; the remaining weights (normalization scales, embeddings) are
``nnx.Param`` in ``net.params`` and the buffers (running statistics) are `Buffer` variables in
``net.buffers``, keyed by their source names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


class Buffer(nnx.Variable):
    """A non-trainable tensor of the source network (batch-norm running statistics, constants)."""


@dataclasses.dataclass(frozen=True)
class Ref:
    """A reference to a value of the graph: ``"env"`` (a step's output or an input), ``"param"`` or
    ``"buffer"`` (``net.params``/``net.buffers``)."""

    name: str
    kind: str = "env"


@dataclasses.dataclass(frozen=True)
class Step:
    """One operation: ``outputs = op(*args, **kwargs)`` with `Ref` leaves resolved at run time.

    Attributes:
      out: name of the output in the environment.
      op: key of the operation in the importer's op table, or ``"layer"``/``"recurrent"`` (weight-stationary).
      args: positional arguments (nested tuples of constants and `Ref`).
      kwargs: keyword arguments as sorted (name, value) pairs.
      node: the source node's name (for error messages).
    """

    out: str
    op: str
    args: tuple
    kwargs: tuple = ()
    node: str = ""


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """How a layer of ``net.layers`` maps back to the source's weights.

    Attributes:
      name: key in ``net.layers`` (for a grouped convolution, the keys are ``name#g0``, ``name#g1``, ...).
      weight: the source's weight name; bias: the bias name or None.
      kind: ``"linear"`` (kernel = weight.T), ``"matmul"`` (kernel = weight) or ``"conv"``.
      groups: convolution groups (one crossbar matrix per group).
    """

    name: str
    weight: str
    bias: str | None
    kind: str
    groups: int = 1


class DigitalMatmul(nnx.Module):
    """A weight-stationary product kept digital (``digital=`` of the importers): never converted to analog.

    Args:
      kernel: (in, out) for a dense product, (*kernel_size, in, out) for a convolution (channels-last).
      bias: (out,) or None.
      conv: None for a dense product; else (strides, padding pairs, kernel_dilation) of the convolution.
    """

    def __init__(self, kernel: Any, bias: Any, conv: tuple | None = None):
        self.kernel = nnx.Param(jnp.asarray(kernel))
        self.bias = nnx.Param(jnp.asarray(bias)) if bias is not None else nnx.data(None)
        self.conv = conv

    def __call__(self, x: jax.Array) -> jax.Array:
        k = self.kernel[...]
        if self.conv is None:
            y = jnp.matmul(x, k)
        else:
            strides, padding, dilation = self.conv
            n = len(strides)
            spatial = "".join(chr(ord("a") + i) for i in range(n))
            dn = jax.lax.conv_dimension_numbers(x.shape, k.shape, ("N" + spatial + "C", spatial + "IO",
                                                                   "N" + spatial + "C"))
            y = jax.lax.conv_general_dilated(x, k, strides, padding, rhs_dilation=dilation, dimension_numbers=dn)
        return y + self.bias[...] if self.bias is not None else y


def linear_layer(kernel: np.ndarray, bias: np.ndarray | None, digital: bool) -> nnx.Module:
    """An ``nnx.Linear`` (or `DigitalMatmul`) holding ``kernel`` (in, out) and ``bias`` (out,)."""
    kernel = np.asarray(kernel, np.float32)
    if digital:
        return DigitalMatmul(kernel, None if bias is None else np.asarray(bias, np.float32))
    layer = nnx.Linear(kernel.shape[0], kernel.shape[1], use_bias=bias is not None, rngs=nnx.Rngs(0),
                       kernel_init=_zeros, bias_init=_zeros)
    layer.kernel[...] = jnp.asarray(kernel)
    if bias is not None:
        layer.bias[...] = jnp.asarray(bias, jnp.float32)
    return layer


def conv_layer(kernel: np.ndarray, bias: np.ndarray | None, strides: Sequence[int], padding: Any,
               dilation: Sequence[int], digital: bool) -> nnx.Module:
    """An ``nnx.Conv`` (or `DigitalMatmul`) of a channels-last kernel (*kernel_size, in, out)."""
    kernel = np.asarray(kernel, np.float32)
    n = kernel.ndim - 2
    if digital:
        return DigitalMatmul(kernel, None if bias is None else np.asarray(bias, np.float32),
                             conv=(tuple(strides), padding, tuple(dilation)))
    layer = nnx.Conv(kernel.shape[-2], kernel.shape[-1], kernel.shape[:n], tuple(strides), padding=padding,
                     kernel_dilation=tuple(dilation), use_bias=bias is not None, rngs=nnx.Rngs(0),
                     kernel_init=_zeros, bias_init=_zeros)
    layer.kernel[...] = jnp.asarray(kernel)
    if bias is not None:
        layer.bias[...] = jnp.asarray(bias, jnp.float32)
    return layer


def _zeros(key: Any, shape: Sequence[int], dtype: Any) -> jax.Array:
    return jnp.zeros(shape, dtype)


def resolve_digital(digital: Sequence[str] | str, names: Sequence[str]) -> set[str]:
    """The layer names kept digital: every name equal to an entry of ``digital`` or below it (``entry.``)."""
    if isinstance(digital, str):
        digital = (digital,)
    keep = set()
    for d in digital:
        if not isinstance(d, str):
            raise TypeError(f"digital must be layer names (str), got {type(d).__name__} {d!r}")
        hit = {n for n in names if n == d or n.startswith(d + ".")}
        if not hit:
            raise ValueError(f"digital: no weight-stationary layer named {d!r} (or below it); layers: "
                             f"{', '.join(names)}")
        keep |= hit
    return keep


class ImportedNetwork(nnx.Module):
    """A network imported from PyTorch or ONNX (see the module docstring); call it like the source.

    Attributes:
      layers: ``nnx.Dict`` of the weight-stationary layers (``nnx.Linear``/``nnx.Conv``/`DigitalMatmul`, or
        their analog versions after `jaxcim.nn.analogize`), keyed by the source layer name.
      params, buffers: the other weights and buffers, keyed by the source names.
      steps: the graph (static).
      specs: how each layer maps back to the source weights (`LayerSpec`).
    """

    def __init__(self, layers: Mapping[str, nnx.Module], params: Mapping[str, Any], buffers: Mapping[str, Any],
                 steps: Sequence[Step], inputs: Sequence[str], output: Any, specs: Sequence[LayerSpec],
                 ops: str, source: str):
        self.layers = nnx.Dict(dict(layers))
        self.params = nnx.Dict({k: nnx.Param(jnp.asarray(v)) for k, v in params.items()})
        self.buffers = nnx.Dict({k: Buffer(jnp.asarray(v)) for k, v in buffers.items()})
        self.steps = tuple(steps)
        self.inputs = tuple(inputs)
        self.output = output
        self.specs = tuple(specs)
        self.ops = ops
        self.source = source

    def __call__(self, *inputs: Any) -> Any:
        """Run the graph on ``inputs`` (the source's layout, e.g. NCHW images for a torch CNN)."""
        if len(inputs) != len(self.inputs):
            raise TypeError(f"{self.source} network takes {len(self.inputs)} input(s) "
                            f"({', '.join(self.inputs)}), got {len(inputs)}")
        table = OP_TABLES[self.ops]
        env: dict[str, Any] = dict(zip(self.inputs, inputs, strict=True))

        def get(r: Any) -> Any:
            if isinstance(r, Ref):
                if r.kind == "param":
                    return self.params[r.name][...]
                if r.kind == "buffer":
                    return self.buffers[r.name][...]
                return env[r.name]
            if isinstance(r, tuple):
                return tuple(get(a) for a in r)
            return r

        for s in self.steps:
            args = get(s.args)
            kwargs = {k: get(v) for k, v in s.kwargs}
            if s.op in ("layer", "recurrent"):
                env[s.out] = table[s.op](self.layers, *args, **kwargs)
            else:
                env[s.out] = table[s.op](*args, **kwargs)
        return get(self.output)


OP_TABLES: dict[str, dict[str, Callable[..., Any]]] = {}
"""Op tables of the importers by name (``"torch"``, ``"onnx"``): op name -> JAX implementation."""


def layer_names(net: ImportedNetwork) -> list[str]:
    """The keys of ``net.layers`` (weight-stationary layers), in graph order."""
    return list(net.layers.keys())


__all__ = ["Buffer", "DigitalMatmul", "ImportedNetwork", "LayerSpec", "Ref", "Step", "conv_layer",
           "layer_names", "linear_layer", "resolve_digital"]
