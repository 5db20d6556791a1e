"""The ``jaxcim`` console script: parses arguments and hands them to the studies (`jaxcim.studies`).

    jaxcim run                          # the shipped default study: digits classifier on NeuRRAM ReRAM chips
    jaxcim run mvm                      # the shipped 256x256 MVM error study (NeuRRAM ReRAM, 1 s .. 2 days)
    jaxcim run study.toml --instances 4096 --times 1,3600,86400 --out results/ --resume
    jaxcim run mvm --mapping jaxcim-results/neurram-256x256_mapping   # a mapping from `jaxcim optimize`
    jaxcim sweep adc.bits=4:10 t=1,3600,86400 --instances 128          # an mvm study over a grid
    jaxcim optimize mvm --out maps/     # learn a variation-aware mapping (jaxcim.cli_optimize)
    jaxcim energy study.toml            # energy/latency/area account (jaxcim.cli_energy)
    jaxcim pareto study.toml            # accuracy vs TOPS/W grid

Subcommands live in `SUBCOMMANDS`: name -> (help, add_arguments(parser), handler(args) -> exit status);
a new one is one more entry. Mistakes a user can make (missing file, bad TOML, unknown key, out-of-range or
mistyped value, unwritable output folder, an output folder another run is using or that holds another study's
results, ``--resume`` of a different study or of a damaged checkpoint, a sweep grid of more than
`jaxcim.studies.sweep.MAX_GRID_POINTS` points) print one ``error:`` line and exit with status 2.

Several processes (hosts): ``--distributed`` with ``--coordinator HOST:PORT --num-processes N --process-id I``
(or the environment variables ``JAXCIM_COORDINATOR``, ``JAXCIM_NUM_PROCESSES``, ``JAXCIM_PROCESS_ID``; without
them JAX detects SLURM or Open MPI) joins the processes (`jaxcim.distributed.initialize`); every process
computes its share of each chunk and process 0 writes the files. A process that fails ends at once (its error
line names it: ``error: process I of N: ...``), without JAX's exit barrier, which would wait for the others while
they wait for it; they stop at their next chunk with ``error: process J of N: another process of this run
stopped``, and ``--resume`` with every process continues the run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxcim.io import StudyError
from jaxcim.studies.sweep import MAX_GRID_POINTS, parse_values  # noqa: F401 - part of this module's interface
from jaxcim.version import __version__

DEFAULT_OUT = "jaxcim-results"
ENV = {"coordinator": "JAXCIM_COORDINATOR", "num_processes": "JAXCIM_NUM_PROCESSES", "process_id": "JAXCIM_PROCESS_ID"}
"""The environment variables of the ``--distributed`` options."""
PLOTS_HINT = ' (for plots: pip install "jaxcim[plots]")'


def _times(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--times must be comma-separated seconds, got {text!r}") from None


# ----------------------------------------------------------------------------------------- several processes


def add_distributed_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("several processes (one per host or accelerator)")
    g.add_argument("--distributed", action="store_true",
                   help="join a multi-process run; without the options below JAX detects SLURM or Open MPI")
    g.add_argument("--coordinator", metavar="HOST:PORT", help=f"process 0's address (env {ENV['coordinator']})")
    g.add_argument("--num-processes", type=int, metavar="N", help=f"number of processes (env {ENV['num_processes']})")
    g.add_argument("--process-id", type=int, metavar="I", help=f"this process, 0..N-1 (env {ENV['process_id']})")
    g.add_argument("--init-timeout", type=float, default=300.0, metavar="S",
                   help="seconds to wait for every process to join (default 300)")


def distributed_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The arguments of `jaxcim.distributed.initialize` from the options and environment, or None: one process.

    Raises:
      StudyError: an incomplete or inconsistent set (the message names the option).
    """
    opts: dict[str, Any] = {}
    for name, env in ENV.items():
        value = getattr(args, name, None)
        if value is None and os.environ.get(env, "").strip():
            value = os.environ[env].strip()
            if name != "coordinator":
                try:
                    value = int(value)
                except ValueError:
                    raise StudyError(f"{env} must be an integer, got {value!r}") from None
        opts[name] = value
    given = [n for n, v in opts.items() if v is not None]
    if not given and not getattr(args, "distributed", False):
        return None
    if given and len(given) != 3:
        missing = ", ".join(f"--{n.replace('_', '-')} ({ENV[n]})" for n in ENV if opts[n] is None)
        raise StudyError(f"a multi-process run needs the coordinator, the number of processes and this process's "
                         f"id; missing: {missing}")
    if given:
        host, _, port = str(opts["coordinator"]).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise StudyError(f"--coordinator must be HOST:PORT, got {opts['coordinator']!r}")
        if opts["num_processes"] < 1:
            raise StudyError(f"--num-processes must be >= 1, got {opts['num_processes']}")
        if not 0 <= opts["process_id"] < opts["num_processes"]:
            raise StudyError(f"--process-id must be in [0, {opts['num_processes'] - 1}], got {opts['process_id']}")
    timeout = getattr(args, "init_timeout", 300.0)
    if not timeout > 0:
        raise StudyError(f"--init-timeout must be > 0 seconds, got {timeout}")
    return {"coordinator_address": opts["coordinator"], "num_processes": opts["num_processes"],
            "process_id": opts["process_id"], "timeout_s": timeout}


