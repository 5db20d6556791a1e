"""Accuracy vs energy-efficiency sweeps and their Pareto front.

`sweep` evaluates every combination of a grid of settings: the energy account (`estimate`) and the MVM
accuracy from a small Monte Carlo (``jax.vmap`` of `jaxcim.simulate` over device-instance keys). Grid keys are
crossbar config paths (``"adc.bits"``, ``"device.levels"``), hardware fields prefixed ``"hw."``
(``"hw.rows_per_read"``) or ``"array"`` (rows = cols = n).

Rows activated per read (k < rows): the energy/latency account models it exactly (more reads, one conversion
per row group). For accuracy it is approximated by ``mapping.rows = k``: each conversion then sees k rows, which
is what a k-row read amounts to, except that jaxcim's digital partial-sum accumulation over row tiles replaces
the accumulation over row groups (identical arithmetic).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcim.circuit.adc import adc_circuit
from jaxcim.config import CrossbarConfig
from jaxcim.core import simulate
from jaxcim.energy.hardware import HardwareConfig, Workload
from jaxcim.energy.model import estimate

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
    metric: Callable[[jax.Array, jax.Array], jax.Array] = nrmse, t: float = 0.0,
) -> list[dict[str, Any]]:
    """Energy and Monte Carlo accuracy for every combination of ``grid``.

    Args:
      cfg, hw: the base configuration. grid: setting name -> values (see module docstring).
      w: weights (in, out). x: inputs (batch, in); also the ADC calibration inputs.
      key: Monte Carlo key; the same instance keys are used for every configuration.
      instances: Monte Carlo device instances per configuration.
      workload: the energy workload; default one MVM of ``w``'s shape with the statistics of ``x`` and ``w``.
      metric: error of one instance's outputs vs ``x @ w`` (default `nrmse`).
      t: read time after programming, s.

    Returns:
      one dict per configuration: the settings, ``error`` / ``error_std`` (metric mean and standard deviation
      over instances), ``tops_per_w``, ``tops``, ``tops_per_mm2``, ``energy_pj`` (per MVM), ``meets_target``.
    """
    if instances < 1:
        raise ValueError(f"instances must be >= 1, got {instances}")
    for name, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
    y_ref = x @ w
    keys = jax.random.split(key, instances)
    names = list(grid)
    out = []
    for combo in itertools.product(*(grid[n] for n in names)):
        settings = dict(zip(names, combo, strict=True))
        c, h, c_acc = apply_settings(cfg, hw, settings)
        wl = workload or Workload(w.shape[0], w.shape[1])
        rep = estimate(c, wl, h, w=w if workload is None else None, x=x if workload is None else None)
        ys = jax.vmap(lambda k, c_acc=c_acc: simulate(c_acc, w, x, key=k, t=t))(keys)
        errs = np.asarray(jax.vmap(lambda y: metric(y, y_ref))(ys))
        tpw = float(rep.tops_per_w)
        out.append(dict(settings, error=float(errs.mean()), error_std=float(errs.std()), tops_per_w=tpw,
                        tops=float(rep.tops), tops_per_mm2=float(rep.tops_per_mm2),
                        energy_pj=float(rep.total) * 1e12, meets_target=tpw >= TARGET_TOPS_PER_W))
    return out


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
    from jaxcim.nn.convert import convertible_layers

    out = []
    for path, layer in convertible_layers(model):
        kernel = layer.kernel.value if hasattr(layer.kernel, "value") else layer.kernel
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
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Classification accuracy over chip instances and TOPS/W of a network for every combination of ``grid``.

    The accuracy is the chip Monte Carlo of `jaxcim.nn.evaluate` (instance i is the chip ``fold_in(key, i)``,
    the same chips for every configuration) at each read time; the energy is `estimate` over the network's dense
    layers (`network_workloads`), one inference. Configurations that differ only in energy-only settings (input
    encoding, hardware fields other than rows per read, and the read voltage on a linear ideal circuit with a
    calibrated or full-scale ADC range) share one accuracy evaluation: jaxcim's read path applies the same quantized
    drive level whether the row voltage is amplitude- or pulse-width-coded, and there every current and the ADC's
    full scale scale together with the read voltage.

    Args:
      model: a trained nnx classifier (digital weights; its dense layers are mapped onto crossbars).
      data: (inputs, labels) to evaluate on. cfg, hw: the base configuration. grid: setting -> values (see
        `apply_settings`; ``"adc.type"``, ``"array"``, ``"hw.*"`` and config paths such as ``"dac.v_read"``,
        ``"device.g_max"``, ``"adc.bits"``).
      key: the chips' key. instances: chips per configuration. times: read times after programming, s.
      x_calib: ADC calibration inputs (default: the first 128 of ``data``).
      progress: called as progress(done, total) after each accuracy evaluation.

    Returns:
      one dict per configuration: the settings; ``tops_per_w``, ``tops``, ``energy_nj`` (per inference);
      ``accuracy`` / ``ci95`` / ``loss`` (digital accuracy minus the mean, percentage points) per time, lists in
      the order of ``times``; ``digital_accuracy``; ``meets_target`` (>= `TARGET_TOPS_PER_W`).
    """
    from jaxcim.nn.evaluate import accuracy, evaluate

    if instances < 2:
        raise ValueError(f"instances must be >= 2 (a confidence interval needs two chips), got {instances}")
    for name, values in grid.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid[{name!r}] must be a non-empty list of values, got {values!r}")
    wls = network_workloads(model)
    digital = 100.0 * accuracy(model, data)
    names = list(grid)
    combos = list(itertools.product(*(grid[n] for n in names)))
    cache: dict[str, np.ndarray] = {}
    out = []
    for combo in combos:
        settings = dict(zip(names, combo, strict=True))
        c, h, c_acc = apply_settings(cfg, hw, settings)
        rep = estimate(c, wls, h)
        c_acc = _accuracy_config(c_acc, cfg)
        tag = repr(sorted(c_acc.to_dict().items(), key=str))
        if tag not in cache:
            res = evaluate(model, c_acc, data, key=key, n_instances=instances, times=tuple(times), x_calib=x_calib)
            cache[tag] = 100.0 * np.asarray(res.accuracies)
            if progress is not None:
                progress(len(cache), None)
        acc = cache[tag]
        tpw = float(rep.tops_per_w)
        out.append(dict(
            settings, tops_per_w=tpw, tops=float(rep.tops), energy_nj=float(rep.energy) * 1e9,
            accuracy=[float(a) for a in acc.mean(axis=0)], ci95=[_ci95(acc[:, i]) for i in range(acc.shape[1])],
            loss=[float(digital - a) for a in acc.mean(axis=0)], digital_accuracy=digital, times=list(times),
            meets_target=tpw >= TARGET_TOPS_PER_W,
        ))
    return out


