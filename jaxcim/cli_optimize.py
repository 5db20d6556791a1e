"""Handler of the ``jaxcim optimize study.toml`` subcommand (wired into `jaxcim.cli`).

The study file is an mvm study, the one ``jaxcim run`` reads (weights, inputs and crossbar from the same keys,
so the learned mapping fits the weights that ``jaxcim run study.toml --mapping FILE`` programs), with an
optional ``[optimize]`` table::

    name = "my-layer"
    weights = "w.npy"       # or "gaussian" (in_features x out_features, from the seed)
    batch = 64              # input vectors (uniform in [-1, 1]; [0, 1] for unsigned DACs): the first three
    seed = 0                # quarters train, the last quarter is held out for the before/after statistics
    [crossbar]
    preset = "pcm-ibm"
    [optimize]
    steps = 300
    n_instances = 64        # fresh device instances per step
    learning_rate = 0.01    # Adam
    times = [86400.0]       # read times the expected error is taken over, s
    learn = ["col_range", "split", "curve", "digital", "adc_range"]
    n_eval = 64             # held-out instances for the statistics
    chunk = 0               # instances per chunk in a training step (0: all at once)
    output = "mapping"      # a path you choose: mapping.npz + mapping.json, relative to the study file's folder

Without ``output`` (as in the shipped studies) the mapping goes into the output folder (``--out``, default
``jaxcim-results``) as ``<name>_mapping.npz`` / ``.json``, never beside the study; ``-o STEM`` names the files
directly. Both are written atomically.

    jaxcim optimize mvm --out maps && jaxcim run mvm --mapping maps/neurram-256x256_mapping
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

OPTIMIZE_KEYS = ("steps", "n_instances", "learning_rate", "times", "learn", "n_eval", "seed", "chunk", "output")


def load_study(path: str | Path):
    """(cfg, w, x, options) of an mvm study with an ``[optimize]`` table (see the module docstring).

    Raises:
      jaxcim.io.StudyError: a missing or bad file, an unknown key, a value out of range.
    """
    from jaxcim import studies as st
    from jaxcim.studies.mvm import mvm_data

    s, cfg = st.load_study(path, default="mvm")
    if s["study"] != "mvm":
        raise st.StudyError(f"jaxcim optimize needs an mvm study (weights, inputs, crossbar), got a "
                            f"{s['study']!r} study")
    opts = s["optimize"]
    if not isinstance(opts, dict):
        raise st.StudyError(f"[optimize] must be a table, got {type(opts).__name__}")
    unknown = set(opts) - set(OPTIMIZE_KEYS)
    if unknown:
        raise st.StudyError(f"unknown key(s) {sorted(unknown)} in [optimize]; valid: {', '.join(OPTIMIZE_KEYS)}")
    w, x, _ = mvm_data(s, cfg.dac.signed)
    opts = dict(opts)
    file = st.resolve_study(path, "mvm")
    output = opts.get("output")
    if output is not None:
        if not isinstance(output, str) or not output.strip():
            raise st.StudyError(f"[optimize] output must be a file stem (a non-empty string), got {output!r}")
        out = Path(output)
        opts["output"] = out if out.is_absolute() else file.parent / out
        if st.is_embedded(opts["output"]):
            raise st.StudyError(f"[optimize] output {out} is inside jaxcim's own studies folder; use --out")
    opts["name"] = s["name"]
    return cfg, np.asarray(w), np.asarray(x), opts


def add_optimize_arguments(parser: argparse.ArgumentParser) -> None:
    from jaxcim.cli import DEFAULT_OUT, add_distributed_arguments

    parser.add_argument("study", help="mvm study TOML (as for jaxcim run) with an [optimize] table, or the "
                        "shipped study name mvm")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output folder of the mapping, <name>_mapping.npz/.json "
                        f"(default {DEFAULT_OUT})")
    parser.add_argument("-o", "--output", help="mapping file stem instead (writes STEM.npz and STEM.json); "
                        "default [optimize].output, else <out>/<name>_mapping")
    parser.add_argument("--steps", type=int, help="override [optimize].steps")
    parser.add_argument("--n-instances", type=int, help="override [optimize].n_instances")
    parser.add_argument("--seed", type=int, help="override [optimize].seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_distributed_arguments(parser)


def optimize_command(args: argparse.Namespace) -> int:
    """Run a mapping optimization study; write the mapping; print before/after errors. Returns the exit code."""
    import jax
    import optax

    from jaxcim import distributed
    from jaxcim.cli import init_distributed
    from jaxcim.io import StudyError
    from jaxcim.optimize import DEFAULT_LEARN, optimize_mapping, save_mapping

    try:
        init_distributed(args)
        cfg, w, x, opts = load_study(args.study)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in ("steps", "n_instances", "seed"):
        if getattr(args, name, None) is not None:
            opts[name] = getattr(args, name)
    if getattr(args, "output", None):
        opts["output"] = Path(args.output)
    elif opts.get("output") is None:
        opts["output"] = Path(getattr(args, "out", None) or "jaxcim-results") / f"{opts['name']}_mapping"
    try:  # fail now, not after training, if the mapping cannot be written or the seed is not one
        _check_before_training(opts)
    except StudyError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        result = optimize_mapping(
            cfg, w, x, key=jax.random.key(int(opts.get("seed", 0))), steps=opts.get("steps", 300),
            optimizer=optax.adam(float(opts.get("learning_rate", 1e-2))), n_instances=opts.get("n_instances", 64),
            times=tuple(opts.get("times", (1.0,))), learn=tuple(opts.get("learn", DEFAULT_LEARN)),
            n_eval=opts.get("n_eval", 64), chunk=opts.get("chunk") or None, progress=not args.no_progress,
        )
    except (TypeError, ValueError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = {
        "study": str(args.study), "config": cfg.name, "weights": list(w.shape), "times_s": list(result.times),
        "steps": len(result.loss_history), "instances": result.instances,
        "loss_first": float(result.loss_history[0]), "loss_last": float(result.loss_history[-1]),
        "before": result.before, "after": result.after, "wall_time_s": result.wall_time_s,
    }
    if not distributed.is_primary():
        return 0
    try:
        npz, meta = save_mapping(opts["output"], result.mapping, metadata={**summary,
                                 "loss_history": result.loss_history.tolist()})
    except OSError as e:
        print(f"error: cannot write the mapping {opts['output']}: {e.strerror or e}", file=sys.stderr)
        return 2
    summary["mapping"] = [str(npz), str(meta)]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        b, a = result.before, result.after
        print(f"relative MVM error on held-out instances/inputs ({b.get('n', 0)} samples):")
        if b:
            print(f"  {'':8s} {'mean':>8s} {'p95':>8s}")
            print(f"  {'plain':8s} {b['mean']:8.4f} {b['p95']:8.4f}")
            print(f"  {'learned':8s} {a['mean']:8.4f} {a['p95']:8.4f}")
            print(f"  reduction: mean {1 - a['mean'] / b['mean']:.1%}, p95 {1 - a['p95'] / b['p95']:.1%}")
        print(f"mapping written to {npz} and {meta}")
    return 0


def _check_before_training(opts: dict) -> None:
    """Raise StudyError if the mapping files cannot be written or the seed is out of range."""
    from jaxcim.io import StudyError, check_writable_file, mapping_paths
    from jaxcim.studies import MAX_SEED

    seed = opts.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise StudyError(f"[optimize] seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    for path in mapping_paths(opts["output"]):
        check_writable_file(path, "mapping file")


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m jaxcim.cli_optimize study.toml``; usually ``jaxcim optimize``)."""
    parser = argparse.ArgumentParser(prog="jaxcim optimize", description=__doc__.splitlines()[0])
    add_optimize_arguments(parser)
    return optimize_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
