"""The single-instance data path: program a weight matrix onto crossbars, read it with inputs.

``program`` maps weights to target conductances, writes them with the device's noise (one device
instance: one key), and samples the instance's fixed properties (drift exponents, ADC offset and gain
errors). ``read`` evolves the conductances to time ``t``, draws read noise, converts inputs with the DAC,
computes column currents with the circuit model, converts them with the ADC and combines the partial
sums digitally into ``y ~ x @ w``. ``simulate`` is both.

Every function acts on ONE instance; Monte Carlo is ``jax.vmap`` over keys (see `jaxcim.monte_carlo`).
The public functions check their arguments eagerly (shapes always; values when they are concrete) and
then call a jit-compiled implementation.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxcim import devices, mapping, rng
from jaxcim.checks import (
    check_array,
    check_cfg,
    check_inputs,
    check_key,
    check_product,
    check_representable,
    check_t,
    check_weights,
)
from jaxcim.circuit import adc as adc_circuit
from jaxcim.circuit import array_currents
from jaxcim.config import CrossbarConfig, is_static_zero, static_zeros, with_static_zeros
from jaxcim.converters import adc, dac, input_bit_planes
from jaxcim.programming import ProgramInfo, write


@struct.dataclass
class CrossbarState:
    """A programmed crossbar instance (a pytree; vmapped states carry a leading instance axis).

    Attributes:
      g_pos: programmed conductances of the G+ (or single, for offset mapping) arrays, S,
        (slices, row_tiles, col_tiles, rows, cols).
      g_neg: programmed G- arrays (differential), S, same shape; or the reference column (offset),
        (slices, row_tiles, col_tiles, rows, 1).
      target_pos, target_neg: the target conductances, S, same shapes.
      time_pos, time_neg: per-cell time-evolution parameters (PCM drift exponents, ReRAM relaxation
        draws), or None for devices without time evolution.
      coeffs: digital weights of the weight slices, (slices,).
      w_scale: weight value of a full-range conductance difference, () or (out_features,).
      adc_range: ADC full-scale current per array, A, (slices, row_tiles, col_tiles).
      adc_offset: ADC offset error per column in LSB, (slices, row_tiles, col_tiles, cols).
      adc_gain: ADC relative gain error per column, same shape.
      probe0: all-ones probe read right after programming (global drift compensation reference), A.
      info: what programming did (`ProgramInfo`, G+ and G- arrays together).
      in_features, out_features: the weight matrix shape (static).
      out_gain, out_offset: digital per-output correction ``y <- out_gain * y + out_offset`` applied after
        the ADC and the digital combination, (out_features,) each (offset in output units); None (the
        default) applies none. Set by a learned mapping (`jaxcim.optimize.LearnedMapping`).
      adc_circuit: this instance's ADC circuit errors per column (``cfg.adc.circuit.sample``), or None (ideal ADC).
    """

    g_pos: jax.Array
    g_neg: jax.Array
    target_pos: jax.Array
    target_neg: jax.Array
    time_pos: Any
    time_neg: Any
    coeffs: jax.Array
    w_scale: jax.Array
    adc_range: jax.Array
    adc_offset: jax.Array
    adc_gain: jax.Array
    probe0: jax.Array
    info: ProgramInfo
    in_features: int = struct.field(pytree_node=False)
    out_features: int = struct.field(pytree_node=False)
    out_gain: Any = None
    out_offset: Any = None
    adc_circuit: Any = None


# ----------------------------------------------------------------------------------------- helpers


def _tile_inputs(cfg: CrossbarConfig, u: jax.Array) -> jax.Array:
    """(..., in) -> (..., row_tiles, rows), zero padded."""
    rows = cfg.mapping.rows
    n_in = u.shape[-1]
    tr = -(-n_in // rows)
    u = jnp.pad(u, [(0, 0)] * (u.ndim - 1) + [(0, tr * rows - n_in)])
    return u.reshape(u.shape[:-1] + (tr, rows))


def _difference_only(cfg: CrossbarConfig) -> bool:
    """Whether every analog output depends on G+ and G- only through G+ - G- (differential mapping, ideal
    circuit): `_raw_currents` then reads the difference, and `_read` draws one read-noise normal per pair."""
    return cfg.mapping.scheme == "differential" and cfg.circuit.kind == "ideal"


def _raw_currents(cfg: CrossbarConfig, g_pos, g_neg, v):
    """Analog outputs per array before the ADC: (I_pos - I_neg) for differential, (I_pos, I_neg) for offset."""
    if _difference_only(cfg):
        return array_currents(cfg.circuit, g_pos - g_neg, v), None
    if cfg.mapping.scheme == "differential":
        return array_currents(cfg.circuit, g_pos, v) - array_currents(cfg.circuit, g_neg, v), None
    return array_currents(cfg.circuit, g_pos, v), array_currents(cfg.circuit, g_neg, v)


def _unipolar_adc(cfg: CrossbarConfig) -> bool:
    """Whether every column current is >= 0, so the ADC spends all its codes on one polarity: non-negative
    inputs (``dac.signed = false``) on arrays whose every column holds non-negative conductances (offset mapping:
    a weight column and its reference column are converted separately). A differential pair's current
    ``I+ - I-`` takes the sign of the weights, whatever the inputs' sign, and needs a signed ADC."""
    return not cfg.dac.signed and cfg.mapping.scheme == "offset"