def best_at_target(results: Sequence[Mapping[str, Any]], time_index: int = -1,
                   target: float = TARGET_TOPS_PER_W) -> Mapping[str, Any] | None:
    """The configuration with the smallest accuracy loss at ``times[time_index]`` among those reaching
    ``target`` TOPS/W (ties: the more efficient), or None."""
    hits = [r for r in results if r["tops_per_w"] >= target]
    return min(hits, key=lambda r: (r["loss"][time_index], -r["tops_per_w"])) if hits else None


def label(result: Mapping[str, Any], names: Sequence[str]) -> str:
    """A short label of a configuration's settings, e.g. ``"64x64 k=16 sar 6b pwm 0.1V"``."""
    short = {"array": lambda v: f"{v}x{v}", "hw.rows_per_read": lambda v: f"k={v or 'all'}",
             "adc.type": str, "adc.bits": lambda v: f"{v}b", "hw.input_encoding": lambda v: "PWM" if v == "pwm"
             else "amp", "dac.v_read": lambda v: f"{v:g}V", "device.g_max": lambda v: f"{v * 1e6:g}uS"}
    return " ".join(short.get(n, lambda v, n=n: f"{n.split('.')[-1]}={v}")(result[n]) for n in names)


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
    for j, i in enumerate(order):  # labels alternate above and below the front, on a white box, with a leader
        ax.annotate(label(results[i], names), (tpw[i], loss[i]), xytext=(-10, (-30, 28, -56, 52)[j % 4]),
                    textcoords="offset points", fontsize=8, color="C3", ha="right" if j == len(order) - 1 else
                    "center", bbox=dict(fc="white", ec="C3", lw=0.5, alpha=0.9),
                    arrowprops=dict(arrowstyle="-", color="C3", lw=0.6))
    ax.axvline(target, ls="--", c="C2", label=f"{target:g} TOPS/W")
    ax.axhline(0.0, c="0.3", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("energy efficiency (TOPS/W, one inference)", fontsize=10)
    t = results[0]["times"][time_index]
    when = "1 year" if abs(t - YEAR) < 1 else f"{t:g} s"
    ax.set_ylabel(f"accuracy loss vs digital at {when} (points)", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.legend(fontsize=8, loc="upper left")
    return ax


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
