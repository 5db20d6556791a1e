"""Gradient refinement of one configuration's continuous knobs: read voltage, conductance range, ADC range.

The discrete part of the accuracy-vs-TOPS/W search (array size, rows per read, ADC type and bits, input
encoding) is a grid (`jaxcim.energy.pareto.sweep`, `jaxcim.energy.pareto.network_sweep`). Around one grid point
`refine` moves the continuous knobs (`KNOBS`) by gradient descent (an optax optimizer) on

    L(theta) = log E(theta) + weight / (2 tau) * max(0, log target - log TOPS/W(theta))**2,  tau = `TAU`

theta: the knobs' logarithms, projected after every step onto their bounds (the config's own valid range, e.g.
g_max > g_min, intersected with a trust region around the start and the caller's ``bounds``). E: the mean over
layers and chip instances of the MVM NRMSE of `jaxcim.simulate` at read time ``t`` (``jax.vmap`` over instance
keys; fresh chips every step). TOPS/W: `jaxcim.energy.estimate`. So L is "minimize the error subject to TOPS/W >=
target" with a one-sided quadratic penalty: zero at or above the target (efficiency beyond it buys nothing),
slope ``weight`` at a shortfall of ``tau`` (at the optimum the shortfall is ~tau / weight times the error's
elasticity over the efficiency's: a fraction of a percent).

Gradients reach the knobs through the chip model as `jaxcim.optimize.optimize_mapping`'s do: programming noise
reparameterized (G = G_target + sigma(G_target; g_max) * eps, `jaxcim.programming`), relaxation and read noise
scaled by the conductance range, quantizers straight-through. The ADC's reconstruction code * LSB then has the
derivative round(u) - u with respect to its full scale inside the range and +-1 outside (the learned step size
gradient of Esser et al., "Learned Step Size Quantization", ICLR 2020): the ADC range trades clipping against
resolution. A calibrated ADC range is a measurement of the programmed chip (margin times its largest calibration
current) and `jaxcim.program` stops its gradient; here it follows the knobs as a full scale proportional to
v_read * (g_max - g_min) * margin would (`RangeFollows`, a `jaxcim.mapping.WeightMapping` multiplying the range
by a factor of value one): exact for noise-free targets on a linear circuit, first order otherwise.

What the model can and cannot trade: on a linear circuit with a calibrated or full-scale ADC range every current
and the range scale together with the read voltage, so the read voltage has no accuracy cost in jaxcim (no sense
amplifier thermal noise is modelled): where the efficiency penalty binds, refinement lowers it to its bound.
Bound it by what the circuit allows (``bounds``; the pareto search uses the study's own grid range).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxcim import mapping as mp
from jaxcim.config import CrossbarConfig, static_zeros, with_static_zeros
from jaxcim.core import simulate
from jaxcim.energy.hardware import HardwareConfig, Workload
from jaxcim.energy.model import estimate

KNOBS = ("dac.v_read", "device.g_max", "adc.margin", "adc.i_max")
"""Continuous knobs `refine` accepts: read voltage (V), top conductance (S), calibrated ADC range multiplier and
fixed ADC full-scale current (A)."""
TAU = 0.02
"""Shortfall below the TOPS/W target, in log TOPS/W (2 %), at which the penalty's slope is ``weight``."""


def default_knobs(cfg: CrossbarConfig) -> tuple[str, ...]:
    """The continuous knobs of ``cfg``: read voltage, g_max and its ADC range knob (margin when calibrated,
    i_max when fixed; none for a full-scale range, which follows v_read and g_max)."""
    adc = {"calibrated": ("adc.margin",), "fixed": ("adc.i_max",)}.get(cfg.adc.range_mode, ())
    return ("dac.v_read", "device.g_max", *adc)


def knob_value(cfg: CrossbarConfig, name: str) -> float:
    """The value of the config path ``name`` (e.g. ``"dac.v_read"``)."""
    obj = cfg
    for part in name.split("."):
        obj = getattr(obj, part)
    return float(obj)


def check_knobs(cfg: CrossbarConfig, knobs: Sequence[str]) -> tuple[str, ...]:
    """The knobs as a tuple; ValueError naming the knob unless each is a distinct `KNOBS` entry that acts on
    ``cfg`` (``adc.margin`` needs ``adc.range_mode = "calibrated"``, ``adc.i_max`` needs ``"fixed"``)."""
    if isinstance(knobs, str) or not isinstance(knobs, Sequence) or not knobs:
        raise ValueError(f"knobs must be a non-empty list of config paths among {', '.join(KNOBS)}; got {knobs!r}")
    for k in knobs:
        if k not in KNOBS:
            raise ValueError(f"knob {k!r} is not a continuous knob refine can move; valid: {', '.join(KNOBS)}")
    if len(set(knobs)) != len(knobs):
        raise ValueError(f"knobs must be distinct, got {list(knobs)}")
    need = {"adc.margin": "calibrated", "adc.i_max": "fixed"}
    for k, mode in need.items():
        if k in knobs and cfg.adc.range_mode != mode:
            raise ValueError(f"knob {k!r} acts only with adc.range_mode = {mode!r}; this config's is "
                             f"{cfg.adc.range_mode!r}")
    return tuple(knobs)


