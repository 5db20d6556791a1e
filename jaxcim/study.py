"""Study files and the long-running Monte Carlo job behind ``jaxcim run``.

A study file is TOML: study keys at the top level and the crossbar under ``[crossbar]`` (read with
`jaxcim.config.load_config`)::

    study = "mvm"              # the study type (dispatch key; "mvm" is the default)
    name = "my-study"
    instances = 1000           # device instances
    times = [1.0, 3600.0]      # read times after programming, s
    batch = 64                 # input vectors, uniform in [-1, 1] ([0, 1] for unsigned DACs)
    seed = 0
    weights = "gaussian"       # N(0, 1/in_features) weights drawn from the seed, or a .npy path
    in_features = 256          # shape of gaussian weights
    out_features = 256
    memory_budget = 0          # working memory per chunk, bytes (0: 256 MiB on CPU, 1/4 of GPU/TPU memory)
    chunk_size = 0             # instances per chunk (0: from memory_budget)
    [crossbar]
    preset = "pcm-ibm"

`run_mvm` runs it chunk by chunk (`jaxcim.montecarlo.iter_chunks`) with a progress bar, checkpoints each
chunk atomically (write to a temporary file, then ``os.replace``) in ``<out>/checkpoint``, and on
``resume`` continues after the last complete chunk, with the same chunk size, so a resumed study gives
bit-for-bit the results of an uninterrupted one. New study types register in `STUDY_TYPES`.

The output folder is locked while a study runs (one job per folder; a killed job leaves no stale lock), every
chunk file carries the study's fingerprint (a chunk of another study, or a damaged or short one, is computed
again on resume), and starting over deletes only the files jaxcim writes in ``<out>/checkpoint`` (see
`jaxcim.io`).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jaxcim import io
from jaxcim.io import (  # noqa: F401 - re-exported: other modules import these from jaxcim.study
    StudyError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_npz,
    prepare_output,
)
from jaxcim.io import json_default as _json_default

MAX_INSTANCES = 2**31
"""Most device instances of a study (instance indices are uint32 inside the compiled chunks)."""
MAX_SEED = 2**32 - 1
"""Largest seed: ``jax.random.key`` keeps 32 bits of a seed (without x64), larger ones would repeat smaller ones."""
MAX_SIZE = 2**31 - 1
"""Largest batch, in_features, out_features and chunk_size."""


@dataclass(frozen=True)
class StudyType:
    """A kind of study: its keys with defaults, the function that validates them (``check(study, folder)``,
    raising `StudyError`) and the one that runs it (``run(study, cfg, out, resume=..., log=...)`` -> results
    as a JSON-able dict, see `run_mvm`) and the one that formats those results as a table."""

    defaults: Mapping[str, Any]
    run: Callable[..., dict[str, Any]]
    check: Callable[[dict[str, Any], Path | None], dict[str, Any]] | None = None
    table: Callable[[Mapping[str, Any]], str] | None = None


MVM_DEFAULTS: dict[str, Any] = {
    "study": "mvm", "name": "study", "instances": 256, "times": [0.0], "batch": 64, "seed": 0,
    "weights": "gaussian", "in_features": 256, "out_features": 256, "memory_budget": 0, "chunk_size": 0,
    "optimize": {},  # read by `jaxcim optimize` (jaxcim.cli_optimize), not by `jaxcim run`
}

STUDY_TYPES: dict[str, StudyType] = {}  # filled below; other modules add theirs (e.g. "classifier")


DEFAULT_STUDY = "classifier"
"""The study ``jaxcim run`` runs without arguments: a digits classifier on NeuRRAM-like ReRAM crossbars."""


def embedded_studies() -> list[str]:
    """Names of the studies shipped with jaxcim (``jaxcim run NAME``): `jaxcim/studies/NAME.toml`."""
    return sorted(p.name[:-5] for p in resources.files("jaxcim").joinpath("studies").iterdir()
                  if p.name.endswith(".toml"))


def embedded_study_path(name: str) -> Path:
    """The file of an embedded study (`embedded_studies`)."""
    return Path(str(resources.files("jaxcim") / "studies" / f"{name}.toml"))


def default_study_path() -> Path:
    """The embedded default study (`jaxcim/studies/classifier.toml`)."""
    return embedded_study_path(DEFAULT_STUDY)


def resolve_study(path: str | Path | None) -> Path:
    """A study file: ``path`` itself if it exists, else the embedded study of that name, else StudyError."""
    if path is None:
        return default_study_path()
    p = Path(path)
    if not p.is_file() and p.suffix == "" and str(p) in embedded_studies():
        return embedded_study_path(str(p))
    if not p.is_file():
        raise StudyError(f"study file not found: {p} (embedded studies: {', '.join(embedded_studies())})")
    return p


# ----------------------------------------------------------------------------------------- parsing


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise StudyError(f"study file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{p}: not valid TOML: {e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise StudyError(f"{p}: cannot read: {e}") from None


def _crossbar(data: Mapping[str, Any], where: str):
    from jaxcim.config import from_dict

    table = data.get("crossbar", {})
    if not isinstance(table, Mapping):
        raise StudyError(f"{where}: [crossbar] must be a table")
    try:
        return from_dict(table)
    except KeyError as e:
        raise StudyError(f"{where}: [crossbar]: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise StudyError(f"{where}: [crossbar]: {e}") from None


def _number(name: str, value: Any, lo: float, *, integer: bool = False, lo_open: bool = False,
            hi: int | None = None) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StudyError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    finite = not isinstance(value, float) or math.isfinite(value)  # (math.isfinite overflows on huge ints)
    if integer and finite and isinstance(value, float) and not value.is_integer():
        raise StudyError(f"{name} must be an integer, got {value!r}")
    if not finite or value < lo or (lo_open and value == lo):
        raise StudyError(f"{name} must be {'>' if lo_open else '>='} {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise StudyError(f"{name} must be <= {hi} ({hi:.3g}), got {value!r}")
    return int(value) if integer else float(value)


def check_mvm(study: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Validate and normalize the keys of an "mvm" study (ranges, types, the weights file)."""
    s = dict(study)
    s["instances"] = _number("instances", s["instances"], 1, integer=True, hi=MAX_INSTANCES)
    s["batch"] = _number("batch", s["batch"], 1, integer=True, hi=MAX_SIZE)
    s["seed"] = _number("seed", s["seed"], 0, integer=True, hi=MAX_SEED)
    s["in_features"] = _number("in_features", s["in_features"], 1, integer=True, hi=MAX_SIZE)
    s["out_features"] = _number("out_features", s["out_features"], 1, integer=True, hi=MAX_SIZE)
    s["memory_budget"] = _number("memory_budget", s["memory_budget"], 0)
    s["chunk_size"] = _number("chunk_size", s["chunk_size"], 0, integer=True, hi=MAX_SIZE)
    times = s["times"]
    if isinstance(times, int | float) and not isinstance(times, bool):
        times = [times]
    if not isinstance(times, list | tuple) or not times:
        raise StudyError(f"times must be a non-empty list of seconds, got {times!r}")
    s["times"] = [_number("times", t, 0.0) for t in times]
    if not isinstance(s["name"], str):
        raise StudyError(f"name must be a string, got {s['name']!r}")
    weights = s["weights"]
    if not isinstance(weights, str):
        raise StudyError(f"weights must be \"gaussian\" or the path of a .npy file, got {weights!r}")
    if weights != "gaussian":
        p = Path(weights)
        if not p.is_absolute() and base is not None:
            p = base / p
        if not p.is_file():
            raise StudyError(f"weights file not found: {p}")
        s["weights"] = str(p)
        _load_weights(s["weights"])  # refuse a bad file now, before anything is run or deleted
    return s


