"""Analog layers for flax NNX: `AnalogLinear` and `AnalogConv`.

The trainable parameters are the digital weights (``kernel``, ``bias``), as in ``nnx.Linear``/``nnx.Conv``.
The forward pass sends the matrix product through the crossbar data path of `jaxcim.core` (mapping onto
``rows x cols`` arrays, programming noise, drift, read noise, DAC, circuit, ADC); the bias is added digitally
in the periphery, as on NeuRRAM and IBM HERMES. A convolution is the same matrix product on im2col patches:
``patches (batch * positions, kh * kw * cin) @ kernel matrix (kh * kw * cin, cout)``.

A layer is in one of three modes (a static attribute, ``layer.mode``; set it for a whole model with
`set_mode` or ``nnx.view(model, analog_mode=...)``):

- ``"digital"``: ``x @ w + b`` exactly, the config unused (digital training, reference accuracy).
- ``"hwa"``: hardware-aware training. Every call programs a fresh chip instance with a key from the layer's
  ``noise`` rng stream and reads it at ``layer.t``: programming noise from the device model (reparameterized,
  so ``grad`` flows to the weights), straight-through DAC/ADC quantizers, ADC range calibrated on the batch.
- ``"analog"``: inference on a programmed instance: `program` writes every layer once (its ADC range
  calibrated on the layer's own inputs), then each call reads the stored conductances at time ``layer.t``
  (`set_time`), with drift and read noise (and global drift compensation if ``cfg.drift_compensation``).

Functions act in place on a model (nnx style) and trace under ``jax.jit``/``jax.vmap`` through
``nnx.split``/``nnx.merge``; `jaxcim.nn.evaluate` vmaps them over chip instances.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes, initializers

from jaxcim import checks, core
from jaxcim.config import CrossbarConfig

MODES = ("digital", "hwa", "analog")
"""Forward-pass modes of an analog layer (see the module docstring)."""

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()


SHAPE_LOG: contextvars.ContextVar[list | None] = contextvars.ContextVar("jaxcim_nn_shape_log", default=None)
"""When set to a list, every analog matrix product appends (cfg, rows of inputs, in, out, inputs) to it when
traced (`jaxcim.nn.evaluate` sizes its chunks from this and checks that input rows are example-major)."""


@dataclasses.dataclass(frozen=True)
class Segments:
    """The layout of a streamed model call (`jaxcim.nn.evaluate` with layer streaming).

    The model's input stacks, along the example axis, ``n_calib`` calibration examples and then ``len(times)``
    blocks of ``n_block`` examples. Every analog layer splits its input rows in the same proportions (its rows
    must be example-major: ``rows = examples * rows per example``), programs itself on its first call with its
    ADC calibrated on the calibration rows, reads them at t = 0 and block ``k`` at ``times[k]``, all with the
    layer's one read key: the reads `program` and the ``"analog"`` mode do one after the other, for one layer
    at a time, so that a chip's programmed layers need not all be held at once.

    Attributes:
      n_calib: calibration examples (first in the input).
      n_block: examples per read block.
      times: read time of each block, s, (n_blocks,) (may be traced).
    """

    n_calib: int
    n_block: int
    times: Any


SEGMENTS: contextvars.ContextVar[Segments | None] = contextvars.ContextVar("jaxcim_nn_segments", default=None)
"""When set, analog layers in ``"analog"`` mode read their inputs as the stacked `Segments`."""


class Crossbar(nnx.Variable):
    """The programmed `jaxcim.CrossbarState` of a layer (None until `program`)."""


class InstanceKey(nnx.Variable):
    """The key of the chip instance a layer was programmed as (None until `program`)."""


class ReadTime(nnx.Variable):
    """Time since programming at which the layer is read, s (a scalar array, traceable)."""


def _check_cfg(cfg: Any, owner: str) -> None:
    if not isinstance(cfg, CrossbarConfig):
        raise TypeError(f"{owner}: cfg must be a jaxcim CrossbarConfig (e.g. jc.presets.get('reram-neurram')), "
                        f"got {type(cfg).__name__}")


def check_mode(mode: Any) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")


def _check_features(owner: str, **features: Any) -> None:
    for name, v in features.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{owner}.{name} must be a positive integer, got {v!r}")


def _noise_stream(rngs: nnx.Rngs | nnx.RngStream | None) -> Any:
    if isinstance(rngs, nnx.Rngs):
        return rngs["noise"].fork()  # falls back to the "default" stream when there is no "noise" stream
    if isinstance(rngs, nnx.RngStream):
        return rngs.fork()
    if rngs is None:
        return nnx.data(None)
    raise TypeError(f"rngs must be nnx.Rngs, nnx.RngStream or None, got {type(rngs).__name__}")


class _AnalogMatmul(nnx.Module):
    """Shared state and the crossbar matrix product of the analog layers."""

    def _init_analog(self, cfg: CrossbarConfig, mode: str, t: float, rngs: Any) -> None:
        _check_cfg(cfg, type(self).__name__)
        check_mode(mode)
        checks.check_t(t)
        self.cfg = cfg
        self.mode = mode
        self.t = ReadTime(jnp.asarray(t, jnp.float32))
        self.crossbar = Crossbar(None)
        self.key = InstanceKey(None)
        self.rngs = _noise_stream(rngs)

    def set_view(self, analog_mode: str | None = None) -> None:
        """``nnx.view(model, analog_mode="digital")``: a view of the model in another mode.

        Args:
          analog_mode: ``"digital"``, ``"hwa"`` or ``"analog"``; None leaves the mode as it is.
        """
        if analog_mode is not None:
            check_mode(analog_mode)
            self.mode = analog_mode

    def _matmul(self, u: jax.Array, w: jax.Array) -> jax.Array:
        """u (n, in) @ w (in, out) in the current mode; u and w share a float dtype."""
        log = SHAPE_LOG.get()
        if log is not None:
            log.append((self.cfg, u.shape[0], w.shape[0], w.shape[1], u))
        if self.mode == "digital":
            return jnp.matmul(u, w, precision=self.precision)
        if self.mode == "hwa":
            if self.rngs is None:
                raise ValueError(f"{type(self).__name__} in 'hwa' mode needs an rng stream: build it with "
                                 "rngs=nnx.Rngs(params=..., noise=...) or pass rngs to jc.nn.analogize")
            t = self.t.get_value().astype(w.dtype)
            return core.simulate(self.cfg, w, u, key=self.rngs(), t=t)
        key = self.key.get_value()
        if key is None:
            raise ValueError(f"{type(self).__name__} is in 'analog' mode but not programmed: call "
                             "jc.nn.program(model, x_calib, key=...) first (or use mode 'hwa')")
        k_prog, k_read = jax.random.split(key)
        seg = SEGMENTS.get()
        if seg is not None:
            return self._read_segments(u, w, k_prog, k_read, seg)
        state = self.crossbar.get_value()
        if state is None:
            # ADC range calibrated on this layer's own inputs (NeuRRAM calibrates per layer from data).
            state = core.program(self.cfg, w, key=k_prog, x_calib=u)
            self.crossbar.set_value(state)
        t = self.t.get_value().astype(state.g_pos.dtype)
        return core.read(self.cfg, state, u.astype(state.g_pos.dtype), key=k_read, t=t).astype(u.dtype)

    def _read_segments(self, u: jax.Array, w: jax.Array, k_prog: jax.Array, k_read: jax.Array,
                       seg: Segments) -> jax.Array:
        """The ``"analog"`` read of the stacked `Segments` ``u`` (n, in): program on the first call, then the
        calibration rows at t = 0 and each block at its time (one layer's conductances live at a time)."""
        n_blocks = seg.times.shape[0]
        examples = seg.n_calib + seg.n_block * n_blocks
        if u.shape[0] % examples:
            raise ValueError(f"{type(self).__name__}: {u.shape[0]} input rows are not a whole number per example "
                             f"of the {examples} stacked examples (streamed evaluation needs example-major rows)")
        per = u.shape[0] // examples
        state = self.crossbar.get_value()
        calib = u[: seg.n_calib * per]
        if state is None:
            state = core.program(self.cfg, w, key=k_prog, x_calib=calib)
            self.crossbar.set_value(state)
        dtype = state.g_pos.dtype
        y_calib = core.read(self.cfg, state, calib.astype(dtype), key=k_read, t=jnp.zeros((), dtype))
        blocks = u[seg.n_calib * per:].reshape(n_blocks, seg.n_block * per, u.shape[1]).astype(dtype)

        def block(args):
            x, t = args
            return core.read(self.cfg, state, x, key=k_read, t=t.astype(dtype))

        y = jax.lax.map(block, (blocks, jnp.asarray(seg.times, jnp.float32)))
        return jnp.concatenate([y_calib, y.reshape(-1, y.shape[-1])]).astype(u.dtype)


class AnalogLinear(_AnalogMatmul):
    """A dense layer whose matrix product runs on simulated crossbars: ``y = x @ kernel + bias``.

    Constructor conventions follow ``nnx.Linear``, plus the crossbar config, the mode and the read time.

    Args:
      in_features: input features.
      out_features: output features.
      cfg: the crossbar config the kernel is mapped onto (tiled onto ``rows x cols`` arrays as needed).
      use_bias: add a digital bias.
      dtype: computation dtype (default: inferred from inputs and params).
      param_dtype: parameter dtype.
      precision: matmul precision of the ``"digital"`` mode.
      kernel_init, bias_init: initializers, as ``nnx.Linear``.
      mode: ``"digital"``, ``"hwa"`` (default) or ``"analog"``, see `jaxcim.nn.layers`.
      t: read time after programming, s (``"hwa"`` and ``"analog"`` modes).
      rngs: ``nnx.Rngs``: ``params`` initializes the weights, ``noise`` (or ``default``) keys the chip
        instances drawn in ``"hwa"`` mode.

    Shapes: inputs (..., in_features) -> outputs (..., out_features).
    """

    def __init__(
        self, in_features: int, out_features: int, *, cfg: CrossbarConfig, use_bias: bool = True,
        dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None,
        kernel_init: Any = default_kernel_init, bias_init: Any = default_bias_init, mode: str = "hwa",
        t: float = 0.0, rngs: nnx.Rngs,
    ):
        _check_features("AnalogLinear", in_features=in_features, out_features=out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), (in_features, out_features), param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else \
            nnx.data(None)
        self.in_features = in_features
        self.out_features = out_features
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self._init_analog(cfg, mode, t, rngs)

    def kernel_matrix(self) -> jax.Array:
        """The (in_features, out_features) matrix mapped onto the crossbars."""
        return self.kernel[...]

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the layer: x (..., in_features) -> (..., out_features)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"AnalogLinear: inputs have {x.shape[-1]} features in the last axis, "
                             f"in_features = {self.in_features}")
        bias = self.bias[...] if self.bias is not None else None
        x, w, bias = dtypes.promote_dtype((x, self.kernel[...], bias), dtype=self.dtype)
        lead = x.shape[:-1]
        y = self._matmul(x.reshape(-1, self.in_features), w).reshape(lead + (self.out_features,))
        return y + bias if bias is not None else y


