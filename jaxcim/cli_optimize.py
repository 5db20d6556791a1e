"""Handler of the ``jaxcim optimize study.toml`` subcommand (wired into `jaxcim.cli`).

Study file (TOML); paths are relative to the study file::

    [crossbar]              # a CrossbarConfig, as read by load_config(path, section="crossbar")
    preset = "pcm-ibm"
    [weights]               # file = "w.npy" (in_features, out_features), or a random Gaussian matrix:
    in_features = 256
    out_features = 256
    std = 0.1
    seed = 0
    [inputs]                # file = "x.npy" (batch, in_features), or n random vectors uniform in [-1, 1]
    n = 64                  # ([0, 1] for unsigned DACs); the last quarter is held out for the statistics
    seed = 1
    [optimize]
    steps = 300
    n_instances = 64
    learning_rate = 0.01
    times = [86400.0]
    learn = ["col_range", "split", "curve", "digital", "adc_range"]
    n_eval = 64
    seed = 0
    chunk = 0               # instances per chunk in a training step (0: all at once)
    output = "mapping"      # writes mapping.npz + mapping.json (atomic), read by `jaxcim run --mapping`
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

OPTIMIZE_KEYS = ("steps", "n_instances", "learning_rate", "times", "learn", "n_eval", "seed", "chunk", "output")


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"study file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None


def _array_table(table: dict[str, Any], name: str, base: Path, random_keys: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise TypeError(f"[{name}] must be a table, got {type(table).__name__}")
    valid = ("file", *random_keys)
    unknown = set(table) - set(valid)
    if unknown:
        raise KeyError(f"unknown key(s) {sorted(unknown)} in [{name}]; valid: {', '.join(valid)}")
    if "file" in table:
        p = base / table["file"]
        if not p.is_file():
            raise FileNotFoundError(f"[{name}] file not found: {p}")
        return {"array": np.load(p)}
    return table


def load_study(path: str | Path):
    """(cfg, w, x, options) from a study TOML (see the module docstring)."""
    from jaxcim.config import load_config

    path = Path(path)
    data = _read_toml(path)
    cfg = load_config(path, section="crossbar")
    base = path.parent
    wt = _array_table(data.get("weights", {}), "weights", base, ("in_features", "out_features", "std", "seed"))
    if "array" in wt:
        w = np.asarray(wt["array"], dtype=np.float32)
    else:
        rng = np.random.default_rng(int(wt.get("seed", 0)))
        shape = (int(wt.get("in_features", 256)), int(wt.get("out_features", 256)))
        w = (rng.standard_normal(shape) * float(wt.get("std", 0.1))).astype(np.float32)
    xt = _array_table(data.get("inputs", {}), "inputs", base, ("n", "seed"))
    if "array" in xt:
        x = np.asarray(xt["array"], dtype=np.float32)
    else:
        rng = np.random.default_rng(int(xt.get("seed", 1)))
        lo = -1.0 if cfg.dac.signed else 0.0
        x = rng.uniform(lo, 1.0, (int(xt.get("n", 64)), w.shape[0])).astype(np.float32)
    opts = data.get("optimize", {})
    if not isinstance(opts, dict):
        raise TypeError(f"[optimize] must be a table, got {type(opts).__name__}")
    unknown = set(opts) - set(OPTIMIZE_KEYS)
    if unknown:
        raise KeyError(f"unknown key(s) {sorted(unknown)} in [optimize]; valid: {', '.join(OPTIMIZE_KEYS)}")
    opts = dict(opts)
    out = Path(opts.get("output", path.with_suffix("").name + "_mapping"))
    opts["output"] = out if out.is_absolute() else base / out
    return cfg, w, x, opts


def add_optimize_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", help="study TOML with [crossbar], [weights], [inputs] and [optimize] tables")
    parser.add_argument("-o", "--output", help="mapping file stem (writes STEM.npz and STEM.json); "
                        "default [optimize].output")
    parser.add_argument("--steps", type=int, help="override [optimize].steps")
    parser.add_argument("--n-instances", type=int, help="override [optimize].n_instances")
    parser.add_argument("--seed", type=int, help="override [optimize].seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def optimize_command(args: argparse.Namespace) -> int:
    """Run a mapping optimization study; write the mapping; print before/after errors. Returns the exit code."""
    import jax
    import optax

    from jaxcim.optimize import DEFAULT_LEARN, optimize_mapping, save_mapping

    try:
        cfg, w, x, opts = load_study(args.study)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in ("steps", "n_instances", "seed"):
        if getattr(args, name, None) is not None:
            opts[name] = getattr(args, name)
    if getattr(args, "output", None):
        opts["output"] = Path(args.output)
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
    npz, meta = save_mapping(opts["output"], result.mapping, metadata={**summary,
                             "loss_history": result.loss_history.tolist()})
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


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m jaxcim.cli_optimize study.toml``; usually ``jaxcim optimize``)."""
    parser = argparse.ArgumentParser(prog="jaxcim optimize", description=__doc__.splitlines()[0])
    add_optimize_arguments(parser)
    return optimize_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