def _convert(cfg: CrossbarConfig, state: CrossbarState, i_main, i_ref, key=None):
    """ADC conversion of (batch, slices, row_tiles, col_tiles, cols) currents."""
    fs = state.adc_range[..., None]
    unipolar = _unipolar_adc(cfg)
    if cfg.adc.circuit is not None:
        conv = partial(adc_circuit.convert_current, cfg.adc.circuit, state.adc_circuit, cfg.adc.bits, unipolar=unipolar)
        main = conv(i_main * (1.0 + state.adc_gain), fs, key=key, offset_lsb=state.adc_offset)
        k_ref = None if key is None else jax.random.fold_in(key, 1)
        return main if i_ref is None else main - conv(i_ref, fs, key=k_ref)
    main = adc(cfg.adc, i_main, fs, state.adc_offset, state.adc_gain, unipolar=unipolar)
    if i_ref is None:
        return main
    return main - adc(cfg.adc, i_ref, fs, unipolar=unipolar)


def _drive_levels(cfg: CrossbarConfig, x):
    """DAC: inputs -> (levels per cycle (cycles, batch, row_tiles, rows), cycle weights, x_scale)."""
    u, x_scale = dac(cfg.dac, x)
    if cfg.dac.bit_serial:
        planes, weights = input_bit_planes(cfg.dac, u)
    else:
        planes, weights = u[None], jnp.ones((1,), u.dtype)
    return _tile_inputs(cfg, planes), weights, x_scale


def _analog(cfg, g_pos, g_neg, levels):
    """Raw currents for every input cycle: tuple of (cycles, batch, slices, row_tiles, col_tiles, cols)."""
    v_read = cfg.dac.v_read
    return jax.lax.map(lambda lv: _raw_currents(cfg, g_pos, g_neg, lv * v_read), levels) \
        if levels.shape[0] > 1 else jax.tree.map(lambda a: a[None], _raw_currents(cfg, g_pos, g_neg,
                                                                                    levels[0] * v_read))


def _probe(cfg: CrossbarConfig, g_pos, g_neg, in_features: int):
    """Sum of |output current| for an all-ones input on the ideal circuit (drift compensation probe), A."""
    ones = _tile_inputs(cfg, jnp.ones((1, in_features), g_pos.dtype)) * cfg.dac.v_read
    ideal = cfg.replace(**{"circuit.kind": "ideal"})
    i_main, i_ref = _raw_currents(ideal, g_pos, g_neg, ones)
    if i_ref is not None:
        i_main = i_main - i_ref
    return jnp.sum(jnp.abs(i_main))


def _full_scale(cfg: CrossbarConfig, shape, dtype):
    if cfg.adc.range_mode == "fixed":
        return jnp.full(shape, cfg.adc.i_max, dtype)
    return jnp.full(shape, cfg.mapping.rows * cfg.dac.v_read * cfg.device.g_max, dtype)


def _calibrate(cfg: CrossbarConfig, g_pos, g_neg, x_calib):
    """ADC full scale per array from calibration inputs: margin * max |current| (A)."""
    levels, _, _ = _drive_levels(cfg, x_calib)
    i_main, i_ref = _analog(cfg, g_pos, g_neg, levels)
    peak = jnp.max(jnp.abs(i_main), axis=(0, 1, 5))
    if i_ref is not None:
        peak = jnp.maximum(peak, jnp.max(jnp.abs(i_ref), axis=(0, 1, 5)))
    peak = jnp.where(peak > 0, peak, cfg.dac.v_read * cfg.device.g_max)
    return jax.lax.stop_gradient(peak * cfg.adc.margin)


