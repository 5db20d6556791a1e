"""Handlers of the ``jaxcim energy`` and ``jaxcim pareto`` subcommands (wired into `jaxcim.cli`).

Study file (TOML)::

    [crossbar]            # a CrossbarConfig, as read by jaxcim.config.load_config(path, section="crossbar")
    preset = "reram-neurram"
    [hardware]            # a HardwareConfig: optional preset = "generic-22nm-reram", then field overrides
    rows_per_read = 64
    [workload]            # one layer; or [[workload]] tables for several layers of one inference
    in_features = 256
    out_features = 256
    [pareto]              # for `jaxcim pareto`: grid of settings, Monte Carlo size, seed
    "adc.bits" = [4, 6, 8]
    "hw.rows_per_read" = [0, 64]
    "device.levels" = [0, 8]
    instances = 4
    batch = 32
    seed = 0
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jaxcim.config import load_config
from jaxcim.energy.hardware import HardwareConfig, Workload, hardware_preset
from jaxcim.io import atomic_write_bytes, check_writable_file
from jaxcim.study import read_toml

PARETO_KEYS = ("instances", "batch", "seed")


def hardware_from_dict(data: dict[str, Any]) -> HardwareConfig:
    """A `HardwareConfig` from a ``[hardware]`` table (optional ``preset`` key, then overrides)."""
    data = dict(data)
    preset = data.pop("preset", None)
    hw = hardware_preset(preset) if preset is not None else HardwareConfig()
    return hw.replace(**data)


def workloads_from(data: Any) -> list[Workload]:
    """Workloads from a ``[workload]`` table or a list of ``[[workload]]`` tables."""
    tables = data if isinstance(data, list) else [data]
    out = []
    for t in tables:
        if not isinstance(t, dict):
            raise TypeError(f"[workload] must be a table, got {type(t).__name__}")
        try:
            out.append(Workload(**t))
        except TypeError as e:
            raise KeyError(f"bad key in [workload]: {e}; valid: in_features, out_features, mvms, input_density, "
                           "input_mean_abs, weight_mean_abs, name") from None
    return out


def load_study(path: str):
    """(cfg, hw, workloads, pareto table) from a study TOML."""
    data = read_toml(path)  # StudyError (a ValueError) for a missing or malformed file
    cfg = load_config(path, section="crossbar")
    hw = hardware_from_dict(data.get("hardware", {}))
    if "workload" not in data:
        raise KeyError(f"{path}: a [workload] table (in_features, out_features, ...) is required")
    return cfg, hw, workloads_from(data["workload"]), data.get("pareto", {})


def add_energy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="study TOML with [crossbar], [hardware] and [workload] tables")
    parser.add_argument("--json", metavar="PATH", help="also write the account as JSON")


def energy_command(args: argparse.Namespace) -> int:
    """Print the energy/latency/area account of a study; returns the exit code."""
    from jaxcim.energy.model import estimate

    try:
        if args.json:
            check_writable_file(args.json, "--json")
        cfg, hw, wls, _ = load_study(args.study)
        rep = estimate(cfg, wls, hw)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{cfg.name}: {len(wls)} layer(s), {sum(w.mvms for w in wls)} MVM(s) per inference")
    print(rep.table())
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(rep.as_dict(), indent=2).encode())
    return 0


def add_pareto_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="study TOML with [crossbar], [hardware], [workload] and [pareto] tables")
    parser.add_argument("--instances", type=int, help="Monte Carlo instances per configuration")
    parser.add_argument("--json", metavar="PATH", help="write the sweep results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the accuracy vs TOPS/W plot (PNG/PDF)")


def pareto_command(args: argparse.Namespace) -> int:
    """Sweep the [pareto] grid of a study: table of error vs TOPS/W, Pareto front, 200 TOPS/W marks."""
    import jax

    from jaxcim.energy import pareto

    try:
        for opt, path in (("--json", args.json), ("--plot", args.plot)):
            if path:
                check_writable_file(path, opt)
        cfg, hw, wls, table = load_study(args.study)
        table = dict(table)
        opts = {k: table.pop(k) for k in PARETO_KEYS if k in table}
        grid = table
        if not grid:
            raise KeyError(f"{args.study}: [pareto] needs at least one setting list, e.g. \"adc.bits\" = [4, 6, 8]")
        if len(wls) != 1:
            raise ValueError("jaxcim pareto sweeps one layer: give a single [workload] table")
        wl = wls[0]
        instances = args.instances or int(opts.get("instances", 4))
        k_w, k_x, k_mc = jax.random.split(jax.random.key(int(opts.get("seed", 0))), 3)
        w = jax.random.normal(k_w, (wl.in_features, wl.out_features))
        lo = -1.0 if cfg.dac.signed else 0.0
        x = jax.random.uniform(k_x, (int(opts.get("batch", 32)), wl.in_features), minval=lo, maxval=1.0)
        res = pareto.sweep(cfg, hw, grid, w, x, key=k_mc, instances=instances)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    front = pareto.pareto_front([r["tops_per_w"] for r in res], [r["error"] for r in res])
    names = list(grid)
    head = "".join(f"{n:>18}" for n in names) + f"{'TOPS/W':>10}{'error':>10}{'+-':>8}  front  >=200"
    print(head)
    for r, f in zip(res, front, strict=True):
        vals = "".join(f"{str(r[n]):>18}" for n in names)
        print(f"{vals}{r['tops_per_w']:10.1f}{r['error']:10.4f}{r['error_std']:8.4f}  {'*' if f else ' ':^5}  "
              f"{'yes' if r['meets_target'] else 'no':>5}")
    hits = [r for r in res if r["meets_target"]]
    if hits:
        best = min(hits, key=lambda r: r["error"])
        print(f"best at >= {pareto.TARGET_TOPS_PER_W:g} TOPS/W: error {best['error']:.4f} with "
              + ", ".join(f"{n}={best[n]}" for n in names))
    else:
        print(f"no configuration reaches {pareto.TARGET_TOPS_PER_W:g} TOPS/W")
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps([dict(r, pareto=bool(f)) for r, f in zip(res, front,
                                                                                           strict=True)],
                                                       indent=2).encode())
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = pareto.plot(res)
        ax.figure.savefig(args.plot, bbox_inches="tight")
    return 0
