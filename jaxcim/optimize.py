"""Variation-aware weight mapping, learned by gradient descent on the expected error over device instances.

The plain mapping writes ``G+ = g_min + span * max(w / s, 0)`` and ``G- = g_min + span * max(-w / s, 0)``
(``span = g_max - g_min``, ``s = max |w|``). A `LearnedMapping` generalizes it with parameters that are
each switchable (``learn=``):

- ``"col_range"``: per output column, the fraction ``r_j`` of the conductance range its largest weight
  would use; the digital rescale ``s / r_j`` undoes it exactly. ``r_j > 1`` clips the column's largest
  weights at g_max to raise the signal of the others above the noise (optimal clipping).
- ``"curve"``: a pre-distortion curve ``u <- u + sign(u) f(|u|)``, ``f`` piecewise linear on
  `CURVE_KNOTS` evenly spaced knots in [0, 1] (per slice): compensates state-dependent systematic
  effects (the mean drift of PCM states, a noise mean) with a handful of parameters.
- ``"split"``: a per-cell common mode ``c >= 0`` (span units) added to both G+ and G-: the weight is the
  difference, the common mode moves both cells to where the device is quieter or drifts alike.
- ``"predistort"``: a per-cell offset ``d`` (span units) added to the normalized weight before the split:
  pre-compensates position-dependent systematic effects (IR drop). It has as many parameters as weights:
  train it on at least ``in_features`` input vectors, or it fits the training inputs and not others.
- ``"digital"``: per-column gain and offset ``y <- a_j y + b_j`` after the ADC.
- ``"adc_range"``: a per-array log multiplier on the ADC full scale.

So, per slice array, ``u = r_j * w_ij / s``, ``u <- u + sign(u) f(|u|) + d_ij``,
``G+ = g_min + span * min(relu(u) + c_ij, 1)`` and ``G- = g_min + span * min(relu(-u) + c_ij, 1)``.
The identity mapping reproduces the plain mapping exactly (same key, same result).

`optimize_mapping` descends the expected loss (normalized MSE of ``y`` against ``x @ w`` by default, or a
user loss) over fresh device instances at every step (``n_instances`` new keys, each programmed once and
read at each of ``times``) with an optax optimizer, projecting the parameters back onto their feasible
set after each step. Gradients reach the parameters through every stage of `jaxcim.program`/`read`:
reparameterized programming noise (with d sigma / d G_target), straight-through quantizers, the
write-verify custom gradient, drift ``G (t/t0)^-nu(G)``, and the IR-drop solve (implicit differentiation).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh

from jaxcim import checks, core, engine, io
from jaxcim import mapping as mp
from jaxcim.config import CrossbarConfig
from jaxcim.montecarlo import instance_bytes

LEARNABLE = ("col_range", "split", "curve", "predistort", "digital", "adc_range")
"""Names accepted by ``learn=``: which parts of the mapping `optimize_mapping` trains."""
DEFAULT_LEARN = ("col_range", "split", "curve", "digital", "adc_range")
"""What `optimize_mapping` learns by default (per-cell ``predistort`` needs many training inputs)."""
FIELDS = ("col_range", "common_mode", "curve", "predistort", "out_gain", "out_offset", "adc_log_scale")
CURVE_KNOTS = 9
"""Knots of the pre-distortion curve, evenly spaced in |u| from 0 to 1."""
MAX_COL_RANGE = 8.0
"""Largest column range factor the projection allows (> 1 clips the largest weights)."""
"""Array fields of `LearnedMapping` (each None when not learned)."""
FORMAT = "jaxcim-mapping/1"
MIN_COL_RANGE = 0.02
"""Smallest column range fraction the projection allows (a column must keep some signal)."""


@struct.dataclass
class LearnedMapping:
    """A learned weight-to-conductance mapping (a pytree; None fields are the identity).

    Attributes:
      col_range: fraction of the conductance range a column's largest weight would use (> 1: clipped),
        (out_features,).
      curve: pre-distortion curve values at `CURVE_KNOTS` knots of |u| in [0, 1], span units, (slices, knots).
      common_mode: common mode added to both G+ and G- targets, units of (g_max - g_min), >= 0,
        (slices, in_features, out_features).
      predistort: offset added to each normalized cell weight before the G+/G- split, units of
        (g_max - g_min), (slices, in_features, out_features).
      out_gain: digital gain per output after the ADC, dimensionless, (out_features,).
      out_offset: digital offset per output after the ADC, output units (those of ``x @ w``), (out_features,).
      adc_log_scale: natural log of the multiplier on the ADC full-scale current of each array,
        (slices, row_tiles, col_tiles).
    """

    col_range: Any = None
    common_mode: Any = None
    curve: Any = None
    predistort: Any = None
    out_gain: Any = None
    out_offset: Any = None
    adc_log_scale: Any = None

    # ------------------------------------------------------------------------ data path hooks (core)

    def check(self, cfg: CrossbarConfig, w_shape: tuple[int, ...]) -> None:
        """Raise ValueError naming the field if a parameter's shape does not fit ``cfg`` and weights ``w_shape``."""
        n_in, n_out = w_shape
        m = cfg.mapping
        tr, tc = mp.tile_counts(m, n_in, n_out)
        want = {
            "col_range": (n_out,), "out_gain": (n_out,), "out_offset": (n_out,),
            "common_mode": (m.slices, n_in, n_out), "predistort": (m.slices, n_in, n_out),
            "adc_log_scale": (m.slices, tr, tc), "curve": (m.slices, CURVE_KNOTS),
        }
        for name, shape in want.items():
            a = getattr(self, name)
            if a is not None and tuple(jnp.shape(a)) != shape:
                raise ValueError(f"mapping.{name} has shape {tuple(jnp.shape(a))} but weights {tuple(w_shape)} on "
                                 f"this config need {shape}")
        if self.common_mode is not None and m.scheme != "differential":
            raise ValueError("mapping.common_mode (learn='split') needs mapping.scheme = 'differential', "
                             f"got {m.scheme!r}")

    def conductance_targets(self, cfg: CrossbarConfig, w: jax.Array, scale: jax.Array | None = None):
        """Targets of the learned mapping; same outputs as `jaxcim.mapping.conductance_targets`."""
        m, dev = cfg.mapping, cfg.device
        scale = mp.weight_scale(m, w) if scale is None else scale
        digits, coeffs = mp.slice_weights(m, w / scale)
        u = digits
        if self.col_range is not None:
            u = u * self.col_range
            scale = scale / self.col_range
        if self.curve is not None:
            knots = jnp.linspace(0.0, 1.0, CURVE_KNOTS, dtype=u.dtype)
            f = jax.vmap(lambda a, c: jnp.interp(jnp.abs(a), knots, c))(u, self.curve)
            u = u + jnp.sign(u) * f
        if self.predistort is not None:
            u = u + self.predistort
        span = dev.g_max - dev.g_min
        if m.scheme == "differential":
            c = 0.0 if self.common_mode is None else self.common_mode
            g_pos = dev.g_min + span * jnp.minimum(jax.nn.relu(u) + c, 1.0)
            g_neg = dev.g_min + span * jnp.minimum(jax.nn.relu(-u) + c, 1.0)
            g_pos = mp.to_tiles(m, g_pos, dev.g_min)
            g_neg = mp.to_tiles(m, g_neg, dev.g_min)
        else:
            g_mid = dev.g_min + 0.5 * span
            g_pos = mp.to_tiles(m, g_mid + 0.5 * span * jnp.clip(u, -1.0, 1.0), g_mid)
            g_neg = jnp.full(g_pos.shape[:-1] + (1,), g_mid, g_pos.dtype)
        return g_pos, g_neg, coeffs, scale

    def adjust_adc_range(self, adc_range: jax.Array) -> jax.Array:
        """ADC full scale per array (A, (slices, row_tiles, col_tiles)) times the learned multiplier."""
        return adc_range if self.adc_log_scale is None else adc_range * jnp.exp(self.adc_log_scale)

    def output_correction(self, out_features: int, dtype) -> tuple[Any, Any]:
        """(out_gain, out_offset) for `jaxcim.CrossbarState`, each (out_features,) or None."""
        cast = lambda a: None if a is None else jnp.asarray(a, dtype)
        return cast(self.out_gain), cast(self.out_offset)