def knob_bounds(cfg: CrossbarConfig, knobs: Sequence[str], span: float = 2.0,
                bounds: Mapping[str, tuple[float, float]] | None = None) -> dict[str, tuple[float, float]]:
    """(lo, hi) per knob: the trust region [x0 / span, x0 * span] around the config's value, narrowed by
    ``bounds`` and by the config's valid range (all > 0; g_max > g_min)."""
    if not span > 1.0:
        raise ValueError(f"span must be > 1, got {span!r}")
    bounds = dict(bounds or {})
    for k in bounds:
        if k not in knobs:
            raise ValueError(f"bounds names {k!r}, which is not among the knobs {list(knobs)}")
    out = {}
    for k in knobs:
        x0 = knob_value(cfg, k)
        lo, hi = x0 / span, x0 * span
        if k in bounds:
            blo, bhi = (float(b) for b in bounds[k])
            if not 0 < blo <= bhi:
                raise ValueError(f"bounds[{k!r}] must be 0 < lo <= hi, got {bounds[k]!r}")
            lo, hi = max(lo, blo), min(hi, bhi)
        if k == "device.g_max":
            lo = max(lo, float(cfg.device.g_min) * (1 + 1e-3))
        if not lo <= hi:
            raise ValueError(f"{k}: empty range [{lo:g}, {hi:g}] (its value {x0:g}, the bounds and the config's "
                             "valid range do not overlap)")
        out[k] = (lo, hi)
    return out


@struct.dataclass
class RangeFollows:
    """The plain mapping with the ADC full scale multiplied by ``factor`` (a `jaxcim.mapping.WeightMapping`).

    ``factor`` has the value 1 and carries the derivative of a calibrated full scale with respect to the knobs
    (see the module docstring), so the forward pass is the chip's and the gradient sees the range move.
    """

    factor: Any

    def check(self, cfg: CrossbarConfig, w_shape: tuple[int, ...]) -> None:
        """Fits any config and weight shape."""

    def conductance_targets(self, cfg: CrossbarConfig, w: jax.Array, scale: jax.Array | None = None):
        return mp.conductance_targets(cfg, w, scale)

    def adjust_adc_range(self, adc_range: jax.Array) -> jax.Array:
        return adc_range * self.factor

    def output_correction(self, out_features: int, dtype) -> tuple[Any, Any]:
        return None, None


def _one(v):
    """v / stop_gradient(v): the value 1 with the derivative of log v."""
    return v / jax.lax.stop_gradient(v)


def _range_factor(cfg: CrossbarConfig, values: Mapping[str, jax.Array]):
    f = jnp.ones(())
    for k, v in values.items():
        if k == "device.g_max":
            f = f * _one(v - cfg.device.g_min)
        elif k in ("dac.v_read", "adc.margin"):
            f = f * _one(v)
    return f


@struct.dataclass
class RefineResult:
    """What `refine` found.

    Attributes:
      knobs: the refined config paths. start / values: their values before and after (SI units).
      cfg: the energy config with the refined values (apply ``values`` to other configs with ``cfg.replace``).
      objective_start / objective: L on the evaluation chips (``split(key, n_instances)``) before and after.
      error_start / error: the mean MVM NRMSE on those chips. tops_per_w_start / tops_per_w: `estimate`'s TOPS/W.
      target: the TOPS/W the penalty holds. history: L of every step (fresh training chips each step).
      improved: whether the descent lowered L on the evaluation chips; if not, ``values`` are the start values.
      gradient_start: dL / d log(knob) at the start on the evaluation chips.
    """

    knobs: tuple[str, ...] = struct.field(pytree_node=False)
    start: dict[str, float] = struct.field(pytree_node=False)
    values: dict[str, float] = struct.field(pytree_node=False)
    cfg: CrossbarConfig = struct.field(pytree_node=False)
    objective_start: float = struct.field(pytree_node=False)
    objective: float = struct.field(pytree_node=False)
    error_start: float = struct.field(pytree_node=False)
    error: float = struct.field(pytree_node=False)
    tops_per_w_start: float = struct.field(pytree_node=False)
    tops_per_w: float = struct.field(pytree_node=False)
    target: float = struct.field(pytree_node=False)
    history: list[float] = struct.field(pytree_node=False)
    improved: bool = struct.field(pytree_node=False)
    gradient_start: dict[str, float] = struct.field(pytree_node=False)


