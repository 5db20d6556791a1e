"""Handlers of the ``jaxcim energy`` and ``jaxcim pareto`` subcommands (wired into `jaxcim.cli`).

Both take a study file or the name of an embedded study (``jaxcim energy energy``, ``jaxcim pareto pareto``; any
study with a crossbar and a network or a layer works: ``jaxcim energy classifier``, ``jaxcim energy mvm``).

Study file (TOML)::

    [crossbar]            # a CrossbarConfig, as read by jaxcim.config.load_config(path, section="crossbar")
    preset = "reram-neurram"
    [hardware]            # node_nm = 22 (per-node parameters, jaxcim.energy.node_hardware) or preset = "...",
    node_nm = 22          # then HardwareConfig field overrides (rows_per_read, input_encoding, ...)
    [workload]            # one layer; or [[workload]] tables for several layers of one inference. Without it:
    in_features = 256     # the study's in_features/out_features (mvm studies) or its [model] MLP features
    out_features = 256
    [model]               # for `jaxcim pareto` on a network: the digits MLP of a classifier study
    features = [64, 64, 10]
    [pareto]              # grid of settings and the Monte Carlo size
    "adc.bits" = [4, 6, 8]
    "hw.rows_per_read" = [0, 16]
    instances = 16
    times = [1.0, 31557600.0]
    seed = 0

`jaxcim pareto` on a study with ``[model]`` trains the MLP digitally on scikit-learn's digits (``[train]``) and
reports the classification accuracy of ``instances`` chips per configuration with 95 % confidence intervals
(`jaxcim.energy.pareto.network_sweep`); without ``[model]`` it sweeps one layer's MVM error
(`jaxcim.energy.pareto.sweep`). ``--refine STEPS`` then refines the continuous knobs (read voltage, g_max, ADC
range) of every Pareto-front configuration by gradient descent (`jaxcim.energy.knobs.refine`), re-evaluates them on
the same chips and prints each one's knobs, TOPS/W and accuracy before and after.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from jaxcim.config import load_config
from jaxcim.energy.hardware import HardwareConfig, Workload, hardware_preset, node_hardware
from jaxcim.io import atomic_write_bytes, check_writable_file
from jaxcim.study import read_toml

PARETO_KEYS = ("instances", "batch", "seed", "times")
TRAIN_DEFAULTS = {"epochs": 30, "batch_size": 64, "learning_rate": 3e-3}


def study_path(path: str) -> Path:
    """A study file, or the embedded study of that name (as ``jaxcim run`` accepts it)."""
    from jaxcim.studies import resolve_study

    return resolve_study(path)


def hardware_from_dict(data: dict[str, Any]) -> HardwareConfig:
    """A `HardwareConfig` from a ``[hardware]`` table: ``node_nm`` (per-node parameters) or ``preset``, then
    field overrides."""
    data = dict(data)
    preset = data.pop("preset", None)
    node_nm = data.pop("node_nm", None)
    if preset is not None and node_nm is not None:
        raise ValueError("[hardware]: give either preset or node_nm, not both")
    if node_nm is not None:
        if isinstance(node_nm, bool) or not isinstance(node_nm, int | float) or not 1 <= node_nm <= 1000:
            raise ValueError(f"[hardware] node_nm must be a number of nanometres in [1, 1000], got {node_nm!r}")
        return node_hardware(node_nm * 1e-9, **data)
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


def _implied_workloads(data: dict[str, Any], path: Path) -> list[Workload]:
    if "workload" in data:
        return workloads_from(data["workload"])
    if "in_features" in data or data.get("study") == "mvm":
        return [Workload(int(data.get("in_features", 256)), int(data.get("out_features", 256)), name="mvm")]
    model = data.get("model")
    if model is not None or data.get("study") == "classifier":
        model = model or {}
        if model.get("kind", "mlp") != "mlp":
            raise ValueError(f"{path}: the energy of a [model] is derived for MLPs only; add [[workload]] tables")
        f = list(model.get("features", [64, 64, 10]))
        return [Workload(a, b, name=f"layer{i}") for i, (a, b) in enumerate(zip(f[:-1], f[1:], strict=True))]
    raise KeyError(f"{path}: a [workload] table (in_features, out_features, ...) or a [model] is required")


def load_study(path: str):
    """(cfg, hw, workloads, pareto table, study dict) from a study TOML or an embedded study name."""
    p = study_path(path)  # StudyError (a ValueError) for a missing file
    data = read_toml(p)
    cfg = load_config(p, section="crossbar")
    hw = hardware_from_dict(data.get("hardware", {}))
    return cfg, hw, _implied_workloads(data, p), data.get("pareto", {}), data


def add_energy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", nargs="?", default="energy",
                        help="study TOML or embedded study name (default: energy, a NeuRRAM-like 256x256 layer)")
    parser.add_argument("--json", metavar="PATH", help="also write the account as JSON")


def energy_command(args: argparse.Namespace) -> int:
    """Print the energy/latency/area account of a study; returns the exit code."""
    from jaxcim.energy.model import estimate

    try:
        if args.json:
            check_writable_file(args.json, "--json")
        cfg, hw, wls, _, _ = load_study(args.study)
        rep = estimate(cfg, wls, hw)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    print(f"{cfg.name}: {len(wls)} layer(s), {sum(w.mvms for w in wls)} MVM(s) per inference, "
          f"{hw.node * 1e9:g} nm")
    print(rep.table())
    if args.json:
        atomic_write_bytes(Path(args.json), json.dumps(rep.as_dict(), indent=2).encode())
    return 0


def add_pareto_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", nargs="?", default="pareto",
                        help="study TOML or embedded study name (default: pareto, the digits MLP on ReRAM)")
    parser.add_argument("--instances", type=int, help="Monte Carlo chip instances per configuration")
    parser.add_argument("--json", metavar="PATH", help="write the sweep results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="save the accuracy vs TOPS/W plot (PNG/PDF)")
    parser.add_argument("--refine", type=int, default=0, metavar="STEPS",
                        help="refine the continuous knobs (read voltage, g_max, ADC range) of every Pareto-front "
                             "configuration by STEPS gradient steps, then re-evaluate it (default 0: off)")


def _grid(table: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    table = dict(table)
    opts = {k: table.pop(k) for k in PARETO_KEYS if k in table}
    if not table:
        raise KeyError(f"{path}: [pareto] needs at least one setting list, e.g. \"adc.bits\" = [4, 6, 8]")
    return table, opts


def _network(data: dict[str, Any], opts: dict[str, Any], cfg, hw, grid, instances, refine=0):
    import jax
    from flax import nnx

    from jaxcim.energy import pareto
    from jaxcim.nn.data import load_digits
    from jaxcim.nn.models import MLP
    from jaxcim.nn.train import fit

    model_spec = data.get("model", {})
    if model_spec.get("kind", "mlp") != "mlp":
        raise ValueError("jaxcim pareto trains MLPs on the digits: [model] kind must be 'mlp'")
    train = {**TRAIN_DEFAULTS, **{k: v for k, v in data.get("train", {}).items() if k in TRAIN_DEFAULTS}}
    seed = int(opts.get("seed", data.get("seed", 0)))
    times = [float(t) for t in opts.get("times", [1.0, pareto.YEAR])]
    digits = load_digits(seed=seed)
    model = MLP(tuple(model_spec.get("features", [64, 64, 10])), rngs=nnx.Rngs(params=seed))
    key = jax.random.key(seed)
    fit(model, (digits.x_train, digits.y_train), key=jax.random.fold_in(key, 1), **train)
    def progress(done, _):
        print(f"  accuracy evaluations: {done}", file=sys.stderr, flush=True)

    return pareto.network_sweep(model, (digits.x_test, digits.y_test), cfg, hw, grid, key=jax.random.fold_in(key, 3),
                                instances=instances, times=times, x_calib=digits.x_train[:128], progress=progress,
                                refine=refine)


def _mvm(wls, opts, cfg, hw, grid, instances, refine=0):
    import jax

    from jaxcim.energy import pareto

    if len(wls) != 1:
        raise ValueError("jaxcim pareto sweeps one layer: give a single [workload] table")
    wl = wls[0]
    k_w, k_x, k_mc = jax.random.split(jax.random.key(int(opts.get("seed", 0))), 3)
    w = jax.random.normal(k_w, (wl.in_features, wl.out_features))
    lo = -1.0 if cfg.dac.signed else 0.0
    x = jax.random.uniform(k_x, (int(opts.get("batch", 32)), wl.in_features), minval=lo, maxval=1.0)
    return pareto.sweep(cfg, hw, grid, w, x, key=k_mc, instances=instances, refine=refine)


def pareto_command(args: argparse.Namespace) -> int:
    """Sweep the [pareto] grid of a study: table, Pareto front, the best configuration at >= 200 TOPS/W."""
    from jaxcim.energy import pareto

    try:
        for opt, path in (("--json", args.json), ("--plot", args.plot)):
            if path:
                check_writable_file(path, opt)
        cfg, hw, wls, table, data = load_study(args.study)
        grid, opts = _grid(table, args.study)
        instances = args.instances or int(opts.get("instances", 16 if "model" in data else 4))
        network = "model" in data
        if args.refine < 0:
            raise ValueError(f"--refine must be a number of steps >= 0, got {args.refine}")
        run = _network if network else _mvm
        res = run(data if network else wls, opts, cfg, hw, grid, instances, args.refine)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    names = list(grid)
    if network:
        _print_network(res, names)
    else:
        _print_mvm(res, names)
    if args.refine:
        _print_refinement(res, names, network)
    if args.json:
        err = [r["loss"][-1] for r in res] if network else [r["error"] for r in res]
        front = pareto.pareto_front([r["tops_per_w"] for r in res], err)
        atomic_write_bytes(Path(args.json), json.dumps([dict(r, pareto=bool(f)) for r, f in zip(res, front,
                                                                                           strict=True)],
                                                       indent=2).encode())
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        ax = pareto.plot_network(res, names) if network else pareto.plot(res)
        ax.figure.savefig(args.plot, bbox_inches="tight", dpi=150)
    return 0


def _print_refinement(res, names, network: bool) -> None:
    """Before -> after of every refined configuration: its knobs, TOPS/W and accuracy (same chips)."""
    from jaxcim.energy import pareto

    print("refined Pareto-front configurations (gradient steps on the continuous knobs; same chips as the grid):")
    for r in res:
        if not r["refined"]:
            continue
        r0 = res[r["refined_from"]]
        knobs = ", ".join(f"{k} {v0:.3g} -> {r[k]:.3g}" for k, v0 in r["knobs_start"].items())
        if network:
            acc = ", ".join(f"loss {a:.2f} -> {b:.2f}" for a, b in zip(r0["loss"], r["loss"], strict=True))
        else:
            acc = f"error {r0['error']:.4f} -> {r['error']:.4f}"
        note = "" if r["refine_improved"] else " (descent did not lower the objective: start kept)"
        print(f"  {pareto.label(r0, names)}: {knobs}; TOPS/W {r0['tops_per_w']:.1f} -> {r['tops_per_w']:.1f}; "
              f"{acc}{note}")


def _print_network(res, names) -> None:
    from jaxcim.energy import pareto

    times = res[0]["times"]
    front = pareto.pareto_front([r["tops_per_w"] for r in res], [r["loss"][-1] for r in res])
    when = ["1 y" if abs(t - pareto.YEAR) < 1 else f"{t:g} s" for t in times]
    print(f"digital accuracy {res[0]['digital_accuracy']:.2f} %; accuracy loss in points (95 % CI over chips)")
    print(f"{'configuration':<38}{'TOPS/W':>8}" + "".join(f"{'loss ' + w:>18}" for w in when) + "  front")
    for i in sorted(range(len(res)), key=lambda i: -res[i]["tops_per_w"]):
        r = res[i]
        cells = "".join(f"{r['loss'][j]:>9.2f} +-{r['ci95'][j]:<6.2f}" for j in range(len(times)))
        print(f"{pareto.label(r, names):<38}{r['tops_per_w']:>8.1f}{cells}  {'*' if front[i] else ''}")
    best = pareto.best_at_target(res)
    if best is None:
        print(f"no configuration reaches {pareto.TARGET_TOPS_PER_W:g} TOPS/W")
        return
    losses = ", ".join(f"{best['loss'][j]:.2f} +- {best['ci95'][j]:.2f} points at {w}" for j, w in enumerate(when))
    print(f"best at >= {pareto.TARGET_TOPS_PER_W:g} TOPS/W: {pareto.label(best, names)} "
          f"({best['tops_per_w']:.0f} TOPS/W): accuracy loss {losses}")
    alike = pareto.as_good_and_more_efficient(res, best)
    if alike:
        shown = "; ".join(f"{pareto.label(r, names)} ({r['tops_per_w']:.0f} TOPS/W, " + " / ".join(
            f"{x:.2f}" for x in r["loss"]) + " points)" for r in alike[:5])
        more = f" and {len(alike) - 5} more" if len(alike) > 5 else ""
        print(f"not distinguishable from it at every time (95 %), and more efficient: {shown}{more}")


def _print_mvm(res, names) -> None:
    from jaxcim.energy import pareto

    front = pareto.pareto_front([r["tops_per_w"] for r in res], [r["error"] for r in res])
    head = "".join(f"{n:>18}" for n in names) + f"{'TOPS/W':>10}{'error':>10}{'+-':>8}  front  >=200"
    print(head)
    for r, f in zip(res, front, strict=True):
        vals = "".join(f"{str(r[n]):>18}" for n in names)
        print(f"{vals}{r['tops_per_w']:10.1f}{r['error']:10.4f}{r['error_std']:8.4f}  {'*' if f else ' ':^5}  "
              f"{'yes' if r['meets_target'] else 'no':>5}{'  refined' if r.get('refined') else ''}")
    hits = [r for r in res if r["meets_target"]]
    if hits:
        best = min(hits, key=lambda r: r["error"])
        print(f"best at >= {pareto.TARGET_TOPS_PER_W:g} TOPS/W: error {best['error']:.4f} with "
              + ", ".join(f"{n}={best[n]}" for n in names))
    else:
        print(f"no configuration reaches {pareto.TARGET_TOPS_PER_W:g} TOPS/W")