def _check_learn(learn: Sequence[str]) -> tuple[str, ...]:
    if isinstance(learn, str):
        learn = (learn,)
    learn = tuple(learn)
    bad = [n for n in learn if n not in LEARNABLE]
    if bad:
        raise ValueError(f"learn has unknown parts {bad}; valid: {', '.join(LEARNABLE)}")
    if not learn:
        raise ValueError(f"learn must name at least one of {', '.join(LEARNABLE)}")
    return learn


def init_mapping(cfg: CrossbarConfig, w: jax.Array, learn: Sequence[str] = DEFAULT_LEARN) -> LearnedMapping:
    """The identity `LearnedMapping` (same result as the plain mapping) with the ``learn`` parts allocated.

    Args:
      cfg: the crossbar config. w: weights (in_features, out_features). learn: parts from `LEARNABLE`.
    """
    learn = _check_learn(learn)
    n_in, n_out = np.shape(w)
    m = cfg.mapping
    if "split" in learn and m.scheme != "differential":
        raise ValueError(f"learn='split' needs mapping.scheme = 'differential', got {m.scheme!r}")
    tr, tc = mp.tile_counts(m, n_in, n_out)
    dt = jnp.result_type(float)
    z = lambda *s: jnp.zeros(s, dt)
    return LearnedMapping(
        col_range=jnp.ones((n_out,), dt) if "col_range" in learn else None,
        common_mode=z(m.slices, n_in, n_out) if "split" in learn else None,
        curve=z(m.slices, CURVE_KNOTS) if "curve" in learn else None,
        predistort=z(m.slices, n_in, n_out) if "predistort" in learn else None,
        out_gain=jnp.ones((n_out,), dt) if "digital" in learn else None,
        out_offset=z(n_out) if "digital" in learn else None,
        adc_log_scale=z(m.slices, tr, tc) if "adc_range" in learn else None,
    )