def _layers(w, x, x_calib):
    ws = list(w) if isinstance(w, list | tuple) else [w]
    xs = list(x) if isinstance(x, list | tuple) else [x]
    xcs = list(x_calib) if isinstance(x_calib, list | tuple) else [x_calib] * len(ws)
    if not (len(ws) == len(xs) == len(xcs)):
        raise ValueError(f"w, x and x_calib must give one array per layer; got {len(ws)}, {len(xs)} and {len(xcs)}")
    return ws, xs, xcs


def _objective(log_values, keys, log_target, cfg, cfg_acc, hw, wls, ws, xs, xcs, ew, ex, t, weight, *, knobs,
               follows, zeros):
    # features that are off (concrete zeros) stay Python zeros: simulate then skips their random draws
    cfg, cfg_acc = with_static_zeros(cfg, zeros[0]), with_static_zeros(cfg_acc, zeros[1])
    values = dict(zip(knobs, jnp.exp(log_values), strict=True))
    c_e, c_a = cfg.replace(**values), cfg_acc.replace(**values)
    m = RangeFollows(_range_factor(cfg_acc, values)) if follows else None
    errs = []
    for wi, xi, xci in zip(ws, xs, xcs, strict=True):
        ref = xi @ wi
        ys = jax.vmap(lambda k, wi=wi, xi=xi, xci=xci: simulate(c_a, wi, xi, key=k, t=t, x_calib=xci, mapping=m))(keys)
        errs.append(jnp.mean(jax.vmap(lambda y, ref=ref: jnp.linalg.norm(y - ref) / jnp.linalg.norm(ref))(ys)))
    err = sum(errs) / len(errs)
    tpw = estimate(c_e, wls, hw, w=ew, x=ex).tops_per_w
    short = jnp.maximum(log_target - jnp.log(tpw), 0.0)
    return jnp.log(err) + weight / (2 * TAU) * short * short, (err, tpw)


# module level: refinements of configurations with the same static settings and shapes share one compilation
_value_and_grad = jax.jit(jax.value_and_grad(_objective, has_aux=True), static_argnames=("knobs", "follows", "zeros"))


def objective_fn(cfg: CrossbarConfig, hw: HardwareConfig, w, x, knobs: Sequence[str], *, t: float = 0.0,
                 workloads: Workload | Sequence[Workload] | None = None, x_calib=None,
                 cfg_acc: CrossbarConfig | None = None, weight: float = 10.0):
    """The refinement objective and its gradient: ``f(log_values, keys, log_target) -> ((L, (E, TOPS/W)), dL)``.

    ``log_values``: (len(knobs),) log of the knobs (SI units); ``keys``: (n,) chip keys; ``log_target``: log of
    the TOPS/W target (a float32 scalar); ``dL``: dL / d log_values. Jit-compiled. Arguments as `refine`'s.
    """
    knobs = check_knobs(cfg, knobs)
    cfg_acc = cfg if cfg_acc is None else cfg_acc
    ws, xs, xcs = _layers(w, x, x_calib)
    if workloads is None:
        if len(ws) != 1:
            raise ValueError("workloads are required with several layers (one Workload per layer)")
        wls, ew, ex = [Workload(ws[0].shape[0], ws[0].shape[1])], ws[0], xs[0]
    else:
        wls = list(workloads) if isinstance(workloads, list | tuple) else [workloads]
        ew = ex = None
    follows = cfg_acc.adc.range_mode == "calibrated"
    zeros = tuple(static_zeros(c) - set(knobs) for c in (cfg, cfg_acc))

    def f(log_values, keys, log_target):
        return _value_and_grad(log_values, keys, log_target, cfg, cfg_acc, hw, wls, ws, xs, xcs, ew, ex,
                               jnp.float32(t), jnp.float32(weight), knobs=knobs, follows=follows, zeros=zeros)

    return f


