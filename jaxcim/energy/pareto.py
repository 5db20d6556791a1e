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


def apply_settings(cfg: CrossbarConfig, hw: HardwareConfig, settings: Mapping[str, Any]):
    """(cfg, hw) with grid settings applied; returns also the config used for accuracy (rows = k)."""
    cfg_changes, hw_changes = {}, {}
    for key, value in settings.items():
        if key == "array":
            cfg_changes["mapping.rows"] = value
            cfg_changes["mapping.cols"] = value
        elif key.startswith("hw."):
            hw_changes[key[3:]] = value
        else:
            cfg_changes[key] = value
    cfg = cfg.replace(**cfg_changes)
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