def init_distributed(args: argparse.Namespace) -> None:
    """Join the multi-process run the options ask for (before anything touches a JAX device)."""
    opts = distributed_options(args)
    if opts is None:
        return
    from jaxcim import distributed

    try:  # processes other than 0 first wait for the coordinator (JAX's client would abort the process)
        distributed.initialize(**opts)
    except (RuntimeError, ValueError, TypeError, ConnectionError) as e:
        where = opts["coordinator_address"] or "the cluster environment"
        raise StudyError(f"--distributed: cannot join the run through {where}: {str(e).splitlines()[0]}") from None


# ----------------------------------------------------------------------------------------- run


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", nargs="?", help="study TOML, or the name of a shipped study: classifier (the default: "
                   "digits MLP on NeuRRAM ReRAM chips, ~1 min on a laptop CPU) or mvm (256x256 MVM error on "
                   "NeuRRAM ReRAM, 1 s to 2 days)")
    p.add_argument("--instances", type=int, help="device instances (Monte Carlo samples)")
    p.add_argument("--times", type=_times, help="read times after programming, s, e.g. 1,3600,86400")
    p.add_argument("--seed", type=int, help="seed of weights, inputs and instances")
    p.add_argument("--batch", type=int, help="input vectors per read (mvm studies)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--force", action="store_true", help="replace the results of another study in --out")
    p.add_argument("--netcdf", action="store_true", help="also write results.nc (xarray; pip install "
                   "\"jaxcim[netcdf]\")")
    p.add_argument("--memory-budget", type=float, help="working memory per chunk, bytes")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--mapping", help="learned mapping (.npz/.json stem written by `jaxcim optimize`), mvm studies")
    add_distributed_arguments(p)


def _load_mapping(path: str):
    from jaxcim.optimize import load_mapping

    try:
        return load_mapping(path)
    except (OSError, ValueError, KeyError) as e:
        raise StudyError(f"--mapping: {e}") from None


def check_other_results(out: Path, study: dict[str, Any], force: bool) -> None:
    """StudyError if ``out`` holds the results.json of another study (type or name), unless ``force``."""
    import json

    path = out / "results.json"
    if force or not path.is_file():
        return
    try:
        old = json.loads(path.read_text()).get("study", {})
        kind, name = (old.get("study"), old.get("name")) if isinstance(old, dict) else (old, None)
    except (OSError, ValueError, AttributeError):
        kind, name = None, None
    if (kind, name) != (study["study"], study["name"]):
        other = f"study {name!r} ({kind})" if kind else "another study (unreadable results.json)"
        raise StudyError(f"{out} holds the results of {other}; this run ({study['name']!r}, {study['study']}) "
                         "would replace them: add --force, or choose another --out folder")


def run_command(args: argparse.Namespace) -> int:
    from jaxcim.io import job_lock_name, lock_output, prepare_output
    from jaxcim.studies import STUDY_TYPES, load_study

    init_distributed(args)
    overrides = {"instances": args.instances, "times": args.times, "seed": args.seed, "batch": args.batch,
                 "memory_budget": args.memory_budget}
    study, cfg = load_study(args.study, overrides)
    extra: dict[str, Any] = {"netcdf": True} if args.netcdf else {}
    if args.mapping is not None:
        if study["study"] != "mvm":
            raise StudyError(f"--mapping applies to mvm studies, not {study['study']!r} studies")
        extra["mapping"] = _load_mapping(args.mapping)
    if args.netcdf:
        from importlib.util import find_spec

        if find_spec("xarray") is None:
            raise StudyError('--netcdf needs xarray: pip install "jaxcim[netcdf]"')
    out = prepare_output(args.out)
    stype = STUDY_TYPES[study["study"]]
    with lock_output(out, name=job_lock_name()):  # (the runner takes it again: reentrant)
        check_other_results(out, study, args.force or args.resume)
        print(f"study {study['name']!r} ({study['study']}): {cfg.name} crossbar, {study['instances']} instances",
              file=sys.stderr, flush=True)
        try:
            results = stype.run(study, cfg, out, resume=args.resume, progress=not args.quiet, **extra)
        except ValueError as e:  # e.g. a mapping learned for other weights or arrays
            raise StudyError(str(e)) from None
    from jaxcim import distributed

    if not distributed.is_primary():
        import jax

        print(f"process {jax.process_index()}: done (process 0 writes the results into {out}/)")
        return 0
    if stype.table is not None:
        print(stype.table(results))
    t = results.get("timings", {})
    if t.get("instances_per_s") and t.get("first_chunk_s_incl_compile") is not None:
        print(f"{t['instances_run']} instances in {t['total_s']:.1f} s ({t['instances_per_s']:.0f} instances/s, "
              f"first chunk incl. compilation {t['first_chunk_s_incl_compile']:.1f} s)")
    plots = results.get("plots")
    print(f"results in {out}/: {', '.join(results.get('files', ['results.json']))}" +
          (", " + ", ".join(plots) if plots else PLOTS_HINT))
    return 0


