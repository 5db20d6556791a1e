"""Accuracy vs energy-efficiency sweeps and their Pareto front.

`sweep` evaluates every combination of a grid of settings: the energy account (`estimate`) and the MVM
accuracy from a small Monte Carlo (``jax.vmap`` of `jaxcim.simulate` over device-instance keys). Grid keys are
crossbar config paths (``"adc.bits"``, ``"device.levels"``), hardware fields prefixed ``"hw."``
(``"hw.rows_per_read"``) or ``"array"`` (rows = cols = n).

Rows activated per read (k < rows): the energy/latency account models it exactly (more reads, one conversion
per row group). For accuracy it is approximated by ``mapping.rows = k``: each conversion then sees k rows, which
is what a k-row read amounts to, except that jaxcim's digital partial-sum accumulation over row tiles replaces
the accumulation over row groups (identical arithmetic).

Discrete settings are searched, continuous ones descended: with ``refine=STEPS`` (`sweep`, `network_sweep`;
``jaxcim pareto --refine STEPS``) every configuration on the grid's Pareto front has its continuous knobs (read
voltage, g_max, ADC range: `jaxcim.energy.knobs.default_knobs`) moved by `refine` (gradient descent on log MVM
error over chips plus a penalty holding its own TOPS/W, `jaxcim.energy.knobs`), within the grid's range for a
knob the grid sweeps, at most the device's g_max, and a factor 2 otherwise. The refined configuration is
evaluated again by the same code on the same chips and added as a row (``refined``: True, ``refined_from``: its
grid row), so the front and the best configuration at the target are taken over both. Example (the shipped
``pareto`` study, ``--refine 20``; benchmarks/README.md): only the ADC margin moves (to 0.71-0.87); the 4-bit SAR
readout at 858 TOPS/W then loses 3.43 instead of 4.74 points at 1 year, while the best point at >= 200 TOPS/W (6-bit
SAR, 16 rows per read) changes within its confidence interval (1.85 -> 1.92 points) and stays unrefined.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcim.circuit.adc import adc_circuit
from jaxcim.config import CrossbarConfig
from jaxcim.core import simulate
from jaxcim.energy import knobs as kn
from jaxcim.energy.hardware import HardwareConfig, Workload
from jaxcim.energy.model import estimate

refine = kn.refine
"""`jaxcim.energy.knobs.refine`: gradient descent on one configuration's continuous knobs."""

TARGET_TOPS_PER_W = 200.0
"""Energy-efficiency target of multi-level ReRAM compute-in-memory programs with 256x256 arrays, TOPS/W: the
edge of published ReRAM macros (Hung et al., Nat. Electron. 2021: 194 TOPS/W with binary inputs and weights)."""


def nrmse(y: jax.Array, y_ref: jax.Array) -> jax.Array:
    """Normalized RMS error: ||y - y_ref|| / ||y_ref|| (dimensionless)."""
    return jnp.linalg.norm(y - y_ref) / jnp.linalg.norm(y_ref)


YEAR = 31557600.0
"""One (Julian) year, s."""

ADC_TYPES = ("ideal", "sar", "flash", "ramp")
"""Values of the ``"adc.type"`` grid key: the ideal quantizer or a `jaxcim.circuit.adc` circuit (its defaults)."""


def apply_settings(cfg: CrossbarConfig, hw: HardwareConfig, settings: Mapping[str, Any]):
    """(cfg, hw) with grid settings applied; returns also the config used for accuracy (rows = k).

    ``"adc.type"``: one of `ADC_TYPES` (``"ideal"``: no circuit). ``"array"``: rows = cols = n. A rows-per-read
    equal to or larger than the array reads all rows (0).
    """
    cfg_changes, hw_changes = {}, {}
    for key, value in settings.items():
        if key == "array":
            cfg_changes["mapping.rows"] = value
            cfg_changes["mapping.cols"] = value
        elif key == "adc.type":
            if value not in ADC_TYPES:
                raise ValueError(f"adc.type must be one of {', '.join(ADC_TYPES)}; got {value!r}")
            cfg_changes["adc.circuit"] = None if value == "ideal" else adc_circuit(value)
        elif key.startswith("hw."):
            hw_changes[key[3:]] = value
        else:
            cfg_changes[key] = value
    cfg = cfg.replace(**cfg_changes)
    if hw_changes.get("rows_per_read", 0) >= cfg.mapping.rows:
        hw_changes["rows_per_read"] = 0
    hw = hw.replace(**hw_changes)
    k = hw.rows_per_read
    cfg_acc = cfg.replace(**{"mapping.rows": k}) if 0 < k < cfg.mapping.rows else cfg
    return cfg, hw, cfg_acc


