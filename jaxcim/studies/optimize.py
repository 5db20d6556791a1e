"""Mapping optimization studies (``jaxcim optimize``): learn a variation-aware mapping for an mvm study's weights.

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

from pathlib import Path
from typing import Any

import numpy as np

from jaxcim.io import StudyError, check_writable_file, mapping_paths
from jaxcim.studies.base import MAX_SEED, is_embedded, load_study, resolve_study

OPTIMIZE_KEYS = ("steps", "n_instances", "learning_rate", "times", "learn", "n_eval", "seed", "chunk", "output")


def load_optimize_study(path: str | Path | None):
    """(cfg, w, x, options) of an mvm study with an ``[optimize]`` table (see the module docstring).

    Raises:
      StudyError: a missing or bad file, an unknown key, a value out of range.
    """
    from jaxcim.studies.mvm import mvm_data

    s, cfg = load_study(path, default="mvm")
    if s["study"] != "mvm":
        raise StudyError(f"jaxcim optimize needs an mvm study (weights, inputs, crossbar), got a "
                         f"{s['study']!r} study")
    opts = s["optimize"]
    if not isinstance(opts, dict):
        raise StudyError(f"[optimize] must be a table, got {type(opts).__name__}")
    unknown = set(opts) - set(OPTIMIZE_KEYS)
    if unknown:
        raise StudyError(f"unknown key(s) {sorted(unknown)} in [optimize]; valid: {', '.join(OPTIMIZE_KEYS)}")
    w, x, _ = mvm_data(s, cfg.dac.signed)
    opts = dict(opts)
    output = opts.get("output")
    if output is not None:
        if not isinstance(output, str) or not output.strip():
            raise StudyError(f"[optimize] output must be a file stem (a non-empty string), got {output!r}")
        out = Path(output)
        opts["output"] = out if out.is_absolute() else resolve_study(path, "mvm").parent / out
    opts["name"] = s["name"]
    return cfg, np.asarray(w), np.asarray(x), opts


def output_stem(opts: dict[str, Any], output: str | None, out_dir: str | Path) -> Path:
    """Where the mapping goes: ``output`` (``-o``), else ``[optimize].output``, else ``out_dir/<name>_mapping``.

    Raises:
      StudyError: it is inside jaxcim's own studies folder, or cannot be written; the seed is out of range.
    """
    stem = Path(output) if output else opts.get("output") or Path(out_dir) / f"{opts['name']}_mapping"
    if is_embedded(stem):
        raise StudyError(f"mapping {stem} would be written into jaxcim's own studies folder; use --out")
    seed = opts.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise StudyError(f"[optimize] seed must be an integer in [0, {MAX_SEED}], got {seed!r}")
    for path in mapping_paths(stem):
        check_writable_file(path, "mapping file")
    return Path(stem)


def run_optimize(cfg, w, x, opts: dict[str, Any], *, progress: bool = True):
    """`jaxcim.optimize_mapping` with the study's options; (result, summary dict).

    Raises:
      StudyError: a bad option (TypeError, ValueError or a non-finite loss from the optimizer).
    """
    import jax
    import optax

    from jaxcim.optimize import DEFAULT_LEARN, optimize_mapping

    try:
        result = optimize_mapping(
            cfg, w, x, key=jax.random.key(int(opts.get("seed", 0))), steps=opts.get("steps", 300),
            optimizer=optax.adam(float(opts.get("learning_rate", 1e-2))), n_instances=opts.get("n_instances", 64),
            times=tuple(opts.get("times", (1.0,))), learn=tuple(opts.get("learn", DEFAULT_LEARN)),
            n_eval=opts.get("n_eval", 64), chunk=opts.get("chunk") or None, progress=progress,
        )
    except (TypeError, ValueError, FloatingPointError) as e:
        raise StudyError(str(e)) from None
    summary = {
        "config": cfg.name, "weights": list(w.shape), "times_s": list(result.times),
        "steps": len(result.loss_history), "instances": result.instances,
        "loss_first": float(result.loss_history[0]), "loss_last": float(result.loss_history[-1]),
        "before": result.before, "after": result.after, "wall_time_s": result.wall_time_s,
    }
    return result, summary


def save(stem: Path, result, summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write the learned mapping (`jaxcim.save_mapping`, atomic) with the summary and loss history."""
    from jaxcim.optimize import save_mapping

    try:
        return save_mapping(stem, result.mapping, metadata={**summary, "loss_history": result.loss_history.tolist()})
    except OSError as e:
        raise StudyError(f"cannot write the mapping {stem}: {e.strerror or e}") from None


def table(summary: dict[str, Any]) -> str:
    """Before/after relative MVM error on held-out instances and inputs."""
    b, a = summary["before"], summary["after"]
    lines = [f"relative MVM error on held-out instances/inputs ({b.get('n', 0)} samples):"]
    if b:
        lines += [f"  {'':8s} {'mean':>8s} {'p95':>8s}", f"  {'plain':8s} {b['mean']:8.4f} {b['p95']:8.4f}",
                  f"  {'learned':8s} {a['mean']:8.4f} {a['p95']:8.4f}",
                  f"  reduction: mean {1 - a['mean'] / b['mean']:.1%}, p95 {1 - a['p95'] / b['p95']:.1%}"]
    return "\n".join(lines)


__all__ = ["OPTIMIZE_KEYS", "load_optimize_study", "output_stem", "run_optimize", "save", "table"]
