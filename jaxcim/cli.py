"""The ``jaxcim`` console script.

    jaxcim run                          # the embedded default study: digits classifier on NeuRRAM ReRAM chips
    jaxcim run mvm                      # the embedded 256x256 MVM error study (NeuRRAM ReRAM, drift times)
    jaxcim run study.toml --instances 4096 --times 1,3600,86400 --out results/ --resume
    jaxcim run mvm --mapping learned    # read with a mapping from `jaxcim optimize`
    jaxcim sweep adc.bits=4:10 t=1,3600,86400 --instances 128
    jaxcim optimize study.toml          # learn a variation-aware mapping (jaxcim.cli_optimize)
    jaxcim energy study.toml            # energy/latency/area account (jaxcim.cli_energy)
    jaxcim pareto study.toml            # accuracy vs TOPS/W grid

Subcommands live in `SUBCOMMANDS`: name -> (help, add_arguments(parser), handler(args) -> exit status);
a new one is one more entry. Heavy imports (jax) happen inside handlers, so ``jaxcim --help`` is fast.
Mistakes a user can make (missing file, bad TOML, unknown key, out-of-range or mistyped value, unwritable output
folder, an output folder another run is using, ``--resume`` of a different study or of a damaged checkpoint, a
sweep grid of more than `MAX_GRID_POINTS` points) print one ``error:`` line and exit with status 2.

Multi-host: ``jaxcim run --distributed`` calls ``jax.distributed.initialize()`` (coordinator, process count
and id from the cluster environment: SLURM, Open MPI, Cloud TPU, or the ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID`` variables); instances are then sharded over the devices of all hosts.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxcim.study import StudyError

DEFAULT_OUT = "jaxcim-results"
MAX_GRID_POINTS = 10_000
"""Most points of a ``jaxcim sweep`` grid (all settings and read times together)."""


def _times(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--times must be comma-separated seconds, got {text!r}") from None


def _init_distributed(args: argparse.Namespace) -> None:
    if getattr(args, "distributed", False):
        import jax

        jax.distributed.initialize()


# ----------------------------------------------------------------------------------------- run


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", nargs="?", help="study TOML, or the name of an embedded study: classifier (default: "
                   "digits MLP on NeuRRAM ReRAM chips) or mvm (256x256 MVM error on NeuRRAM ReRAM)")
    p.add_argument("--instances", type=int, help="device instances (Monte Carlo samples)")
    p.add_argument("--times", type=_times, help="read times after programming, s, e.g. 1,3600,86400")
    p.add_argument("--seed", type=int, help="seed of weights, inputs and instances")
    p.add_argument("--batch", type=int, help="input vectors per read")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--memory-budget", type=float, help="working memory per chunk, bytes")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--distributed", action="store_true", help="call jax.distributed.initialize() (multi-host)")
    p.add_argument("--mapping", help="learned mapping (.npz/.json stem written by `jaxcim optimize`), mvm studies")


def _load_mapping(path: str):
    from jaxcim.optimize import load_mapping

    try:
        return load_mapping(path)
    except (OSError, ValueError, KeyError) as e:
        raise StudyError(f"--mapping: {e}") from None


def run_command(args: argparse.Namespace) -> int:
    from jaxcim.io import job_lock_name, lock_output
    from jaxcim.study import STUDY_TYPES, load_study, prepare_output

    overrides = {"instances": args.instances, "times": args.times, "seed": args.seed, "batch": args.batch,
                 "memory_budget": args.memory_budget}
    study, cfg = load_study(args.study, overrides)
    extra = {}
    if args.mapping is not None:
        if study["study"] != "mvm":
            raise StudyError(f"--mapping applies to mvm studies, not {study['study']!r} studies")
        extra["mapping"] = _load_mapping(args.mapping)
    out = prepare_output(args.out)
    _init_distributed(args)
    stype = STUDY_TYPES[study["study"]]
    with lock_output(out, name=job_lock_name()):  # (the runner takes it again: reentrant)
        print(f"study {study['name']!r} ({study['study']}): {cfg.name} crossbar, {study['instances']} instances",
              file=sys.stderr, flush=True)
        try:
            results = stype.run(study, cfg, out, resume=args.resume, progress=not args.quiet, **extra)
        except ValueError as e:  # e.g. a mapping learned for other weights or arrays
            raise StudyError(str(e)) from None
    if stype.table is not None:
        print(stype.table(results))
    t = results.get("timings", {})
    if t.get("instances_per_s"):
        print(f"{t['instances_run']} instances in {t['total_s']:.1f} s ({t['instances_per_s']:.0f} instances/s, "
              f"first chunk incl. compilation {t['first_chunk_s_incl_compile']:.1f} s)")
    print(f"results in {out}/: {', '.join(results.get('files', ['results.json']))}" + (
        ", " + ", ".join(results["plots"]) if results.get("plots") else
        " (for plots: pip install jaxcim[plots])"))
    return 0


# ----------------------------------------------------------------------------------------- sweep


def parse_values(text: str) -> list[Any]:
    """``4:10`` -> 4..10 (integers, inclusive), ``0:1:0.25`` -> stepped range, ``a,b,c`` -> list
    (numbers, true/false, or strings). A range of more than `MAX_GRID_POINTS` values is refused (StudyError)."""
    if ":" in text and "," not in text:
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


def _is_leaf(cfg, path: str) -> bool:
    """Whether a config path is a traced leaf of ``cfg`` (float values keep one compilation) rather than static;
    the device section's fields are those of ``cfg``'s device model."""
    import dataclasses

    from jaxcim.config import SECTIONS

    section, _, field = path.partition(".")
    if section not in SECTIONS:
        return False
    for f in dataclasses.fields(getattr(cfg, section)):
        if f.name == field:
            return f.metadata.get("pytree_node", True)
    return False


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("settings", nargs="+", metavar="NAME=VALUES",
                   help="config leaves to sweep, e.g. adc.bits=4:10 device.prog_noise_scale=0.5,1,2 "
                        "t=1,3600,86400 (t: read times after programming, s)")
    p.add_argument("--study", help="study TOML giving the crossbar and the study keys (default: the embedded one)")
    p.add_argument("--instances", type=int, help="device instances per configuration")
    p.add_argument("--seed", type=int, help="seed of weights, inputs and instances")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")


def sweep_command(args: argparse.Namespace) -> int:
    from jaxcim.io import lock_output
    from jaxcim.study import load_study, mvm_data, prepare_output

    grid: dict[str, list[Any]] = {}
    for item in args.settings:
        name, eq, values = item.partition("=")
        if not eq or not name or not values:
            raise StudyError(f"bad setting {item!r}: expected NAME=VALUES, e.g. adc.bits=4:10")
        grid[name.strip()] = parse_values(values)
    points = math.prod(len(v) for v in grid.values())
    if points > MAX_GRID_POINTS:
        raise StudyError(f"the sweep grid has {points:,} points ({' x '.join(str(len(v)) for v in grid.values())}); "
                         f"at most {MAX_GRID_POINTS:,} are allowed")
    times = grid.pop("t", None)
    study, cfg = load_study(args.study, {"instances": args.instances, "seed": args.seed,
                                         "times": times})
    if study["study"] != "mvm":
        raise StudyError("jaxcim sweep runs mvm studies")
    for name, vals in grid.items():  # check every value before running anything
        leaf = _is_leaf(cfg, name)
        for v in vals:
            try:
                cfg.replace(**{name: _leaf_value(leaf, v)})
            except KeyError as e:
                raise StudyError(e.args[0]) from None
            except (TypeError, ValueError) as e:
                raise StudyError(str(e)) from None
    w, x, key = mvm_data(study, cfg.dac.signed)
    out = prepare_output(args.out)
    with lock_output(out):
        return _sweep(study, cfg, grid, out, w, x, key)


def _leaf_value(leaf: bool, v: Any) -> Any:
    """A sweep value as the config takes it: integers as floats for traced leaves (one compilation)."""
    return float(v) if leaf and isinstance(v, int) and not isinstance(v, bool) else v


def _sweep(study: dict[str, Any], cfg, grid: dict[str, list[Any]], out: Path, w, x, key) -> int:
    """Run a validated sweep with the output folder locked; writes sweep.json, sweep.txt, sweep.png."""
    import numpy as np

    from jaxcim import montecarlo as mc
    from jaxcim.study import atomic_write_bytes, atomic_write_json, format_time

    times = study["times"]
    names = list(grid)
    rows = []
    for combo in itertools.product(*grid.values()) if grid else [()]:
        changes = {n: _leaf_value(_is_leaf(cfg, n), v) for n, v in zip(names, combo, strict=True)}
        c = cfg.replace(**changes)
        errs = mc.monte_carlo_stats(c, w, x, key=key, n=study["instances"], times=times,
                                    memory_budget=study["memory_budget"] or None)  # 0: the default
        s = {k: np.asarray(v) for k, v in mc.summarize_errors(errs).items() if not k.startswith("col")}
        for i, t in enumerate(times):
            rows.append({**dict(zip(names, combo, strict=True)), "t": t,
                         **{k: float(s[k][i]) for k in ("mean", "std", "p5", "p50", "p95")}})
        print(f"  done {changes or 'base config'}", file=sys.stderr, flush=True)
    head = "".join(f"{n:>22}" for n in names) + f"{'t':>10}{'mean':>9}{'p5':>9}{'p95':>9}"
    lines = [head] + ["".join(f"{str(r[n]):>22}" for n in names) + f"{format_time(r['t']):>10}"
                      f"{r['mean']:9.2%}{r['p5']:9.2%}{r['p95']:9.2%}" for r in rows]
    print("\n".join(lines))
    atomic_write_json(out / "sweep.json", {"study": study, "crossbar": cfg.to_dict(), "grid": grid,
                                           "times": times, "rows": rows})
    atomic_write_bytes(out / "sweep.txt", ("\n".join(lines) + "\n").encode())
    plot = _sweep_plot(out, rows, names, times)
    print(f"results in {out}/: sweep.json, sweep.txt" + (f", {plot}" if plot else
                                                          " (for plots: pip install jaxcim[plots])"))
    return 0


def _sweep_plot(out: Path, rows, names, times) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from jaxcim.study import format_time

    fig, ax = plt.subplots(figsize=(6, 4))
    if names and all(isinstance(r[names[0]], int | float) for r in rows):
        xname, others = names[0], names[1:]
        groups: dict[Any, list] = {}
        for r in rows:
            groups.setdefault((tuple(r[n] for n in others), r["t"]), []).append(r)
        for (o, t), rs in groups.items():
            label = ", ".join([f"{n}={v}" for n, v in zip(others, o, strict=True)] + [f"t={format_time(t)}"])
            ax.plot([r[xname] for r in rs], [100 * r["mean"] for r in rs], "o-", label=label)
        ax.set_xlabel(xname)
    else:  # only times (or non-numeric settings): error vs time
        groups = {}
        for r in rows:
            groups.setdefault(tuple(r[n] for n in names), []).append(r)
        for o, rs in groups.items():
            ax.plot([max(r["t"], 1e-3) for r in rs], [100 * r["mean"] for r in rs], "o-",
                    label=", ".join(f"{n}={v}" for n, v in zip(names, o, strict=True)) or None)
        ax.set_xscale("log")
        ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("mean relative MVM error (%)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=120)
    plt.close(fig)
    return "sweep.png"


# ----------------------------------------------------------------------------------------- wiring


def _lazy(module: str, name: str):
    """(add_arguments, handler) of a subcommand defined in ``jaxcim.<module>``, imported when used."""
    import importlib

    def add(p):
        getattr(importlib.import_module(f"jaxcim.{module}"), f"add_{name}_arguments")(p)

    def run(args):
        return getattr(importlib.import_module(f"jaxcim.{module}"), f"{name}_command")(args)

    return add, run


def _energy(name: str):
    return _lazy("cli_energy", name)


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": ("run a Monte Carlo study (default: the embedded NeuRRAM 256x256 study)", add_run_arguments, run_command),
    "sweep": ("sweep config leaves and read times over a grid", add_sweep_arguments, sweep_command),
    "energy": ("energy/latency/area account of a study", *_energy("energy")),
    "pareto": ("accuracy vs TOPS/W over a grid of settings", *_energy("pareto")),
    "optimize": ("learn a variation-aware weight-to-conductance mapping (writes .npz + .json)",
                 *_lazy("cli_optimize", "optimize")),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxcim", description="Simulate analog in-memory computing crossbars.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_, add, _) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_, description=help_))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxcim`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return SUBCOMMANDS[args.command][2](args)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (resume with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["SUBCOMMANDS", "build_parser", "main", "parse_values"]