def project(m: LearnedMapping) -> LearnedMapping:
    """Clip parameters to their feasible set (column range in [0.02, 8], common mode in [0, 1], ...)."""
    clip = lambda a, lo, hi: None if a is None else jnp.clip(a, lo, hi)
    return m.replace(
        col_range=clip(m.col_range, MIN_COL_RANGE, MAX_COL_RANGE), common_mode=clip(m.common_mode, 0.0, 1.0),
        curve=clip(m.curve, -0.5, 0.5),
        predistort=clip(m.predistort, -1.0, 1.0), adc_log_scale=clip(m.adc_log_scale, -5.0, 3.0),
    )


# ---------------------------------------------------------------------------------------- objective


def nmse(y: jax.Array, y_ref: jax.Array) -> jax.Array:
    """Normalized mean squared error sum((y - y_ref)^2) / sum(y_ref^2) (dimensionless scalar)."""
    return jnp.sum((y - y_ref) ** 2) / jnp.maximum(jnp.sum(y_ref**2), jnp.finfo(y_ref.dtype).tiny)


def conductance_penalty(weight: float) -> Callable[[CrossbarConfig, core.CrossbarState], jax.Array]:
    """A penalty ``weight * mean target conductance / g_max``: a proxy for array read energy (cell currents).

    Pass it as ``penalty=`` to `optimize_mapping`; any callable ``(cfg, state) -> scalar`` works (e.g. a
    differentiable energy estimate).
    """
    def penalty(cfg: CrossbarConfig, state: core.CrossbarState) -> jax.Array:
        g = jnp.concatenate([state.target_pos.ravel(), state.target_neg.ravel()])
        return weight * jnp.mean(g) / cfg.device.g_max
    return penalty


@dataclasses.dataclass(frozen=True)
class _MappingKernel:
    """One device instance of the mapping optimizer (`jaxcim.engine.Kernel`): programmed with the instance key's
    first half, read at each of ``times`` (static) with ``fold_in(second half, i)``; ``program`` takes
    ``(cfg, w, x_calib, scale, mapping)``."""

    times: tuple[float, ...]

    def program(self, key, args):
        cfg, w, x_calib, scale, mapping = args
        k_prog, _ = jax.random.split(key)
        return core.program(cfg, w, key=k_prog, x_calib=x_calib, scale=scale, mapping=mapping)

    def reads(self, state, key, cfg, x):
        _, k_read = jax.random.split(key)
        return [core.read(cfg, state, x, key=jax.random.fold_in(k_read, i), t=t) for i, t in enumerate(self.times)]

    def state_axes(self, state):
        return 0