def sweep(
    cfg: CrossbarConfig, hw: HardwareConfig, grid: Mapping[str, Sequence[Any]], w: jax.Array, x: jax.Array, *,
    key: jax.Array, instances: int = 4, workload: Workload | None = None,
    metric: Callable[[jax.Array, jax.Array], jax.Array] = nrmse, t: float = 0.0, refine: int = 0,
    knobs: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Energy and Monte Carlo accuracy for every combination of ``grid``; optionally the front refined.

    Args:
      cfg, hw: the base configuration. grid: setting name -> values (see module docstring).
      w: weights (in, out). x: inputs (batch, in); also the ADC calibration inputs.
      key: Monte Carlo key; the same instance keys are used for every configuration.
      instances: Monte Carlo device instances per configuration.
      workload: the energy workload; default one MVM of ``w``'s shape with the statistics of ``x`` and ``w``.
      metric: error of one instance's outputs vs ``x @ w`` (default `nrmse`).
      t: read time after programming, s.
      refine: optimizer steps of `refine` for each Pareto-front configuration (0: none). knobs: its knobs
        (default `jaxcim.energy.refine.default_knobs`).

    Returns:
      one dict per configuration: the settings, ``error`` / ``error_std`` (metric mean and standard deviation
      over instances), ``tops_per_w``, ``tops``, ``tops_per_mm2``, ``energy_pj`` (per MVM), ``meets_target``,
      ``refined`` (False). With ``refine``, then one row per front configuration, ``refined`` True: its settings
      and refined knob values, the same numbers from the same code and chips, ``refined_from`` (the grid row's
      index), ``knobs_start``, ``refine_objective`` (before, after) and ``refine_improved``.
    """
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    _check_refine(refine, cfg, knobs)
    _check_grid(grid)
    keys = jax.random.split(key, instances)
    names = list(grid)
    out = []
    for combo in itertools.product(*(grid[n] for n in names)):
        settings = dict(zip(names, combo, strict=True))
        c, h, c_acc = apply_settings(cfg, hw, settings)
        out.append(dict(settings, **_mvm_row(c, h, c_acc, w, x, keys, workload, metric, t), refined=False))
    if refine:
        front = np.flatnonzero(pareto_front([r["tops_per_w"] for r in out], [r["error"] for r in out]))
        for i in front:
            settings = {n: out[i][n] for n in names}
            c, h, c_acc = apply_settings(cfg, hw, settings)
            res = kn.refine(c, h, w, x, key=key, steps=refine, n_instances=instances, t=t, workloads=workload,
                            cfg_acc=c_acc, **_refine_options(c, grid, knobs))
            c, c_acc = c.replace(**res.values), c_acc.replace(**res.values)
            out.append(dict(settings, **res.values, **_mvm_row(c, h, c_acc, w, x, keys, workload, metric, t),
                            refined=True, **_refine_record(i, res)))
    return out


def _mvm_row(c, h, c_acc, w, x, keys, workload, metric, t) -> dict[str, Any]:
    """Energy and Monte Carlo error of one configuration (one `sweep` row without its settings)."""
    wl = workload or Workload(w.shape[0], w.shape[1])
    rep = estimate(c, wl, h, w=w if workload is None else None, x=x if workload is None else None)
    y_ref = x @ w
    ys = jax.vmap(lambda k: simulate(c_acc, w, x, key=k, t=t))(keys)
    errs = np.asarray(jax.vmap(lambda y: metric(y, y_ref))(ys))
    tpw = float(rep.tops_per_w)
    return dict(error=float(errs.mean()), error_std=float(errs.std()), tops_per_w=tpw, tops=float(rep.tops),
                tops_per_mm2=float(rep.tops_per_mm2), energy_pj=float(rep.total) * 1e12,
                meets_target=tpw >= TARGET_TOPS_PER_W)


def _refine_options(c: CrossbarConfig, grid: Mapping[str, Sequence[Any]], knobs: Sequence[str] | None):
    """Knobs and bounds of a grid point's refinement: a knob the grid sweeps stays within the grid's values
    (the study's declared range), g_max at or below the device's (a conductance range uses less of the cell's
    range, never more than it has); others within a factor 2 of their value."""
    knobs = kn.check_knobs(c, kn.default_knobs(c) if knobs is None else knobs)
    bounds = {}
    for k in knobs:
        x0 = kn.knob_value(c, k)
        lo, hi = x0 / 2.0, x0 * 2.0
        if k in grid:
            lo, hi = max(lo, float(min(grid[k]))), min(hi, float(max(grid[k])))
        if k == "device.g_max":
            hi = min(hi, x0)
        bounds[k] = (lo, hi)
    return dict(knobs=knobs, bounds=bounds)


def _refine_record(start: int, res: kn.RefineResult) -> dict[str, Any]:
    """The refinement's own account, stored in a refined row: where it started and what the descent saw."""
    return dict(refined_from=int(start), knobs_start=res.start, refine_objective=[res.objective_start, res.objective],
                refine_improved=res.improved)


def _check_refine(refine: Any, cfg: CrossbarConfig, knobs: Sequence[str] | None) -> None:
    """Before any work: refine is a step count and the knobs are continuous knobs of the base config."""
    if isinstance(refine, bool) or not isinstance(refine, int) or refine < 0:
        raise ValueError(f"refine must be a number of optimizer steps >= 0 (0: no refinement), got {refine!r}")
    if refine and knobs is not None:
        kn.check_knobs(cfg, knobs)


def pareto_front(tops_per_w: Sequence[float], error: Sequence[float]) -> np.ndarray:
    """Boolean mask of the non-dominated points (higher TOPS/W and lower error are better)."""
    e = np.asarray(tops_per_w, float)
    a = np.asarray(error, float)
    if e.shape != a.shape or e.ndim != 1:
        raise ValueError(f"tops_per_w and error must be 1-D of equal length, got {e.shape} and {a.shape}")
    better_eq = (e[None, :] >= e[:, None]) & (a[None, :] <= a[:, None])
    strictly = (e[None, :] > e[:, None]) | (a[None, :] < a[:, None])
    return ~np.any(better_eq & strictly, axis=1)


def plot(results: Sequence[Mapping[str, Any]], ax=None, target: float = TARGET_TOPS_PER_W):
    """Scatter of error vs TOPS/W with the Pareto front and the target line (matplotlib)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    tpw = np.array([r["tops_per_w"] for r in results])
    err = np.array([r["error"] for r in results])
    front = pareto_front(tpw, err)
    ax.scatter(tpw, err, c="0.6", s=18, label="configurations")
    order = np.argsort(tpw[front])
    ax.plot(tpw[front][order], err[front][order], "o-", c="C3", label="Pareto front")
    ax.axvline(target, ls="--", c="C2", label=f"{target:g} TOPS/W target")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("TOPS/W")
    ax.set_ylabel("MVM error (NRMSE, Monte Carlo mean)")
    ax.legend(fontsize=8)
    return ax


# ----------------------------------------------------------------------------------------- networks


def network_workloads(model: Any) -> list[Workload]:
    """One `Workload` per dense layer of an nnx model (``nnx.Linear`` / `jaxcim.nn.AnalogLinear`), in order."""
    out = []
    for path, layer in _dense_layers(model):
        kernel = _kernel(layer)
        if kernel.ndim != 2:
            raise ValueError(f"layer {path}: only dense layers have an energy workload here (got a kernel of shape "
                             f"{kernel.shape}); use a list of Workload for convolutions")
        out.append(Workload(int(kernel.shape[0]), int(kernel.shape[1]), name=path))
    if not out:
        raise ValueError("the model has no dense layer to map onto crossbars")
    return out


def _accuracy_config(c_acc: CrossbarConfig, base: CrossbarConfig) -> CrossbarConfig:
    """The config the accuracy is evaluated with: the read voltage set back to the base one where it cannot
    change the result (linear ideal circuit and an ADC range that follows the currents: every current and the
    full scale scale with v_read), so configurations that differ only in v_read share one evaluation."""
    if c_acc.circuit.kind == "ideal" and c_acc.adc.range_mode != "fixed":
        return c_acc.replace(**{"dac.v_read": base.dac.v_read})
    return c_acc


def _ci95(a: np.ndarray) -> float:
    """Half-width of the 95 % confidence interval of the mean over chip instances (normal approximation)."""
    return float(1.96 * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")


def network_sweep(
    model: Any, data: tuple[Any, Any], cfg: CrossbarConfig, hw: HardwareConfig, grid: Mapping[str, Sequence[Any]],
    *, key: jax.Array, instances: int = 16, times: Sequence[float] = (1.0, YEAR), x_calib: Any = None,
    progress: Callable[[int, int], None] | None = None, refine: int = 0, knobs: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Classification accuracy over chip instances and TOPS/W of a network for every combination of ``grid``.

    The accuracy is the chip Monte Carlo of `jaxcim.nn.evaluate` (instance i is the chip ``fold_in(key, i)``,
    the same chips for every configuration) at each read time; the energy is `estimate` over the network's dense
    layers (`network_workloads`), one inference. Configurations that differ only in energy-only settings (input
    encoding, hardware fields other than rows per read, and the read voltage on a linear ideal circuit with a
    calibrated or full-scale ADC range) share one accuracy evaluation: jaxcim's read path applies the same quantized
    drive level whether the row voltage is amplitude- or pulse-width-coded, and there every current and the ADC's
    full scale scale together with the read voltage.

    With ``refine``, every configuration on the Pareto front (accuracy loss at the last time vs TOPS/W) has its
    continuous knobs refined by `refine`: the objective's error is the MVM NRMSE of each dense layer on its own
    digital inputs (those of ``x_calib``) at the last time, its efficiency target the configuration's own TOPS/W;
    the refined configuration is then evaluated by the same code, on the same chips, as the grid.

    Args:
      model: a trained nnx classifier (digital weights; its dense layers are mapped onto crossbars).
      data: (inputs, labels) to evaluate on. cfg, hw: the base configuration. grid: setting -> values (see
        `apply_settings`; ``"adc.type"``, ``"array"``, ``"hw.*"`` and config paths such as ``"dac.v_read"``,
        ``"device.g_max"``, ``"adc.bits"``).
      key: the chips' key. instances: chips per configuration. times: read times after programming, s.
      x_calib: ADC calibration inputs (default: the first 128 of ``data``).
      progress: called as progress(done, total) after each accuracy evaluation.
      refine: optimizer steps per front configuration (0: none; `refine` trains on ``min(instances, 8)`` fresh
        chips per step). knobs: its knobs (default `jaxcim.energy.knobs.default_knobs`).

    Returns:
      one dict per configuration: the settings; ``tops_per_w``, ``tops``, ``energy_nj`` (per inference);
      ``accuracy`` / ``ci95`` / ``loss`` (digital accuracy minus the mean, percentage points) per time, lists in
      the order of ``times``; ``digital_accuracy``; ``meets_target`` (>= `TARGET_TOPS_PER_W`); ``refined``.
      Refined rows follow the grid's, as in `sweep`.
    """
    from jaxcim.nn.evaluate import accuracy

    if instances < 2:
        raise ValueError(f"instances must be >= 2 (a confidence interval needs two chips), got {instances}")
    _check_refine(refine, cfg, knobs)
    _check_grid(grid)
    wls = network_workloads(model)
    run = dict(model=model, data=data, base=cfg, wls=wls, key=key, instances=instances, times=tuple(times),
               x_calib=x_calib, digital=100.0 * accuracy(model, data), cache={}, progress=progress)
    names = list(grid)
    out = []
    for combo in itertools.product(*(grid[n] for n in names)):
        settings = dict(zip(names, combo, strict=True))
        out.append(dict(settings, **_network_row(run, *apply_settings(cfg, hw, settings)), refined=False))
    if refine:
        out += _refine_network_front(run, out, names, hw, grid, refine, knobs)
    return out


def _network_row(run: dict[str, Any], c: CrossbarConfig, h: HardwareConfig, c_acc: CrossbarConfig):
    """Energy and chip accuracy of one configuration (a `network_sweep` row without its settings)."""
    from jaxcim.nn.evaluate import evaluate

    rep = estimate(c, run["wls"], h)
    c_acc = _accuracy_config(c_acc, run["base"])
    tag = repr(sorted(c_acc.to_dict().items(), key=str))
    cache = run["cache"]
    if tag not in cache:
        res = evaluate(run["model"], c_acc, run["data"], key=run["key"], n_instances=run["instances"],
                       times=run["times"], x_calib=run["x_calib"])
        cache[tag] = 100.0 * np.asarray(res.accuracies)
        if run["progress"] is not None:
            run["progress"](len(cache), None)
    acc = cache[tag]
    tpw = float(rep.tops_per_w)
    digital = run["digital"]
    return dict(tops_per_w=tpw, tops=float(rep.tops), energy_nj=float(rep.energy) * 1e9,
                accuracy=[float(a) for a in acc.mean(axis=0)], ci95=[_ci95(acc[:, i]) for i in range(acc.shape[1])],
                loss=[float(digital - a) for a in acc.mean(axis=0)], digital_accuracy=digital,
                times=list(run["times"]), meets_target=tpw >= TARGET_TOPS_PER_W)


def _refine_network_front(run, out, names, hw, grid, steps, knobs) -> list[dict[str, Any]]:
    x_calib = run["x_calib"]
    xc = jnp.asarray(run["data"][0][:128] if x_calib is None else x_calib)
    ws = [_kernel(layer) for _, layer in _dense_layers(run["model"])]
    xs = layer_inputs(run["model"], xc)
    front = np.flatnonzero(pareto_front([r["tops_per_w"] for r in out], [r["loss"][-1] for r in out]))
    refined = []
    for i in front:
        settings = {n: out[i][n] for n in names}
        c, h, c_acc = apply_settings(run["base"], hw, settings)
        res = kn.refine(c, h, ws, xs, key=run["key"], steps=steps, n_instances=min(run["instances"], 8),
                        t=run["times"][-1], workloads=run["wls"], cfg_acc=c_acc, **_refine_options(c, grid, knobs))
        c, c_acc = c.replace(**res.values), c_acc.replace(**res.values)
        refined.append(dict(settings, **res.values, **_network_row(run, c, h, c_acc), refined=True,
                            **_refine_record(i, res)))
    return refined


def _check_grid(grid: Mapping[str, Any]) -> None:
    """ValueError naming the first grid key whose values are not a non-empty list."""
    for name, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")


def _dense_layers(model: Any) -> list[tuple[str, Any]]:
    from jaxcim.nn.convert import convertible_layers

    return convertible_layers(model)


def _kernel(layer: Any) -> jax.Array:
    return layer.kernel.get_value() if hasattr(layer.kernel, "get_value") else layer.kernel


def layer_inputs(model: Any, x: jax.Array) -> list[jax.Array]:
    """The inputs each dense layer of ``model`` (in `network_workloads` order) receives when the model runs on
    ``x`` digitally: (batch, in_features) per layer."""
    layers = [layer for _, layer in _dense_layers(model)]
    index = {id(layer): j for j, layer in enumerate(layers)}
    seen: list[Any] = [None] * len(layers)
    classes = {type(layer) for layer in layers}
    own = {cls: cls.__dict__.get("__call__") for cls in classes}  # None: inherited

    def recording(call):
        def wrapped(self, u, *args, **kwargs):
            j = index.get(id(self))
            if j is not None and seen[j] is None:
                seen[j] = u
            return call(self, u, *args, **kwargs)
        return wrapped

    try:  # the classes' __call__ records for the duration of one forward pass
        for cls in classes:
            cls.__call__ = recording(cls.__call__)
        model(x)
    finally:
        for cls, call in own.items():
            if call is None:
                del cls.__call__
            else:
                cls.__call__ = call
    missing = [j for j, u in enumerate(seen) if u is None]
    if missing:
        raise ValueError(f"dense layers {missing} were not called by the model's forward pass")
    return [jnp.reshape(u, (-1, u.shape[-1])) for u in seen]


def best_at_target(results: Sequence[Mapping[str, Any]], time_index: int = -1,
                   target: float = TARGET_TOPS_PER_W) -> Mapping[str, Any] | None:
    """The configuration with the smallest accuracy loss at ``times[time_index]`` among those reaching
    ``target`` TOPS/W (ties: the more efficient), or None."""
    hits = [r for r in results if r["tops_per_w"] >= target]
    return min(hits, key=lambda r: (r["loss"][time_index], -r["tops_per_w"])) if hits else None


def as_good_and_more_efficient(results: Sequence[Mapping[str, Any]],
                               best: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Configurations more efficient than ``best`` whose accuracy loss differs from ``best``'s by less than the 95 %
    interval of the difference at every read time, most efficient first.

    The interval of the difference is sqrt(ci**2 + best_ci**2), the two means taken as independent. The pick of
    `best_at_target` is by the loss at one time alone; these are the configurations the Monte Carlo cannot tell
    from it at its chip count, at a higher TOPS/W. The chips are shared between configurations, so a paired
    interval would be narrower: this flags candidates, it does not rank them.
    """
    def close(r):
        return all(abs(r["loss"][j] - best["loss"][j]) <= math.hypot(r["ci95"][j], best["ci95"][j])
                   for j in range(len(best["loss"])))

    hits = [r for r in results if r["tops_per_w"] > best["tops_per_w"] and close(r)]
    return sorted(hits, key=lambda r: -r["tops_per_w"])


def label(result: Mapping[str, Any], names: Sequence[str]) -> str:
    """A short label of a configuration's settings, e.g. ``"64x64 k=16 sar 6b pwm 0.1V"`` (``" refined"`` appended
    for a configuration whose continuous knobs `refine` moved)."""
    short = {"array": lambda v: f"{v}x{v}", "hw.rows_per_read": lambda v: f"k={v or 'all'}",
             "adc.type": str, "adc.bits": lambda v: f"{v}b", "hw.input_encoding": lambda v: "PWM" if v == "pwm"
             else "amp", "dac.v_read": lambda v: f"{v:.3g}V", "device.g_max": lambda v: f"{v * 1e6:.3g}uS"}
    text = " ".join(short.get(n, lambda v, n=n: f"{n.split('.')[-1]}={v}")(result[n]) for n in names)
    return text + " refined" if result.get("refined") else text


def plot_network(results: Sequence[Mapping[str, Any]], names: Sequence[str], time_index: int = -1, ax=None,
                 target: float = TARGET_TOPS_PER_W):
    """Accuracy loss (with 95 % intervals) vs TOPS/W at one read time; the Pareto front's points are labelled
    with their configuration (matplotlib; sized to be read in print)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 5.5))[1]
    tpw = np.array([r["tops_per_w"] for r in results])
    loss = np.array([r["loss"][time_index] for r in results])
    ci = np.array([r["ci95"][time_index] for r in results])
    front = pareto_front(tpw, loss)
    ax.errorbar(tpw[~front], loss[~front], yerr=ci[~front], fmt="o", c="0.65", ms=4, lw=0.8,
                label="configurations (95 % CI)")
    order = np.flatnonzero(front)[np.argsort(tpw[front])]
    ax.errorbar(tpw[order], loss[order], yerr=ci[order], fmt="o-", c="C3", ms=5, lw=1.2, label="Pareto front")
    ax.axvline(target, ls="--", c="C2", label=f"{target:g} TOPS/W")
    ax.axhline(0.0, c="0.3", lw=0.6)
    ax.set_xscale("log")
    _label_front(ax, [(label(results[i], names), tpw[i], loss[i]) for i in order])
    ax.set_xlabel("energy efficiency (TOPS/W, one inference)", fontsize=10)
    t = results[0]["times"][time_index]
    when = "1 year" if abs(t - YEAR) < 1 else f"{t:g} s"
    ax.set_ylabel(f"accuracy loss vs digital at {when} (points)", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return ax


def _label_front(ax, points) -> None:
    """Label each point on a white box with a leader line, above or below it, at the first offset where the box
    overlaps no earlier label and stays inside the axes (greedy placement; the last offset tried is kept if none
    is free)."""
    from matplotlib.text import Text

    fig = ax.figure
    fig.canvas.draw()  # fixes the axes limits, so that each label's extent is known before the final draw
    renderer = fig.canvas.get_renderer()
    rises = (-30, 28, -56, 52, -82, 78, -108, 104)
    placed = []
    for j, (text, x, y) in enumerate(points):
        ha = "right" if j == len(points) - 1 else "center"
        tries = rises[j % 2:] + rises[:j % 2]  # alternate below / above along the front
        for k, dy in enumerate(tries):
            ann = ax.annotate(text, (x, y), xytext=(-10, dy), textcoords="offset points", fontsize=8, color="C3",
                              ha=ha, bbox=dict(fc="white", ec="C3", lw=0.5, alpha=0.9),
                              arrowprops=dict(arrowstyle="-", color="C3", lw=0.6))
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer).expanded(1.08, 1.6)  # the text and its box, not the leader
            inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1
            if (inside and not any(box.overlaps(b) for b in placed)) or k == len(tries) - 1:
                placed.append(box)
                break
            ann.remove()