def refine(
    cfg: CrossbarConfig, hw: HardwareConfig, w: jax.Array | Sequence[jax.Array], x: jax.Array | Sequence[jax.Array],
    *, key: jax.Array, knobs: Sequence[str] | None = None, steps: int = 20,
    optimizer: optax.GradientTransformation | None = None, n_instances: int = 4, t: float = 0.0,
    target: float | None = None, weight: float = 10.0, span: float = 2.0,
    bounds: Mapping[str, tuple[float, float]] | None = None, workloads: Workload | Sequence[Workload] | None = None,
    x_calib: Any = None, cfg_acc: CrossbarConfig | None = None,
) -> RefineResult:
    """Optimize the continuous knobs of one configuration by gradient descent (see the module docstring).

    Args:
      cfg, hw: the configuration (its discrete settings fixed). w: weights (in, out), or one per layer.
      x: inputs (batch, in), or one array per layer (a layer's inputs). key: the chips' key: the evaluation chips
        are ``jax.random.split(key, n_instances)`` (those of `jaxcim.energy.pareto.sweep`), step s trains on
        ``split(fold_in(key, s + 1), n_instances)``.
      knobs: config paths among `KNOBS`; default `default_knobs`. steps: optimizer steps.
      optimizer: an optax optimizer on the knobs' logarithms; default ``optax.adam(0.05, eps=1e-4)`` (~5 % per
        step; the larger eps keeps Adam from amplifying float-rounding gradients of a knob the error does not
        depend on into full steps).
      n_instances: chips per step. t: read time after programming, s.
      target: TOPS/W the penalty holds; default the configuration's own (refine then buys accuracy with no loss
        of efficiency). weight: the penalty's weight against log error.
      span: trust region: each knob stays in [x0 / span, x0 * span]. bounds: narrower (lo, hi) per knob, SI.
      workloads: the energy workloads; default one MVM of ``w``'s shape with the statistics of ``w`` and ``x``
        (as `jaxcim.energy.pareto.sweep`). x_calib: ADC calibration inputs (default ``x``), or one per layer.
      cfg_acc: the config the accuracy is simulated with, if not ``cfg`` (`jaxcim.energy.pareto.apply_settings`'s
        rows-per-read stand-in); the knobs are applied to both.

    Returns:
      A `RefineResult`: the knobs before and after, and the objective, error and TOPS/W on the evaluation chips.
    """
    knobs = check_knobs(cfg, default_knobs(cfg) if knobs is None else knobs)
    if cfg_acc is not None:
        check_knobs(cfg_acc, knobs)
    if int(steps) != steps or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if int(n_instances) != n_instances or n_instances < 1:
        raise ValueError(f"n_instances must be an integer >= 1, got {n_instances!r}")
    if not weight > 0:
        raise ValueError(f"weight must be > 0, got {weight!r}")
    if target is not None and not target > 0:
        raise ValueError(f"target must be a TOPS/W > 0, got {target!r}")
    lim = knob_bounds(cfg, knobs, span, bounds)
    lo = jnp.log(jnp.asarray([lim[k][0] for k in knobs]))
    hi = jnp.log(jnp.asarray([lim[k][1] for k in knobs]))
    f = objective_fn(cfg, hw, w, x, knobs, t=t, workloads=workloads, x_calib=x_calib, cfg_acc=cfg_acc,
                     weight=weight)
    start = {k: knob_value(cfg, k) for k in knobs}
    theta0 = jnp.clip(jnp.log(jnp.asarray([start[k] for k in knobs], jnp.float32)), lo, hi)
    eval_keys = jax.random.split(key, n_instances)
    if target is None:
        target = float(f(theta0, eval_keys, jnp.float32(0.0))[0][1][1])
    log_target = jnp.float32(math.log(target))
    opt = optimizer or optax.adam(0.05, eps=1e-4)

    @jax.jit
    def update(theta, state, g):
        upd, state = opt.update(g, state, theta)
        return jnp.clip(optax.apply_updates(theta, upd), lo, hi), state

    theta, state, history = theta0, opt.init(theta0), []
    for s in range(steps):
        (loss, _), g = f(theta, jax.random.split(jax.random.fold_in(key, s + 1), n_instances),
                                      log_target)
        theta, state = update(theta, state, g)
        history.append(float(loss))
    (l0, (e0, p0)), g0 = f(theta0, eval_keys, log_target)
    (l1, (e1, p1)), _ = f(theta, eval_keys, log_target)
    improved = bool(l1 < l0)
    if not improved:
        l1, e1, p1 = l0, e0, p0
    values = dict(start) if not improved else \
        {k: min(max(float(v), lim[k][0]), lim[k][1])  # float32 rounding must not leave the bounds
         for k, v in zip(knobs, np.exp(np.asarray(theta, np.float64)), strict=True)}
    return RefineResult(knobs=knobs, start=start, values=values, cfg=cfg.replace(**values),
                        objective_start=float(l0), objective=float(l1), error_start=float(e0), error=float(e1),
                        tops_per_w_start=float(p0), tops_per_w=float(p1), target=float(target), history=history,
                        improved=improved, gradient_start={k: float(v) for k, v in zip(knobs, g0, strict=True)})


__all__ = ["KNOBS", "RangeFollows", "RefineResult", "check_knobs", "default_knobs", "knob_bounds", "objective_fn",
           "refine"]