@dataclasses.dataclass(frozen=True)
class _LossKernel(_MappingKernel):
    """Losses of an instance at each time (times,), the penalty added to each; ``measure`` takes
    ``(cfg, x, y_ref)``."""

    loss: Callable = None
    penalty: Callable | None = None

    def measure(self, state, key, args):
        cfg, x, y_ref = args
        extra = 0.0 if self.penalty is None else self.penalty(cfg, state)
        return jnp.stack([self.loss(y, y_ref) + extra for y in self.reads(state, key, cfg, x)])


@dataclasses.dataclass(frozen=True)
class _ErrorKernel(_MappingKernel):
    """Relative errors per time and input vector (times, batch); ``measure`` takes ``(cfg, x, y_ref, ref_norm)``."""

    def measure(self, state, key, args):
        cfg, x, y_ref, ref_norm = args
        return jnp.stack([jnp.linalg.norm(y - y_ref, axis=-1) / ref_norm for y in self.reads(state, key, cfg, x)])


def expected_loss(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, keys: jax.Array, *, mapping: LearnedMapping | None = None,
    times: Sequence[float] = (0.0,), x_calib: jax.Array | None = None, loss: Callable | None = None,
    penalty: Callable | None = None, scale: jax.Array | None = None, chunk: int | None = None,
) -> jax.Array:
    """Monte Carlo estimate of the expected loss over device instances (differentiable in ``mapping`` and ``w``).

    Args:
      cfg: crossbar config. w: weights (in_features, out_features). x: inputs (batch, in_features).
      keys: one key per device instance, (n_instances,).
      mapping: a `LearnedMapping`, or None for the plain mapping.
      times: read times after programming, s; the loss is averaged over them.
      x_calib: ADC calibration inputs; default ``x``.
      loss: ``loss(y, y_ref) -> scalar``; default `nmse`.
      penalty: ``penalty(cfg, state) -> scalar`` added per instance (e.g. `conductance_penalty`).
      scale: weight scale (see `jaxcim.program`).
      chunk: evaluate this many instances at a time (bounds memory); default all at once.

    Returns:
      The mean loss over instances and times (scalar).
    """
    kernel = _LossKernel(times=tuple(times), loss=nmse if loss is None else loss, penalty=penalty)
    x_calib = x if x_calib is None else x_calib
    y_ref = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
    per = engine.map_instances(kernel, (cfg, w, x_calib, scale, mapping), (cfg, x, y_ref), keys, batch_size=chunk)
    return jnp.mean(per)


def mvm_errors(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, keys: jax.Array, *, mapping: LearnedMapping | None = None,
    times: Sequence[float] = (0.0,), x_calib: jax.Array | None = None, scale: jax.Array | None = None,
    chunk: int | None = 8, mesh: Mesh | None = None,
) -> np.ndarray:
    """Relative MVM errors ||y - x w|| / ||x w|| per instance, time and input vector.

    Runs on `jaxcim.engine` (instance i uses ``keys[i]``; chunks of ``chunk`` instances, or sized by the memory
    model when None, sharded over ``mesh``, default every device of every process).

    Args: as `expected_loss`. Returns: numpy array (n_instances, n_times, batch), in every process.
    """
    mesh = engine.check_mesh(mesh)
    x_calib = x if x_calib is None else x_calib
    y_ref = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
    ref_norm = jnp.maximum(jnp.linalg.norm(y_ref, axis=-1), jnp.finfo(y_ref.dtype).tiny)
    n = int(keys.shape[0])
    size = engine.plan_chunk_size(
        n, lambda: instance_bytes(cfg, w.shape[0], w.shape[1], x.shape[0], len(times), jnp.dtype(w.dtype).itemsize),
        mesh=mesh, chunk_size=None if chunk is None else min(chunk, n))
    prog, meas, keys = engine.replicate(((cfg, w, x_calib, scale, mapping), (cfg, x, y_ref, ref_norm), keys), mesh)
    kernel = _ErrorKernel(times=tuple(times))
    parts = [engine.to_host(engine.run_chunk(kernel, prog, meas, keys, jnp.uint32(first), jnp.uint32(n), mesh=mesh,
                                             size=size, stages=1, per_instance=True))
             for first, _ in engine.chunks(n, size)]
    return np.concatenate(parts, axis=0)[:n]