def _tuple(v: Any, n: int, name: str) -> tuple[int, ...]:
    if v is None:
        v = 1
    if isinstance(v, int):
        return (v,) * n
    v = tuple(v)
    if len(v) != n:
        raise ValueError(f"AnalogConv.{name} must be an int or a sequence of {n} ints, got {v!r}")
    return v


class AnalogConv(_AnalogMatmul):
    """A convolution whose matrix product runs on simulated crossbars (im2col).

    The inputs are cut into patches ``(batch * output positions, prod(kernel_size) * in_features)`` and
    multiplied by the kernel matrix ``(prod(kernel_size) * in_features, out_features)`` on the crossbars
    (every patch is one input vector of one read). Constructor conventions follow ``nnx.Conv``
    (channels-last inputs ``(*batch, *spatial, features)``), plus the crossbar config, mode and read time.

    Args:
      in_features, out_features: input and output channels.
      kernel_size: int or one int per spatial dimension.
      strides: int or one per spatial dimension.
      padding: ``"SAME"``, ``"VALID"``, ``"SAME_LOWER"``, ``"CIRCULAR"``, ``"REFLECT"``, ``"CAUSAL"`` (1-d),
        an int, or ``(low, high)`` pairs per spatial dimension, as ``nnx.Conv``.
      input_dilation, kernel_dilation: as ``nnx.Conv``.
      cfg, use_bias, dtype, param_dtype, precision, kernel_init, bias_init, mode, t, rngs: as `AnalogLinear`.
    """

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
        strides: int | Sequence[int] | None = 1, *, cfg: CrossbarConfig, padding: Any = "SAME",
        input_dilation: int | Sequence[int] | None = 1, kernel_dilation: int | Sequence[int] | None = 1,
        use_bias: bool = True, dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None,
        kernel_init: Any = default_kernel_init, bias_init: Any = default_bias_init, mode: str = "hwa",
        t: float = 0.0, rngs: nnx.Rngs,
    ):
        _check_features("AnalogConv", in_features=in_features, out_features=out_features)
        kernel_size = (kernel_size,) if isinstance(kernel_size, int) else tuple(kernel_size)
        if not kernel_size or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in kernel_size):
            raise ValueError(f"AnalogConv.kernel_size must be positive ints, got {kernel_size!r}")
        n = len(kernel_size)
        self.kernel_shape = kernel_size + (in_features, out_features)
        self.kernel = nnx.Param(kernel_init(rngs.params(), self.kernel_shape, param_dtype))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), param_dtype)) if use_bias else \
            nnx.data(None)
        self.in_features = in_features
        self.out_features = out_features
        self.kernel_size = kernel_size
        self.strides = _tuple(strides, n, "strides")
        self.padding = padding
        self.input_dilation = _tuple(input_dilation, n, "input_dilation")
        self.kernel_dilation = _tuple(kernel_dilation, n, "kernel_dilation")
        self._padding_lax(check=True)
        self.use_bias = use_bias
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.precision = precision
        self._init_analog(cfg, mode, t, rngs)

    def _padding_lax(self, check: bool = False) -> Any:
        p, n = self.padding, len(self.kernel_size)
        if isinstance(p, str):
            if p not in ("SAME", "VALID", "SAME_LOWER", "CIRCULAR", "REFLECT", "CAUSAL"):
                raise ValueError(f"AnalogConv.padding must be 'SAME', 'VALID', 'SAME_LOWER', 'CIRCULAR', "
                                 f"'REFLECT', 'CAUSAL', an int or (low, high) pairs; got {p!r}")
            if p == "CAUSAL" and n != 1:
                raise ValueError("AnalogConv.padding 'CAUSAL' is only defined for 1-d convolutions")
            return p
        if isinstance(p, int):
            return [(p, p)] * n
        if isinstance(p, Sequence) and len(p) == n:
            out = [(q, q) if isinstance(q, int) else tuple(q) for q in p]
            if all(len(q) == 2 for q in out):
                return out
        raise ValueError(f"AnalogConv.padding must be a string, an int or {n} (low, high) pairs; got {p!r}")

    def kernel_matrix(self) -> jax.Array:
        """The (in_features * prod(kernel_size), out_features) matrix mapped onto the crossbars, rows in the
        im2col order of ``jax.lax.conv_general_dilated_patches`` (input channel major)."""
        k = self.kernel[...]
        n = len(self.kernel_size)
        k = jnp.moveaxis(k, n, 0)  # (cin, *kernel_size, cout)
        return k.reshape(-1, self.out_features)

    def patches(self, x: jax.Array) -> jax.Array:
        """im2col: x (batch, *spatial, in_features) -> (batch, *out_spatial, in_features * prod(kernel_size))."""
        n = len(self.kernel_size)
        pad = self._padding_lax()
        if pad in ("CIRCULAR", "REFLECT", "CAUSAL"):
            dil = [(k - 1) * d + 1 for k, d in zip(self.kernel_size, self.kernel_dilation, strict=True)]
            if pad == "CAUSAL":
                widths = [(0, 0), (dil[0] - 1, 0), (0, 0)]
                x = jnp.pad(x, widths)
            else:
                widths = [(0, 0)] + [((k - 1) // 2, k // 2) for k in dil] + [(0, 0)]
                x = jnp.pad(x, widths, mode={"CIRCULAR": "wrap", "REFLECT": "reflect"}[pad])
            pad = "VALID"
        spatial = "".join(chr(ord("a") + i) for i in range(n))
        dn = jax.lax.conv_dimension_numbers(x.shape, self.kernel_shape,
                                            ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C"))
        return jax.lax.conv_general_dilated_patches(
            x, self.kernel_size, self.strides, pad, lhs_dilation=self.input_dilation,
            rhs_dilation=self.kernel_dilation, dimension_numbers=dn, precision=jax.lax.Precision.HIGHEST)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the layer: x (*batch, *spatial, in_features) -> (*batch, *out_spatial, out_features)."""
        n = len(self.kernel_size)
        if x.ndim < n + 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"AnalogConv: inputs must be (*batch, {n} spatial dims, {self.in_features} "
                             f"features), got shape {x.shape}")
        bias = self.bias[...] if self.bias is not None else None
        x, w, bias = dtypes.promote_dtype((x, self.kernel_matrix(), bias), dtype=self.dtype)
        batch = x.shape[: x.ndim - n - 1]
        p = self.patches(x.reshape((-1,) + x.shape[x.ndim - n - 1:]))
        y = self._matmul(p.reshape(-1, p.shape[-1]), w)
        y = y.reshape(batch + p.shape[1:-1] + (self.out_features,))
        return y + bias if bias is not None else y


ANALOG_LAYERS = (AnalogLinear, AnalogConv)


# ----------------------------------------------------------------------------------------- model helpers


def path_str(path: Sequence[Any]) -> str:
    """A graph path as a string: ``("layers", 0)`` -> ``"layers/0"``."""
    return "/".join(str(p) for p in path)


def analog_layers(model: Any) -> Iterator[tuple[str, AnalogLinear | AnalogConv]]:
    """(path, layer) of every analog layer in ``model``, in graph order (the order `program` keys them)."""
    for path, node in nnx.iter_graph(model):
        if isinstance(node, ANALOG_LAYERS):
            yield path_str(path), node


def analog_layers_or_raise(model: Any, what: str) -> list[tuple[str, Any]]:
    layers = list(analog_layers(model))
    if not layers:
        raise ValueError(f"{what}: the model has no AnalogLinear/AnalogConv layers (convert it with "
                         "jc.nn.analogize(model, cfg))")
    return layers


def set_mode(model: Any, mode: str) -> Any:
    """Set the mode of every analog layer of ``model`` in place (``"digital"``, ``"hwa"``, ``"analog"``).

    Returns:
      ``model``.
    """
    check_mode(mode)
    for _, layer in analog_layers_or_raise(model, "set_mode"):
        layer.mode = mode
    return model


def set_time(model: Any, t: float | jax.Array) -> Any:
    """Set the read time (s since programming) of every analog layer in place; ``t`` may be traced.

    Returns:
      ``model``.
    """
    checks.check_t(t)
    for _, layer in analog_layers_or_raise(model, "set_time"):
        layer.t.set_value(jnp.asarray(t, jnp.float32))
    return model


def program(model: Any, x_calib: jax.Array, *, key: jax.Array) -> Any:
    """Program every analog layer of ``model`` as one chip instance, in place, and set them to ``"analog"``.

    The model runs once on ``x_calib``: each analog layer (the ``j``-th in graph order gets key
    ``jax.random.fold_in(key, j)``) writes its kernel with programming noise, calibrates its ADC range on
    its own inputs, and passes its read (at time 0) to the next layer, so every layer's ADC is calibrated on
    the activations the chip itself produces. Later calls read the stored conductances at ``layer.t``.

    Args:
      model: an nnx model with analog layers.
      x_calib: calibration inputs, a batch the model accepts (e.g. (n, in_features) or (n, H, W, C)).
      key: the chip instance's key.

    Returns:
      ``model`` (programmed, in ``"analog"`` mode, read time 0).
    """
    set_instance(model, key)
    model(x_calib)
    return model


def set_instance(model: Any, key: jax.Array) -> Any:
    """Make every analog layer of ``model`` chip instance ``key``, unprogrammed, in place: the ``j``-th layer in
    graph order gets key ``jax.random.fold_in(key, j)``, ``"analog"`` mode and read time 0; its next call
    programs it (`program` runs the calibration inputs through right after).

    Returns:
      ``model``.
    """
    checks.check_key(key)
    for j, (_, layer) in enumerate(analog_layers_or_raise(model, "program")):
        layer.key.set_value(jax.random.fold_in(key, j))
        layer.crossbar.set_value(None)
        layer.t.set_value(jnp.zeros((), jnp.float32))
        layer.mode = "analog"
    return model


def clip_weights(model: Any, n_sigma: float = 2.5) -> Any:
    """Clip every analog kernel to ``[-n_sigma * std, n_sigma * std]`` of its own weights, in place.

    Used after each optimizer step of hardware-aware training: a few outlier weights would otherwise set the
    weight-to-conductance scale (max |w|) and squeeze every other weight into a small, noisy part of the
    conductance range (aihwkit ``WeightClipType.LAYER_GAUSSIAN``, Rasch et al., Nat. Commun. 14, 5282 (2023)).

    Returns:
      ``model``.
    """
    if not n_sigma > 0:
        raise ValueError(f"n_sigma must be > 0, got {n_sigma!r}")
    for _, layer in analog_layers_or_raise(model, "clip_weights"):
        k = layer.kernel[...]
        c = n_sigma * jnp.std(k)
        layer.kernel[...] = jnp.clip(k, -c, c)
    return model


__all__ = [
    "MODES", "AnalogConv", "AnalogLinear", "Crossbar", "InstanceKey", "ReadTime", "SEGMENTS", "Segments",
    "analog_layers", "clip_weights", "path_str", "program", "set_instance", "set_mode", "set_time",
]