def default_calibration_inputs(cfg: CrossbarConfig, in_features: int, key: jax.Array, n: int = 64):
    """Inputs used to calibrate the ADC when none are given: n vectors uniform in [-1, 1] ([0, 1] unsigned)."""
    lo = -1.0 if cfg.dac.signed else 0.0
    return jax.random.uniform(key, (n, in_features), minval=lo, maxval=1.0)


# ----------------------------------------------------------------------------------------- program


@partial(jax.jit, static_argnames="zeros")
def _program(cfg: CrossbarConfig, w, key, x_calib, scale, learned=None, *, zeros=frozenset()):
    cfg = with_static_zeros(cfg, zeros)  # features that are off draw no random numbers
    k_write, k_time, k_adc, k_cal = jax.random.split(key, 4)
    if learned is None:
        t_pos, t_neg, coeffs, w_scale = mapping.conductance_targets(cfg, w, scale)
    else:
        t_pos, t_neg, coeffs, w_scale = learned.conductance_targets(cfg, w, scale)
    (g_pos, g_neg), info = write(cfg, (t_pos, t_neg), k_write)  # G+ and G- share their draws' transform
    time_pos, time_neg = devices.sample_time_params(cfg.device, k_time, (t_pos, t_neg)) or (None, None)
    arrays = g_pos.shape[:3]
    cols = g_pos.shape[-1]
    k_off, k_gain = jax.random.split(k_adc)
    adc_offset = jnp.zeros(arrays + (cols,), g_pos.dtype)
    adc_gain = jnp.zeros(arrays + (cols,), g_pos.dtype)
    if not is_static_zero(cfg.adc.offset_sigma):
        adc_offset = cfg.adc.offset_sigma * rng.normal(k_off, adc_offset.shape, g_pos.dtype)
    if not is_static_zero(cfg.adc.gain_sigma):
        adc_gain = cfg.adc.gain_sigma * rng.normal(k_gain, adc_gain.shape, g_pos.dtype)
    circuit_errors = None
    if cfg.adc.circuit is not None:
        circuit_errors = cfg.adc.circuit.sample(jax.random.fold_in(k_adc, 2), arrays + (cols,),
                                                adc_circuit.adc_levels(cfg.adc.bits, _unipolar_adc(cfg)))
    if cfg.adc.range_mode == "calibrated":
        if x_calib is None:
            x_calib = default_calibration_inputs(cfg, w.shape[0], k_cal).astype(g_pos.dtype)
        adc_range = _calibrate(cfg, g_pos, g_neg, x_calib)
    else:
        adc_range = _full_scale(cfg, arrays, g_pos.dtype)
    out_gain = out_offset = None
    if learned is not None:
        adc_range = learned.adjust_adc_range(adc_range)
        out_gain, out_offset = learned.output_correction(w.shape[1], g_pos.dtype)
    return CrossbarState(
        g_pos=g_pos, g_neg=g_neg, target_pos=t_pos, target_neg=t_neg, time_pos=time_pos, time_neg=time_neg,
        coeffs=coeffs, w_scale=w_scale, adc_range=adc_range, adc_offset=adc_offset, adc_gain=adc_gain,
        probe0=_probe(cfg, g_pos, g_neg, w.shape[0]), info=info,
        in_features=w.shape[0], out_features=w.shape[1], out_gain=out_gain, out_offset=out_offset,
        adc_circuit=circuit_errors,
    )


def check_mapping(learned: Any, cfg: CrossbarConfig, w_shape: tuple[int, ...]) -> None:
    """TypeError unless ``learned`` is None or a `jaxcim.mapping.WeightMapping`; its own shape check."""
    if learned is None:
        return
    if not isinstance(learned, mapping.WeightMapping):
        raise TypeError(f"mapping must be a jaxcim.optimize.LearnedMapping (or another jaxcim.mapping.WeightMapping), "
                        f"got {type(learned).__name__}")
    learned.check(cfg, w_shape)


