"""``jaxcim sweep``: an mvm study run over a grid of config values and read times.

    jaxcim sweep adc.bits=4,6,8 device.prog_noise_scale=0.5,1 t=1,86400 --instances 64

Each ``NAME=VALUES`` names a config field (``section.field``, e.g. ``adc.bits``) and its values (`parse_values`:
``4:10`` inclusive integer range, ``0:1:0.25`` stepped range, ``a,b,c`` list); ``t`` gives the read times.
Every grid point is a Monte Carlo run of the study's weights and inputs with the same key (common random
numbers: differences between points are not sampling noise). Leaves (noise scales, conductances) keep one
compilation; static fields (bit counts) compile once per value. Writes ``sweep.json`` (rows: the settings,
``t`` and the error statistics across instances), ``sweep.txt``, ``sweep.png`` and with ``netcdf`` ``sweep.nc``
(per-instance errors, one dimension per setting).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxcim import distributed, io
from jaxcim.progress import Progress, format_time
from jaxcim.studies import plots
from jaxcim.studies import results as res_mod
from jaxcim.studies.base import StudyError

MAX_GRID_POINTS = 10_000
"""Most points of a sweep grid (all settings and read times together)."""


def parse_values(text: str) -> list[Any]:
    """``4:10`` -> 4..10 (integers, inclusive), ``0:1:0.25`` -> stepped range, ``a,b,c`` -> list
    (numbers, true/false, or strings). A range of more than `MAX_GRID_POINTS` values is refused (StudyError)."""
    if ":" in text and "," not in text:
        return _parse_range(text)

    def one(v: str):
        v = v.strip()
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        for conv in (int, float):
            try:
                return conv(v)
            except ValueError:
                pass
        return v

    vals = [one(v) for v in text.split(",") if v.strip()]
    if not vals:
        raise StudyError(f"no values in {text!r}")
    return vals


def _parse_range(text: str) -> list[Any]:
    parts = text.split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise StudyError(f"bad range {text!r}: expected start:stop or start:stop:step") from None
    if len(nums) not in (2, 3) or not all(math.isfinite(v) for v in nums):
        raise StudyError(f"bad range {text!r}: expected start:stop[:step] with finite numbers")
    if (len(nums) == 3 and nums[2] <= 0) or nums[1] < nums[0]:
        raise StudyError(f"bad range {text!r}: expected start:stop[:step] with start <= stop and step > 0")
    step = nums[2] if len(nums) == 3 else 1.0
    count = math.floor((nums[1] - nums[0]) / step + 1e-9) + 1
    if count > MAX_GRID_POINTS:
        shown = f"{count:,}" if count < 10**15 else f"{float(count):.3g}"
        raise StudyError(f"range {text!r} has {shown} values; a sweep takes at most {MAX_GRID_POINTS:,} grid "
                         "points (use a larger step)")
    vals = [nums[0] + i * step for i in range(count)]
    return [int(v) if all(p.lstrip("-").isdigit() for p in parts) else v for v in vals]


def parse_grid(settings: Sequence[str]) -> dict[str, list[Any]]:
    """``["adc.bits=4:10", "t=1,3600"]`` -> ``{"adc.bits": [4, ..., 10], "t": [1, 3600]}``, size-checked."""
    grid: dict[str, list[Any]] = {}
    for item in settings:
        name, eq, values = item.partition("=")
        if not eq or not name or not values:
            raise StudyError(f"bad setting {item!r}: expected NAME=VALUES, e.g. adc.bits=4:10")
        grid[name.strip()] = parse_values(values)
    points = math.prod(len(v) for v in grid.values())
    if points > MAX_GRID_POINTS:
        raise StudyError(f"the sweep grid has {points:,} points ({' x '.join(str(len(v)) for v in grid.values())}); "
                         f"at most {MAX_GRID_POINTS:,} are allowed")
    return grid


def is_leaf(cfg, path: str) -> bool:
    """Whether a config path is a traced leaf of ``cfg`` (float values keep one compilation) rather than static;
    the device section's fields are those of ``cfg``'s device model."""
    from jaxcim.config import SECTIONS

    section, _, field = path.partition(".")
    if section not in SECTIONS:
        return False
    for f in dataclasses.fields(getattr(cfg, section)):
        if f.name == field:
            return f.metadata.get("pytree_node", True)
    return False


def leaf_value(leaf: bool, v: Any) -> Any:
    """A sweep value as the config takes it: integers as floats for traced leaves (one compilation)."""
    return float(v) if leaf and isinstance(v, int) and not isinstance(v, bool) else v


def check_grid(cfg, grid: Mapping[str, list[Any]]) -> None:
    """StudyError naming the field unless every value of the grid makes a valid config (before anything runs)."""
    for name, vals in grid.items():
        leaf = is_leaf(cfg, name)
        for v in vals:
            try:
                cfg.replace(**{name: leaf_value(leaf, v)})
            except KeyError as e:
                raise StudyError(e.args[0]) from None
            except (TypeError, ValueError) as e:
                raise StudyError(str(e)) from None


def run_sweep(study: dict[str, Any], cfg, grid: dict[str, list[Any]], out: str | Path, *, progress: bool = True,
              netcdf: bool = False) -> dict[str, Any]:
    """Run a validated sweep of an mvm study (``grid`` without ``t``: the read times are ``study["times"]``).

    Returns:
      the content of sweep.json: the study, crossbar, grid, times and one row per grid point and time.
    """
    from jaxcim.studies.mvm import mvm_data

    w, x, key = mvm_data(study, cfg.dac.signed)
    out = io.prepare_output(out)
    with io.lock_output(out, name=io.job_lock_name()):
        rows, errors = _grid_rows(study, cfg, grid, w, x, key, progress)
        return _write(out, study, cfg, grid, rows, errors, netcdf)


def _grid_rows(study, cfg, grid, w, x, key, progress: bool):
    """Rows of statistics and per-instance errors (n, n_times) of every grid point, with k/N progress and ETA."""
    from jaxcim import montecarlo as mc

    times, names = study["times"], list(grid)
    combos = list(itertools.product(*grid.values())) if grid else [()]
    bar = Progress(len(combos), desc="configurations", unit="config") if progress and distributed.is_primary() \
        else None
    rows, errors = [], []
    for combo in combos:
        changes = {n: leaf_value(is_leaf(cfg, n), v) for n, v in zip(names, combo, strict=True)}
        errs = mc.monte_carlo_stats(cfg.replace(**changes), w, x, key=key, n=study["instances"], times=times,
                                    memory_budget=study["memory_budget"] or None)  # 0: the default
        s = {k: np.asarray(v) for k, v in mc.summarize_errors(errs).items() if not k.startswith("col")}
        errors.append(np.asarray(errs["rel_error"]))
        for i, t in enumerate(times):
            rows.append({**dict(zip(names, combo, strict=True)), "t": t,
                         **{k: float(s[k][i]) for k in ("mean", "std", "p5", "p50", "p95")}})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return rows, errors


def table(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """The sweep as a text table: one column per swept setting (as wide as its name or longest value, two spaces
    apart), the read time and the mean, 5th and 95th percentile errors."""
    widths = [max(len(n), *(len(str(r[n])) for r in rows)) + 2 for n in names]
    head = "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True)) + f"{'t':>10}{'mean':>9}{'p5':>9}{'p95':>9}"
    return "\n".join([head] + ["".join(f"{str(r[n]):>{w}}" for n, w in zip(names, widths, strict=True))
                               + f"{format_time(r['t']):>10}{r['mean']:9.2%}{r['p5']:9.2%}{r['p95']:9.2%}"
                               for r in rows])


def _write(out: Path, study, cfg, grid, rows, errors, netcdf: bool) -> dict[str, Any]:
    names, times = list(grid), study["times"]
    text = table(rows, names)
    print(text)
    result = {**res_mod.header(study, cfg, None), "grid": grid, "times": times, "rows": rows,
              "files": ["sweep.json", "sweep.txt"] + (["sweep.nc"] if netcdf else [])}
    if not distributed.is_primary():
        result["plots"] = None
        return result
    io.atomic_write_json(out / "sweep.json", result)
    io.atomic_write_bytes(out / "sweep.txt", (text + "\n").encode())
    if netcdf:
        shape = [len(v) for v in grid.values()]
        e = np.stack(errors).reshape(*shape, *errors[0].shape)  # (*settings, instance, time)
        dims = (*names, "instance", "time")
        res_mod.write_netcdf(out / "sweep.nc", result, {"rel_error": (dims, e)},
                             {**grid, "instance": np.arange(e.shape[-2]), "time": np.asarray(times, float)})
    plot = plots.sweep(out, rows, names, times, result["crossbar"], study["instances"])
    result["plots"] = [plot] if plot else None
    print(f"results in {out}/: sweep.json, sweep.txt" + (", sweep.nc" if netcdf else "") +
          (f", {plot}" if plot else ' (for plots: pip install "jaxcim[plots]")'), file=sys.stdout)
    return result


__all__ = ["MAX_GRID_POINTS", "check_grid", "is_leaf", "parse_grid", "parse_values", "run_sweep", "table"]