def _load_weights(path: str) -> np.ndarray:
    """The weights of a study from a ``.npy`` file: a finite, real, 2-d numeric array (StudyError otherwise)."""
    try:
        w = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise StudyError(f"weights file {path}: cannot read as .npy: {e}") from None
    if not isinstance(w, np.ndarray):
        w.close()
        raise StudyError(f"weights file {path}: a .npz archive; weights must be one array saved with np.save "
                         "(.npy), shape (in_features, out_features)")
    if w.ndim != 2 or w.dtype.kind not in "iuf" or w.size == 0 or not np.all(np.isfinite(w)):
        raise StudyError(f"weights file {path}: must be a finite 2-d real numeric array (in_features, "
                         f"out_features), got shape {w.shape} dtype {w.dtype}")
    return w


def load_study(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None):
    """Read a study file (default: the embedded one) and apply command-line overrides.

    Returns:
      (study, cfg): the study keys (all of them, defaults filled in, validated) and the `CrossbarConfig`.

    Raises:
      StudyError: missing/bad file, unknown key (the message lists the valid ones), out-of-range value.
    """
    path = resolve_study(path)
    data = read_toml(path)
    kind = data.get("study", "mvm")
    if kind not in STUDY_TYPES:
        raise StudyError(f"{path}: unknown study type {kind!r}; valid: {', '.join(sorted(STUDY_TYPES))}")
    stype = STUDY_TYPES[kind]
    study = dict(stype.defaults)
    for key, value in data.items():
        if key == "crossbar":
            continue
        if key not in stype.defaults:
            raise StudyError(f"{path}: unknown key {key!r}; valid keys: crossbar, {', '.join(stype.defaults)}")
        study[key] = value
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in stype.defaults:
            raise StudyError(f"--{key.replace('_', '-')} does not apply to a {kind!r} study")
        study[key] = value
    cfg = _crossbar(data, str(path))
    if stype.check is not None:
        study = stype.check(study, path.parent)
    return study, cfg