def error_stats(errors: np.ndarray) -> dict[str, float]:
    """Summary of relative errors: mean, median, 95th percentile, standard error of the mean."""
    e = np.asarray(errors, dtype=float).ravel()
    return {"mean": float(e.mean()), "median": float(np.median(e)), "p95": float(np.percentile(e, 95)),
            "sem": float(e.std(ddof=1) / np.sqrt(max(e.size - 1, 1))), "n": int(e.size)}


# ---------------------------------------------------------------------------------------- optimizer


@dataclasses.dataclass
class OptimizeResult:
    """What `optimize_mapping` returns.

    Attributes:
      mapping: the learned `LearnedMapping` (pass as ``mapping=`` to `jaxcim.simulate`/`program`).
      loss_history: training loss per step (a fresh-instance estimate each step), (steps,).
      before, after: `error_stats` of the relative MVM error of the plain and the learned mapping on
        held-out instances and held-out inputs (``errors_before``/``errors_after`` hold the raw values,
        (n_eval, n_times, n_test)).
      times: the read times, s. wall_time_s: optimization time including compilation, s.
      compile_time_s: time of the first step (compilation), s. instances: simulated training instances.
    """

    mapping: LearnedMapping
    loss_history: np.ndarray
    before: dict[str, float]
    after: dict[str, float]
    errors_before: np.ndarray
    errors_after: np.ndarray
    times: tuple[float, ...]
    wall_time_s: float
    compile_time_s: float
    instances: int


def _to_raw(m: LearnedMapping, y_rms) -> LearnedMapping:
    """Optimizer coordinates: the output offset in units of the rms output (Adam steps are O(lr))."""
    return m if m.out_offset is None else m.replace(out_offset=m.out_offset / y_rms)


def _from_raw(m: LearnedMapping, y_rms) -> LearnedMapping:
    return m if m.out_offset is None else m.replace(out_offset=m.out_offset * y_rms)


def _check_times(times) -> tuple[float, ...]:
    try:
        ts = tuple(float(t) for t in np.atleast_1d(np.asarray(times, dtype=float)))
    except (TypeError, ValueError):
        raise TypeError(f"times must be a sequence of seconds, got {times!r}") from None
    if not ts or not all(np.isfinite(t) and t >= 0 for t in ts):
        raise ValueError(f"times must be a non-empty sequence of finite times >= 0 (s), got {times!r}")
    return ts


def _train_test_inputs(cfg: CrossbarConfig, w: jax.Array, x_calib: jax.Array, x_test: jax.Array | None):
    """(x_train, x_test), both (batch, in_features) in the weights' dtype: without ``x_test``, the last quarter
    of ``x_calib`` is held out."""
    if x_test is None:
        n_test = x_calib.shape[0] // 4
        if n_test < 1:
            raise ValueError("x_calib needs at least 4 rows when x_test is not given (a quarter is held out)")
        x_train, x_test = x_calib[:-n_test], x_calib[-n_test:]
    else:
        x_train = x_calib
        x_test = checks.check_inputs(cfg, x_test, w.shape[0], "x_test")
    return jnp.asarray(x_train, w.dtype), jnp.atleast_2d(jnp.asarray(x_test, w.dtype))


def _check_arguments(cfg, w, x_calib, key, steps, n_instances, n_eval, times, learn, optimizer):
    """The validated (w, x_calib, steps, n_instances, times, learn, optimizer) of `optimize_mapping`."""
    checks.check_cfg(cfg)
    checks.check_key(key)
    w = checks.check_weights("w", w)
    checks.check_representable(cfg, w.dtype)
    x_calib = checks.check_inputs(cfg, x_calib, w.shape[0], "x_calib")
    if x_calib.ndim != 2:
        raise ValueError(f"x_calib must be (batch, in_features), got shape {x_calib.shape}")
    steps = checks.check_int("steps", steps, 1)
    n_instances = checks.check_int("n_instances", n_instances, 1)
    if not (isinstance(n_eval, int | np.integer) and not isinstance(n_eval, bool) and n_eval >= 0):
        raise ValueError(f"n_eval must be an integer >= 0, got {n_eval!r}")
    times, learn = _check_times(times), _check_learn(learn)
    optimizer = optax.adam(1e-2) if optimizer is None else optimizer
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got {type(optimizer).__name__}")
    return w, x_calib, steps, n_instances, times, learn, optimizer


