"""Convert the dense and convolution layers of a trained flax NNX model to analog layers.

    analog = jc.nn.analogize(model, jc.presets.get("pcm-ibm"))                  # every nnx.Linear/nnx.Conv
    analog = jc.nn.analogize(model, {"layers/0": None, "layers/1": cfg})         # per layer; None = digital
    analog = jc.nn.analogize(model, lambda path, layer: None if path == "head" else cfg)

Layer paths are the ``nnx.iter_graph`` paths joined by ``/`` (attribute names and list indices);
`convertible_layers` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jaxcim.config import CrossbarConfig
from jaxcim.nn.layers import ANALOG_LAYERS, AnalogConv, AnalogLinear, check_mode, path_str

CONVERTIBLE = (nnx.Linear, nnx.Conv, AnalogLinear, AnalogConv)

CfgSpec = CrossbarConfig | Mapping[Any, CrossbarConfig | None] | Callable[[str, nnx.Module], CrossbarConfig | None]


def convertible_layers(model: Any) -> list[tuple[str, nnx.Module]]:
    """(path, layer) of every ``nnx.Linear``, ``nnx.Conv``, `AnalogLinear` and `AnalogConv` in ``model``."""
    return [(path_str(p), node) for p, node in nnx.iter_graph(model) if isinstance(node, CONVERTIBLE)]


def _copy_params(src: nnx.Module, dst: nnx.Module) -> nnx.Module:
    dst.kernel = nnx.Param(jnp.asarray(src.kernel[...]))
    if src.bias is not None:
        dst.bias = nnx.Param(jnp.asarray(src.bias[...]))
    return dst


def _conv_kwargs(layer: nnx.Module, path: str) -> dict[str, Any]:
    if isinstance(layer, nnx.Conv):
        if layer.feature_group_count != 1:
            raise ValueError(f"layer {path!r}: grouped convolutions (feature_group_count = "
                             f"{layer.feature_group_count}) are not supported by AnalogConv")
        if layer.mask is not None:
            raise ValueError(f"layer {path!r}: masked convolutions are not supported by AnalogConv")
    return dict(kernel_size=layer.kernel_size, strides=layer.strides, padding=layer.padding,
                input_dilation=layer.input_dilation, kernel_dilation=layer.kernel_dilation)


def _to_analog(layer: nnx.Module, path: str, cfg: CrossbarConfig, mode: str, t: float,
               rngs: nnx.Rngs) -> nnx.Module:
    common = dict(use_bias=layer.bias is not None, dtype=layer.dtype, param_dtype=layer.param_dtype,
                  precision=layer.precision, cfg=cfg, mode=mode, t=t, rngs=rngs,
                  kernel_init=lambda k, s, d: jnp.zeros(s, d), bias_init=lambda k, s, d: jnp.zeros(s, d))
    if isinstance(layer, nnx.Linear | AnalogLinear):
        new = AnalogLinear(layer.in_features, layer.out_features, **common)
    else:
        new = AnalogConv(layer.in_features, layer.out_features, **_conv_kwargs(layer, path), **common)
    return _copy_params(layer, new)


def _to_digital(layer: nnx.Module, rngs: nnx.Rngs) -> nnx.Module:
    if not isinstance(layer, ANALOG_LAYERS):
        return layer
    common = dict(use_bias=layer.bias is not None, dtype=layer.dtype, param_dtype=layer.param_dtype,
                  precision=layer.precision, rngs=rngs)
    if isinstance(layer, AnalogLinear):
        new = nnx.Linear(layer.in_features, layer.out_features, **common)
    else:
        new = nnx.Conv(layer.in_features, layer.out_features, layer.kernel_size, layer.strides,
                       padding=layer.padding, input_dilation=layer.input_dilation,
                       kernel_dilation=layer.kernel_dilation, **common)
    return _copy_params(layer, new)


def _resolver(cfg: Any, paths: list[str]) -> Callable[[str, nnx.Module], Any]:
    """A function (path, layer) -> CrossbarConfig (analog), None (digital) or ... (unchanged)."""
    if isinstance(cfg, CrossbarConfig):
        return lambda path, layer: cfg
    if isinstance(cfg, Mapping):
        table = {}
        for k, v in cfg.items():
            key = path_str(k) if isinstance(k, tuple) else k
            if not isinstance(key, str) or key not in paths:
                raise ValueError(f"analogize: no Linear/Conv layer at path {k!r}; layers: {', '.join(paths)}")
            if v is not None and not isinstance(v, CrossbarConfig):
                raise TypeError(f"analogize: cfg[{k!r}] must be a CrossbarConfig or None (digital), "
                                f"got {type(v).__name__}")
            table[key] = v
        return lambda path, layer: table.get(path, ...)
    if callable(cfg):
        def call(path, layer):
            v = cfg(path, layer)
            if v is not None and not isinstance(v, CrossbarConfig):
                raise TypeError(f"analogize: cfg({path!r}, layer) must return a CrossbarConfig or None "
                                f"(digital), got {type(v).__name__}")
            return v
        return call
    raise TypeError("cfg must be a CrossbarConfig, a dict {layer path: CrossbarConfig or None} or a callable "
                    f"(path, layer) -> CrossbarConfig or None; got {type(cfg).__name__}")


def _set_child(parent: Any, name: Any, value: Any) -> None:
    if isinstance(name, int) or isinstance(parent, Mapping):
        parent[name] = value
    else:
        setattr(parent, name, value)


def analogize(model: Any, cfg: CfgSpec, *, mode: str = "hwa", t: float = 0.0,
              rngs: nnx.Rngs | None = None) -> Any:
    """A copy of ``model`` whose ``nnx.Linear``/``nnx.Conv`` layers run on simulated crossbars.

    Args:
      model: an nnx model (or a single layer). It is not modified; the copy shares no mutable state with it.
      cfg: a `CrossbarConfig` for every layer; or a dict ``{path: cfg or None}`` (layers not listed are left
        as they are, ``None`` makes a layer digital); or a callable ``(path, layer) -> cfg or None``. Paths
        are ``"/"``-joined graph paths, e.g. ``"layers/0"`` (see `convertible_layers`). Layers that are
        already analog get the new config (mode and read time reset), or become digital with ``None``.
      mode: mode of the converted layers, ``"hwa"`` (default: every call is a fresh chip instance, for
        hardware-aware training), ``"analog"`` (after `jaxcim.nn.program`) or ``"digital"``.
      t: read time after programming of the converted layers, s.
      rngs: keys of the ``"hwa"`` noise streams (``noise`` stream, else ``default``); default ``nnx.Rngs(0)``.

    Returns:
      The converted model (a new object), or the new layer if ``model`` itself is a layer.
    """
    check_mode(mode)
    rngs = nnx.Rngs(0) if rngs is None else rngs
    if not isinstance(rngs, nnx.Rngs):
        raise TypeError(f"rngs must be nnx.Rngs, got {type(rngs).__name__}")
    model = nnx.clone(model)
    found = [(p, node) for p, node in nnx.iter_graph(model) if isinstance(node, CONVERTIBLE)]
    if not found:
        raise ValueError("analogize: the model has no nnx.Linear or nnx.Conv layers")
    resolve = _resolver(cfg, [path_str(p) for p, _ in found])
    for path, layer in found:
        spec = resolve(path_str(path), layer)
        if spec is ...:
            continue
        new = _to_digital(layer, rngs) if spec is None else _to_analog(layer, path_str(path), spec, mode, t, rngs)
        if not path:
            return new
        parent = model
        for p in path[:-1]:
            parent = parent[p] if isinstance(p, int) or isinstance(parent, Mapping) else getattr(parent, p)
        _set_child(parent, path[-1], new)
    return model


__all__ = ["analogize", "convertible_layers"]