def program(
    cfg: CrossbarConfig, w: jax.Array, *, key: jax.Array, x_calib: jax.Array | None = None,
    scale: jax.Array | None = None, mapping: Any = None,
) -> CrossbarState:
    """Program a weight matrix onto crossbar arrays: one device instance.

    Args:
      cfg: the crossbar config (e.g. ``jc.presets.get("reram-neurram")``).
      w: weights, (in_features, out_features), float. ``y ~ x @ w`` when read.
      key: ``jax.random.key`` of this device instance (programming noise, faults, drift exponents, ADC
        offset/gain errors all derive from it).
      x_calib: inputs (n, in_features) to calibrate the ADC range on (``adc.range_mode="calibrated"``);
        default: 64 random full-scale input vectors.
      scale: weight-to-conductance scale, () or (out_features,); default max |w| per tensor or column.
      mapping: a learned mapping (`jaxcim.optimize.LearnedMapping`, e.g. ``optimize_mapping(...).mapping``)
        replacing the linear mapping's targets, ADC range and digital output correction; None (default):
        the plain mapping of ``cfg.mapping``.

    Returns:
      The programmed `CrossbarState`.
    """
    check_cfg(cfg)
    check_key(key)
    w = check_weights("w", w)
    check_representable(cfg, w.dtype)
    if x_calib is not None:
        x_calib = check_inputs(cfg, x_calib, w.shape[0], "x_calib")
        x_calib = jnp.atleast_2d(x_calib).astype(w.dtype)
    if scale is not None:
        scale = check_array("scale", scale, (0, 1))
    check_mapping(mapping, cfg, w.shape)
    return _program(cfg, w, key, x_calib, scale, mapping, zeros=static_zeros(cfg))


# ----------------------------------------------------------------------------------------- read


def conductances_at(cfg: CrossbarConfig, state: CrossbarState, t) -> tuple[jax.Array, jax.Array]:
    """The (G+, G-) conductances of a programmed instance t seconds after programming (no read noise), S."""
    dev = cfg.device
    g_pos = devices.at_time(dev, state.g_pos, state.target_pos, state.time_pos, t)
    g_neg = devices.at_time(dev, state.g_neg, state.target_neg, state.time_neg, t)
    return g_pos, g_neg


@partial(jax.jit, static_argnames="zeros")
def _read(cfg: CrossbarConfig, state: CrossbarState, x, key, t, *, zeros=frozenset()):
    cfg = with_static_zeros(cfg, zeros)
    dev = cfg.device
    squeeze = x.ndim == 1
    x = jnp.atleast_2d(x)
    g_pos, g_neg = conductances_at(cfg, state, t)
    if dev.noisy_reads and not is_static_zero(dev.read_noise_scale):
        if _difference_only(cfg) and dev.gaussian_reads:
            s_pos = devices.read_sigma(dev, g_pos, state.target_pos, t)
            s_neg = devices.read_sigma(dev, g_neg, state.target_neg, t)
            # Only G+ - G- is observable (currents, ADC calibration, drift-compensation probe): one normal
            # with the pair's combined deviation has exactly the distribution of two independent reads.
            u_pos, u_neg = s_pos / dev.g_max, s_neg / dev.g_max  # units of g_max: the squares stay finite
            var = u_pos * u_pos + u_neg * u_neg
            s_pair = jnp.where(var > 0, jnp.sqrt(jnp.where(var > 0, var, 1.0)), 0.0) * dev.g_max  # finite grad at 0
            g_pos = g_pos + s_pair * rng.normal(key, g_pos.shape, g_pos.dtype)
        else:
            z_pos, z_neg = rng.normals(key, (g_pos.shape, g_neg.shape), g_pos.dtype)
            g_pos = devices.read(dev, g_pos, state.g_pos, state.target_pos, t, z_pos)
            g_neg = devices.read(dev, g_neg, state.g_neg, state.target_neg, t, z_neg)
    levels, cycle_w, x_scale = _drive_levels(cfg, x)
    i_main, i_ref = _analog(cfg, g_pos, g_neg, levels)
    if cfg.adc.circuit is not None:  # comparator noise: one draw per conversion, from the read's key
        ks = jax.random.split(jax.random.fold_in(key, 0xADC), i_main.shape[0])
        digital = jax.vmap(lambda a, b, k: _convert(cfg, state, a, b, k))(i_main, i_ref, ks)
    else:
        digital = jax.vmap(lambda a, b: _convert(cfg, state, a, b))(i_main, i_ref) if i_ref is not None else \
            jax.vmap(lambda a: _convert(cfg, state, a, None))(i_main)
    # shift-and-add over input cycles and weight slices, then the sum of row-tile partial sums as explicit adds:
    # XLA's CPU backend (jax 0.10) fuses a reduction over the tile axis with the ADC scale into a YNNPACK
    # fusion that crashes (SIGSEGV) under vmap (tools/xla_reproducers/ynn_reduce_segfault.py)
    per_tile = jnp.einsum("k,s,kbstcj->btcj", cycle_w, state.coeffs, digital, precision=jax.lax.Precision.HIGHEST)
    acc = per_tile[:, 0]
    for i in range(1, per_tile.shape[1]):
        acc = acc + per_tile[:, i]
    y = mapping.from_tiles(cfg.mapping, acc, state.out_features)
    y = y / (cfg.dac.v_read * mapping.conductance_unit(cfg)) * x_scale * state.w_scale
    if cfg.drift_compensation is not None:
        y = cfg.drift_compensation.compensate(y, state.probe0, _probe(cfg, g_pos, g_neg, state.in_features))
    if state.out_gain is not None:
        y = y * state.out_gain
    if state.out_offset is not None:
        y = y + state.out_offset
    return y[0] if squeeze else y