def _descend(step: Callable, raw: LearnedMapping, opt_state: Any, steps: int, progress: bool,
             callback: Callable | None) -> tuple[LearnedMapping, np.ndarray, float, float]:
    """Run ``steps`` optimizer steps: (raw parameters, loss history (steps,), wall time s, first-step time s)."""
    history = np.empty(steps)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc="optimize mapping", unit="step")
    t_start = time.perf_counter()
    compile_time = 0.0
    try:
        for i in range(steps):
            raw, opt_state, value = step(raw, opt_state, i)
            history[i] = float(value)
            if i == 0:
                compile_time = time.perf_counter() - t_start
            if not np.isfinite(history[i]):
                raise FloatingPointError(f"optimize_mapping: the loss became {history[i]} at step {i}; "
                                         "lower the learning rate")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history[i]:.4g}")
            if callback is not None:
                callback(i, history[i])
    finally:
        if bar is not None:
            bar.close()
    return raw, history, time.perf_counter() - t_start, compile_time


def optimize_mapping(
    cfg: CrossbarConfig, w: jax.Array, x_calib: jax.Array, *, key: jax.Array, steps: int = 300,
    optimizer: optax.GradientTransformation | None = None, n_instances: int = 64,
    times: Sequence[float] = (1.0,), learn: Sequence[str] = DEFAULT_LEARN, loss: Callable | None = None,
    penalty: Callable | None = None, x_test: jax.Array | None = None, n_eval: int = 64,
    scale: jax.Array | None = None, init: LearnedMapping | None = None, chunk: int | None = None,
    progress: bool = False, callback: Callable[[int, float], Any] | None = None,
) -> OptimizeResult:
    """Learn a weight mapping that minimizes the expected error over device instances.

    Args:
      cfg: crossbar config (e.g. ``jc.presets.get("pcm-ibm")``).
      w: weights (in_features, out_features).
      x_calib: training inputs (batch, in_features), also used to calibrate the ADC. Without ``x_test``,
        the last quarter of its rows is held out for evaluation (and the rest trains and calibrates).
      key: `jax.random.key`: training instances, held-out instances and reads derive from it.
      steps: optimizer steps; each draws ``n_instances`` fresh device instances.
      optimizer: an optax transformation; default ``optax.adam(1e-2)``.
      n_instances: device instances per step (the Monte Carlo size of each gradient estimate).
      times: read times after programming, s; the objective averages over them.
      learn: which parts to learn (`LEARNABLE`); default `DEFAULT_LEARN`.
      loss: ``loss(y, y_ref) -> scalar``; default normalized MSE (`nmse`).
      penalty: optional ``penalty(cfg, state) -> scalar`` per instance (energy or conductance budget,
        e.g. `conductance_penalty`).
      x_test: held-out inputs (n, in_features) for the before/after statistics.
      n_eval: held-out device instances for the before/after statistics (0: skip them); they run on
        `jaxcim.engine` (`mvm_errors`), sharded over every device of every process.
      scale: weight scale passed to `jaxcim.program` (default: that of ``cfg.mapping.scale``).
      init: starting mapping; default `init_mapping` (identity).
      chunk: instances evaluated at once in the training step (bounds memory); default all.
      progress: show a tqdm progress bar with the loss.
      callback: called as ``callback(step, loss)`` after each step.

    Returns:
      `OptimizeResult`.
    """
    w, x_calib, steps, n_instances, ts, learn, optimizer = _check_arguments(
        cfg, w, x_calib, key, steps, n_instances, n_eval, times, learn, optimizer)
    x_train, x_test = _train_test_inputs(cfg, w, x_calib, x_test)
    m0 = init_mapping(cfg, w, learn) if init is None else init
    m0.check(cfg, w.shape)
    m0 = jax.tree.map(lambda a: jnp.asarray(a, w.dtype), m0)
    y_rms = jnp.sqrt(jnp.mean(jnp.matmul(x_train, w, precision=jax.lax.Precision.HIGHEST) ** 2))
    y_rms = jnp.where(y_rms > 0, y_rms, 1.0)

    k_train, k_eval = jax.random.split(key)

    def objective(raw, keys):
        return expected_loss(cfg, w, x_train, keys, mapping=_from_raw(raw, y_rms), times=ts, loss=loss,
                             penalty=penalty, scale=scale, chunk=chunk)

    @jax.jit
    def step(raw, opt_state, i):
        keys = jax.random.split(jax.random.fold_in(k_train, i), n_instances)
        value, grads = jax.value_and_grad(objective)(raw, keys)
        updates, opt_state = optimizer.update(grads, opt_state, raw)
        raw = project(optax.apply_updates(raw, updates))
        return raw, opt_state, value

    raw = _to_raw(m0, y_rms)
    raw, history, wall, compile_time = _descend(step, raw, optimizer.init(raw), steps, progress, callback)
    learned = _from_raw(raw, y_rms)

    e_before = e_after = np.zeros((0, len(ts), x_test.shape[0]))
    if n_eval:
        eval_keys = jax.random.split(k_eval, n_eval)
        common = dict(times=ts, x_calib=x_train, scale=scale)
        e_before = mvm_errors(cfg, w, x_test, eval_keys, **common)
        e_after = mvm_errors(cfg, w, x_test, eval_keys, mapping=learned, **common)
    stats = lambda e: error_stats(e) if e.size else {}
    return OptimizeResult(
        mapping=learned, loss_history=history, before=stats(e_before), after=stats(e_after),
        errors_before=e_before, errors_after=e_after, times=ts, wall_time_s=wall, compile_time_s=compile_time,
        instances=steps * n_instances,
    )