def efficiency_gradients(cfg: CrossbarConfig, hw: HardwareConfig, workloads: Workload | Sequence[Workload],
                         names: Sequence[str] = ("dac.v_read", "device.g_max", "hw.t_read")) -> dict[str, float]:
    """Elasticities d log(TOPS/W) / d log(knob) of the continuous knobs, by ``jax.grad`` through `estimate`.

    A value of -0.8 for ``"dac.v_read"`` says: 10 % less read voltage buys ~8 % more TOPS/W. The search uses them
    to move along the continuous knobs (read voltage, conductance range, pulse width) around a discrete grid
    point; their accuracy cost comes from the chip Monte Carlo (`network_sweep`).

    Args:
      cfg, hw: the configuration. workloads: the layers of one inference. names: config paths or ``"hw."``
        fields with float values.
    """
    wls = list(workloads) if isinstance(workloads, list | tuple) else [workloads]

    def log_tpw(log_values):
        changes = {n: jnp.exp(v) for n, v in zip(names, log_values, strict=True)}
        c = cfg.replace(**{n: v for n, v in changes.items() if not n.startswith("hw.")})
        h = hw.replace(**{n[3:]: v for n, v in changes.items() if n.startswith("hw.")})
        return jnp.log(estimate(c, wls, h).tops_per_w)

    def value(n):
        obj, field = (hw, n[3:]) if n.startswith("hw.") else (cfg, n)
        for part in field.split("."):
            obj = getattr(obj, part)
        return float(obj)

    x0 = [jnp.log(jnp.asarray(value(n), jnp.float32)) for n in names]
    grads = jax.grad(log_tpw)(x0)
    return {n: float(g) for n, g in zip(names, grads, strict=True)}