# ----------------------------------------------------------------------------------------- data


def mvm_data(study: Mapping[str, Any], signed: bool = True):
    """(weights (in, out), inputs (batch, in), Monte Carlo key) of an "mvm" study, all from its seed."""
    import jax

    k_w, k_x, k_mc = jax.random.split(jax.random.key(study["seed"]), 3)
    if study["weights"] == "gaussian":
        n_in, n_out = study["in_features"], study["out_features"]
        w = jax.random.normal(k_w, (n_in, n_out)) / math.sqrt(n_in)
    else:
        w = jax.numpy.asarray(_load_weights(study["weights"]), dtype=jax.numpy.float32)
    lo = -1.0 if signed else 0.0
    x = jax.random.uniform(k_x, (study["batch"], w.shape[0]), minval=lo, maxval=1.0)
    return w, x, k_mc


def fingerprint(study: Mapping[str, Any], cfg, w, mapping: Any = None) -> str:
    """Hash of everything that determines per-instance results (not the instance count or chunking)."""
    skip = ("instances", "memory_budget", "chunk_size", "name", "optimize")
    keep = {k: v for k, v in study.items() if k not in skip}
    h = hashlib.sha256(json.dumps({"study": keep, "crossbar": cfg.to_dict()}, sort_keys=True,
                                  default=_json_default).encode())
    h.update(np.ascontiguousarray(np.asarray(w)).tobytes())
    if mapping is not None:
        import jax

        for leaf in jax.tree.leaves(mapping):
            h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- progress