# ---------------------------------------------------------------------------------------- files


def save_mapping(path: str | os.PathLike, mapping: LearnedMapping, metadata: dict | None = None) -> tuple[Path, Path]:
    """Write a learned mapping as ``<stem>.npz`` (arrays) and ``<stem>.json`` (format, shapes, metadata).

    Both files are written atomically (temporary file, then rename). ``path`` may name the stem or either
    file. Returns the two paths.
    """
    if not isinstance(mapping, LearnedMapping):
        raise TypeError(f"mapping must be a LearnedMapping, got {type(mapping).__name__}")
    npz, meta = io.mapping_paths(path)
    arrays = {f: np.asarray(getattr(mapping, f)) for f in FIELDS if getattr(mapping, f) is not None}
    if any(a.ndim and not np.all(np.isfinite(a)) for a in arrays.values()):
        raise ValueError("mapping has NaN or inf values; not saved")
    info = {"format": FORMAT, "fields": {k: list(a.shape) for k, a in arrays.items()},
            "metadata": metadata or {}}
    npz.parent.mkdir(parents=True, exist_ok=True)
    io.atomic_write_npz(npz, **arrays)
    io.atomic_write_json(meta, info)
    return npz, meta


def load_mapping(path: str | os.PathLike) -> LearnedMapping:
    """Read a mapping written by `save_mapping` (``path``: the stem, the ``.npz`` or the ``.json``)."""
    npz, meta = io.mapping_paths(path)
    if not npz.is_file():
        raise FileNotFoundError(f"mapping file not found: {npz}")
    if meta.is_file():
        info = json.loads(meta.read_text())
        if info.get("format") != FORMAT:
            raise ValueError(f"{meta}: not a jaxcim mapping (format {info.get('format')!r}, expected {FORMAT!r})")
    with np.load(npz) as data:
        unknown = set(data.files) - set(FIELDS)
        if unknown:
            raise ValueError(f"{npz}: unknown mapping fields {sorted(unknown)}; valid: {', '.join(FIELDS)}")
        return LearnedMapping(**{k: jnp.asarray(data[k]) for k in data.files})


__all__ = [
    "CURVE_KNOTS", "DEFAULT_LEARN", "FIELDS", "LEARNABLE", "LearnedMapping", "OptimizeResult", "conductance_penalty",
    "error_stats", "expected_loss", "init_mapping", "load_mapping", "mvm_errors", "nmse", "optimize_mapping", "project",
    "save_mapping",
]