# ----------------------------------------------------------------------------------------- sweep


def add_sweep_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("settings", nargs="+", metavar="NAME=VALUES",
                   help="config fields to sweep, e.g. adc.bits=4:10 device.prog_noise_scale=0.5,1,2 "
                        "t=1,3600,86400 (t: read times after programming, s)")
    p.add_argument("--study", help="mvm study TOML or shipped study name giving the crossbar, weights and inputs "
                   "(default: mvm, 256x256 NeuRRAM ReRAM)")
    p.add_argument("--instances", type=int, help="device instances per configuration")
    p.add_argument("--seed", type=int, help="seed of weights, inputs and instances")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--netcdf", action="store_true", help="also write sweep.nc (xarray)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    add_distributed_arguments(p)


def sweep_command(args: argparse.Namespace) -> int:
    from jaxcim.io import prepare_output
    from jaxcim.studies import load_study
    from jaxcim.studies import sweep as sw

    init_distributed(args)
    grid = sw.parse_grid(args.settings)
    times = grid.pop("t", None)
    study, cfg = load_study(args.study, {"instances": args.instances, "seed": args.seed, "times": times},
                            default="mvm")
    if study["study"] != "mvm":
        raise StudyError(f"jaxcim sweep runs mvm studies; {args.study} is a {study['study']!r} study: give an mvm "
                         "study with --study (e.g. --study mvm, the default)")
    sw.check_grid(cfg, grid)
    prepare_output(args.out)
    sw.run_sweep(study, cfg, grid, args.out, progress=not args.quiet, netcdf=args.netcdf)
    return 0


# ----------------------------------------------------------------------------------------- wiring


def _lazy(module: str, name: str):
    """(add_arguments, handler) of a subcommand defined in ``jaxcim.<module>``, imported when used."""
    import importlib

    def add(p):
        getattr(importlib.import_module(f"jaxcim.{module}"), f"add_{name}_arguments")(p)

    def run(args):
        return getattr(importlib.import_module(f"jaxcim.{module}"), f"{name}_command")(args)

    return add, run


SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "run": ("run a study (default: the shipped digits classifier on NeuRRAM ReRAM chips; `jaxcim run mvm`: the "
            "256x256 MVM error study)", add_run_arguments, run_command),
    "sweep": ("run an mvm study over a grid of config values and read times", add_sweep_arguments, sweep_command),
    "energy": ("energy/latency/area account of a study", *_lazy("cli_energy", "energy")),
    "pareto": ("accuracy vs TOPS/W over a grid of settings", *_lazy("cli_energy", "pareto")),
    "optimize": ("learn a variation-aware weight-to-conductance mapping (writes .npz + .json into --out)",
                 *_lazy("cli_optimize", "optimize")),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxcim", description="Simulate analog in-memory computing crossbars.")
    parser.add_argument("--version", action="version", version=f"jaxcim {__version__}")
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
        status = SUBCOMMANDS[args.command][2](args)
    except StudyError as e:
        if _several_processes():
            _exit_run(e, 2)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _several_processes():
            _exit_run(None, 130)
        print("interrupted (resume with --resume)", file=sys.stderr)
        return 130
    except Exception as e:
        if _several_processes():
            _exit_run(e, 1)
        raise
    if status != 0 and _several_processes():  # a handler that reported its own error (jaxcim optimize)
        from jaxcim import distributed

        distributed.exit_now(status)
    return status


def _several_processes() -> bool:
    if "jax" not in sys.modules:
        return False
    import jax

    return jax.distributed.is_initialized() and jax.process_count() > 1


def _exit_run(error: BaseException | None, status: int) -> None:
    """End a process of a multi-process run at once (`jaxcim.distributed.exit_now`): waiting at exit for the other
    processes, which wait for this one in their next collective, would hang them all."""
    import jax

    from jaxcim import distributed

    who = f"process {jax.process_index()} of {jax.process_count()}"
    if error is None:
        print(f"{who}: interrupted (resume with --resume)", file=sys.stderr)
    elif distributed.peer_lost(error):
        print(f"error: {who}: another process of this run stopped, so this one cannot go on (start every process "
              f"again with --resume): {str(error).splitlines()[0]}", file=sys.stderr)
    elif isinstance(error, StudyError):
        print(f"error: {who}: {error}", file=sys.stderr)
    else:
        import traceback

        traceback.print_exception(error)
        print(f"error: {who} failed ({type(error).__name__}); the others stop at their next step", file=sys.stderr)
    distributed.exit_now(status)


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["DEFAULT_OUT", "ENV", "SUBCOMMANDS", "build_parser", "distributed_options", "main", "parse_values"]