class Progress:
    """tqdm bar over instances on a terminal; plain log lines (about every 5 s and at the end) otherwise."""

    def __init__(self, total: int, done: int = 0, desc: str = "instances", stream=None):
        self.total, self.done, self.start_done = total, done, done
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if getattr(self.stream, "isatty", lambda: False)():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=done, desc=desc, unit="inst", file=self.stream)
            except ImportError:
                pass

    def update(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
            return
        now = time.perf_counter()
        if now - self.last >= 5.0 or self.done >= self.total:
            self.last = now
            rate = (self.done - self.start_done) / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"instances {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), {rate:.1f} inst/s, "
                  f"ETA {eta:.0f} s", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------------------- the job


def _start_checkpoint(ckpt: Path, fp: str, resume: bool, log) -> dict[str, Any] | None:
    """The checkpoint state to resume from, or None: start over (jaxcim's files in ``ckpt`` deleted)."""
    state = None
    if resume:
        state = io.read_state(ckpt / "state.json", {"fingerprint": io.is_str, "chunk_size": io.is_positive_int})
        if state is None:
            log("no checkpoint found: starting from the first instance")
        elif state["fingerprint"] != fp:
            raise StudyError(f"--resume: the study in {ckpt.parent} was run with a different configuration "
                             "(crossbar, times, batch, seed or weights); run without --resume to start over, "
                             "or choose another --out folder")
    if state is None:
        kept = io.clean_checkpoint(ckpt)
        if kept:
            log(f"{ckpt}: kept {len(kept)} file(s) that jaxcim did not write: {', '.join(p.name for p in kept[:5])}")
    return state


def _load_chunks(ckpt: Path, fp: str, n: int, rows: Mapping[str, tuple[tuple[int, ...], Any]],
                 log) -> tuple[int, list[dict[str, np.ndarray]]]:
    """(instances done, chunk results) of the consecutive valid chunks from instance 0 in ``ckpt``.

    ``rows``: ``{name: (shape of one instance's result, dtype)}``. A chunk file that is damaged, short or of
    another study ends the sequence (its instances run again); chunk files not used are deleted.
    """
    chunks = io.list_chunks(ckpt)
    used: set[Path] = set()
    parts, done = [], 0
    while done < n:
        for first, stop, f in chunks:
            if first != done:
                continue
            try:
                part = io.read_npz(f, fp, {k: ((stop - first, *shape), dtype) for k, (shape, dtype) in rows.items()})
            except io.CheckpointError as e:
                log(f"checkpoint {f.name}: {e}; its instances run again")
                continue
            parts.append(part)
            used.add(f)
            done = stop
            break
        else:
            break
    io.remove_files(f for _, _, f in chunks if f not in used)
    return done, parts


def run_mvm(study: dict[str, Any], cfg, out: str | Path, *, resume: bool = False, log=None,
            progress: bool = True, mapping: Any = None) -> dict[str, Any]:
    """Run an "mvm" study: relative MVM error across device instances at each read time.

    Args:
      study: validated study keys (`load_study`). cfg: the crossbar config.
      out: output folder: results.json, instances.npz, plots, checkpoint/. It is locked while the study runs
        (`jaxcim.io.lock_output`: StudyError if another job holds it).
      resume: continue a checkpointed run of the same study (StudyError if its configuration differs or its
        state file is damaged; chunks that are damaged or of another study are computed again).
      log: a ``print``-like function for messages (default: stderr).
      progress: show a progress bar / progress lines.
      mapping: a learned mapping (`jaxcim.load_mapping`) to program the weights with; None: the plain one.

    Returns:
      the content of results.json.
    """
    log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
    # everything is checked before the output folder is touched
    w, x, key = mvm_data(study, cfg.dac.signed)
    if mapping is not None:
        mapping.check(cfg, w.shape)
    fp = fingerprint(study, cfg, w, mapping)
    out = prepare_output(out)
    with io.lock_output(out, name=io.job_lock_name()):
        return _run_mvm(study, cfg, out, w, x, key, fp, resume=resume, log=log, progress=progress, mapping=mapping)


def _run_mvm(study, cfg, out: Path, w, x, key, fp: str, *, resume: bool, log, progress: bool,
             mapping: Any) -> dict[str, Any]:
    import jax
    import jax.numpy as jnp

    import jaxcim
    from jaxcim import montecarlo as mc

    ckpt = out / "checkpoint"
    times = study["times"]
    n = study["instances"]
    reference = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)

    state = _start_checkpoint(ckpt, fp, resume, log)
    ckpt.mkdir(exist_ok=True)
    mesh = mc.default_mesh()
    if state is not None:
        chunk_size = int(state["chunk_size"])
    else:
        budget = study["memory_budget"] or mc.default_memory_budget(mesh.devices.flat)
        chunk_size = study["chunk_size"] or mc.chunk_size_for(
            budget, mc.instance_bytes(cfg, w.shape[0], w.shape[1], x.shape[0], len(times)), n, mesh.devices.size)
        chunk_size = -(-chunk_size // mesh.devices.size) * mesh.devices.size
    atomic_write_json(ckpt / "state.json", {"fingerprint": fp, "chunk_size": chunk_size})

    # Baseline: noise-free devices (programming, drift, read noise off): the error of the converters alone.
    # Same leaves-only change, times and chunk size: it reuses the study's compiled chunk.
    quiet = cfg.replace(**{"device.prog_noise_scale": 0.0, "device.read_noise_scale": 0.0, "device.drift_scale": 0.0})
    (_, _, base), = mc.iter_chunks(quiet, w, x, key=key, n=1, times=times, reduce=mc._error_stats, aux=reference,
                                   mapping=mapping, chunk_size=chunk_size, mesh=mesh)
    base = {k: np.asarray(v) for k, v in base.items()}
    baseline = float(base["rel_error"][0, 0])

    done, parts = 0, []
    if state is not None:  # the checkpoint's chunks, checked against the baseline's per-instance shapes
        done, parts = _load_chunks(ckpt, fp, n, {k: (v.shape[1:], v.dtype) for k, v in base.items()}, log)
        if done:
            log(f"resuming after {min(done, n)} of {n} instances")

    bar = Progress(n, min(done, n)) if progress else None
    t_start = time.perf_counter()
    t_first = None
    ran = 0
    for first, stop, res in mc.iter_chunks(cfg, w, x, key=key, n=n, times=times, reduce=mc._error_stats,
                                           aux=reference, mapping=mapping, start=done, chunk_size=chunk_size,
                                           mesh=mesh):
        res = {k: np.asarray(v) for k, v in res.items()}
        if t_first is None:
            t_first = time.perf_counter() - t_start
        io.write_npz(ckpt / io.chunk_name(first, stop), fp, res)
        parts.append(res)
        ran += stop - first
        if bar is not None:
            bar.update(stop - first)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t_start
    errors = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
    if any(len(v) != n for v in errors.values()):  # cannot happen: the chunks are checked
        raise RuntimeError(f"internal error: {min(len(v) for v in errors.values())} rows for {n} instances")
    stats = {k: np.asarray(v) for k, v in mc.summarize_errors({k: jnp.asarray(v) for k, v in errors.items()}).items()}
    atomic_write_npz(out / "instances.npz", times=np.asarray(times), **errors)

    per_time = [{"t": t, **{k: float(stats[k][i]) for k in ("mean", "std", "min", "p5", "p50", "p95", "max")}}
                for i, t in enumerate(times)]
    results = {
        "study": study, "crossbar": cfg.to_dict(), "fingerprint": fp, "learned_mapping": mapping is not None,
        "versions": {"jaxcim": jaxcim.__version__, "jax": jax.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "device": {"platform": jax.default_backend(), "kind": jax.devices()[0].device_kind,
                   "count": len(jax.devices()), "processes": jax.process_count()},
        "timings": {"chunk_size": chunk_size, "instances_run": ran, "resumed_from": done,
                    "first_chunk_s_incl_compile": t_first, "total_s": elapsed,
                    "instances_per_s": ran / elapsed if ran else None},
        "baseline_rel_error_noise_free": baseline,
        "statistics": per_time,
        "column_statistics": {k: stats[k].tolist() for k in stats if k.startswith("col_")},
    }
    atomic_write_json(out / "results.json", results)
    results["files"] = ["results.json", "instances.npz"]
    results["plots"] = write_plots(out, errors["rel_error"], times, baseline)
    return results


def write_plots(out: Path, rel_error: np.ndarray, times, baseline: float) -> list[str] | None:
    """Error histogram across instances and error vs read time (PNG); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, t in enumerate(times):
        ax.hist(100 * rel_error[:, i], bins=40, alpha=0.6, label=f"t = {format_time(t)}")
    ax.axvline(100 * baseline, color="k", ls="--", label="noise-free devices")
    ax.set_xlabel("relative MVM error (%)")
    ax.set_ylabel("instances")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "error_histogram.png", dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    tt = np.maximum(np.asarray(times, float), 1e-3)
    p5, p50, p95 = np.percentile(100 * rel_error, [5, 50, 95], axis=0)
    ax.fill_between(tt, p5, p95, alpha=0.3, label="5-95 %")
    ax.plot(tt, p50, "o-", label="median")
    ax.axhline(100 * baseline, color="k", ls="--", label="noise-free devices")
    if len(tt) > 1 and tt.max() / tt.min() > 10:
        ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("relative MVM error (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "error_vs_time.png", dpi=120)
    plt.close(fig)
    return ["error_histogram.png", "error_vs_time.png"]


def format_time(t: float) -> str:
    """Seconds as a short readable duration (1 s, 1 h, 2 d, 1 y)."""
    for unit, s in (("y", 3.15576e7), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= s:
            v = t / s
            return f"{v:.3g} {unit}"
    return f"{t:.3g} s"


def table(results: Mapping[str, Any]) -> str:
    """The summary table of a study's results."""
    lines = [f"{'time':>10} {'mean':>9} {'p5':>9} {'p50':>9} {'p95':>9}   relative MVM error ||y - xW|| / ||xW||"]
    lines.append(f"{'ideal':>10} {0.0:9.2%} {0.0:9.2%} {0.0:9.2%} {0.0:9.2%}   (float x @ w)")
    b = results["baseline_rel_error_noise_free"]
    lines.append(f"{'no noise':>10} {b:9.2%} {b:9.2%} {b:9.2%} {b:9.2%}   (converters only, noise-free devices)")
    for r in results["statistics"]:
        lines.append(f"{format_time(r['t']):>10} {r['mean']:9.2%} {r['p5']:9.2%} {r['p50']:9.2%} {r['p95']:9.2%}")
    return "\n".join(lines)


STUDY_TYPES["mvm"] = StudyType(MVM_DEFAULTS, run_mvm, check_mvm, table)


def _run_classifier(study, cfg, out, *, resume=False, log=None, progress=True):
    from jaxcim.nn.study import run_classifier_study

    return run_classifier_study(study, cfg=cfg, out_dir=prepare_output(out), progress=progress, resume=resume)


def _check_classifier(study: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    from jaxcim.nn.study import check_classifier

    try:
        return check_classifier(study)
    except (KeyError, TypeError, ValueError) as e:
        raise StudyError(e.args[0] if isinstance(e, KeyError) else str(e)) from None


CLASSIFIER_DEFAULTS: dict[str, Any] = {
    "study": "classifier", "name": "classifier", "seed": 0, "instances": 256, "chunk_size": 0, "memory_budget": 0,
    "times": [1.0, 3600.0, 86400.0, 31557600.0], "model": {}, "train": {}, "hwa": {},
}
STUDY_TYPES["classifier"] = StudyType(CLASSIFIER_DEFAULTS, _run_classifier, _check_classifier)

__all__ = [
    "DEFAULT_STUDY", "STUDY_TYPES", "StudyError", "StudyType", "atomic_write_json", "atomic_write_npz",
    "default_study_path", "embedded_studies", "load_study", "resolve_study", "run_mvm", "table",
]