def _with_temperature(cfg: CrossbarConfig, temperature) -> CrossbarConfig:
    """``cfg`` with ``device.temperature`` (K) replaced, checked as the field; unchanged for None."""
    if temperature is None:
        return cfg
    return cfg.replace(device=cfg.device.replace(temperature=temperature))


def read(
    cfg: CrossbarConfig, state: CrossbarState, x: jax.Array, *, key: jax.Array, t=0.0, temperature=None,
) -> jax.Array:
    """Read a programmed instance: one analog matrix-vector product per input vector.

    Args:
      cfg: the config ``state`` was programmed with.
      state: from `program`.
      x: inputs, (batch, in_features) or (in_features,).
      key: key of this read (read noise). One call is one read event: the batch shares its read-noise
        draw, as in aihwkit's inference noise model; vmap over keys for independent reads.
      t: time since programming, s (drift, relaxation and 1/f read noise depend on it).
      temperature: temperature of the array since programming, K; replaces ``cfg.device.temperature`` (None:
        keep it). Only models with thermally activated retention depend on it.

    Returns:
      y ~ x @ w, (batch, out_features) or (out_features,).
    """
    check_cfg(cfg)
    cfg = _with_temperature(cfg, temperature)
    check_key(key)
    if not isinstance(state, CrossbarState):
        raise TypeError(f"state must be a CrossbarState from jc.program, got {type(state).__name__}")
    x = check_inputs(cfg, x, state.in_features)
    check_t(t)
    return _read(cfg, state, x.astype(state.g_pos.dtype), key, jnp.asarray(t, state.g_pos.dtype),
                 zeros=static_zeros(cfg))


def simulate(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, *, key: jax.Array, t=0.0, temperature=None,
    x_calib: jax.Array | None = None, scale: jax.Array | None = None, mapping: Any = None,
) -> jax.Array:
    """Program ``w`` and read it with ``x``: y ~ x @ w for one device instance.

    Args:
      cfg: crossbar config. w: (in_features, out_features). x: (batch, in_features) or (in_features,).
      key: key of this instance (split into a programming key and a read key).
      t: time since programming, s.
      temperature: temperature of the array since programming, K (None: ``cfg.device.temperature``).
      x_calib: ADC calibration inputs; default ``x`` itself when ``adc.range_mode="calibrated"``.
      scale: weight scale, see `program`.
      mapping: a learned mapping, see `program`.

    Returns:
      (batch, out_features) or (out_features,).
    """
    check_cfg(cfg)
    check_key(key)
    w = check_weights("w", w)
    x = check_inputs(cfg, x, w.shape[0])
    check_product(x, w)
    if x_calib is None and cfg.adc.range_mode == "calibrated":
        x_calib = x
    k_prog, k_read = jax.random.split(key)
    state = program(cfg, w, key=k_prog, x_calib=x_calib, scale=scale, mapping=mapping)
    return read(cfg, state, x, key=k_read, t=t, temperature=temperature)

