"""Analog neural networks in flax NNX: analog layers, conversion of trained models, hardware-aware
training and accuracy over chip instances and time.

    model = jc.nn.MLP((64, 64, 10), rngs=nnx.Rngs(0))
    jc.nn.fit(model, (x_train, y_train), key=k)                              # digital training
    hwa = jc.nn.analogize(model, cfg)                                          # nnx.Linear -> AnalogLinear
    jc.nn.fit(hwa, (x_train, y_train), key=k, clip_sigma=2.5)                  # hardware-aware fine-tuning
    res = jc.nn.evaluate(hwa, cfg, (x_test, y_test), key=k, n_instances=1024, times=(1.0, 86400.0))

    net = jc.nn.from_torch(torch_model.eval(), torch.randn(2, 3, 32, 32), digital=("conv1", "fc"))
    res = jc.nn.evaluate(net, cfg, jc.nn.collect(test_loader), key=k, n_instances=1000)
    torch_model.load_state_dict(jc.nn.to_torch_state_dict(net))
"""

from jaxcim.nn.convert import analogize, convertible_layers
from jaxcim.nn.data import Digits, collect, load_cifar, load_digits, load_mnist
from jaxcim.nn.evaluate import AccuracyResult, EvaluationPlan, accuracy, evaluate, plan_evaluation
from jaxcim.nn.importers import DigitalMatmul, ImportedNetwork, from_onnx, from_torch, to_torch_state_dict
from jaxcim.nn.layers import (
    MODES,
    AnalogConv,
    AnalogLinear,
    analog_layers,
    clip_weights,
    program,
    set_mode,
    set_time,
)
from jaxcim.nn.models import CNN, MLP
from jaxcim.nn.train import fit

__all__ = [
    "CNN",
    "MLP",
    "MODES",
    "AccuracyResult",
    "AnalogConv",
    "AnalogLinear",
    "DigitalMatmul",
    "EvaluationPlan",
    "Digits",
    "ImportedNetwork",
    "accuracy",
    "analog_layers",
    "analogize",
    "clip_weights",
    "collect",
    "convertible_layers",
    "evaluate",
    "fit",
    "from_onnx",
    "from_torch",
    "load_cifar",
    "load_digits",
    "load_mnist",
    "plan_evaluation",
    "program",
    "set_mode",
    "set_time",
    "to_torch_state_dict",
]
