"""The ``mvm`` study: relative matrix-vector-product error of a crossbar across device instances and read times.

Study file (TOML; `jaxcim/studies/mvm.toml` is the shipped one, ``jaxcim run mvm``)::

    study = "mvm"
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
    [optimize]                 # read by `jaxcim optimize` (jaxcim.cli_optimize), not by `jaxcim run`

`run_mvm` runs it chunk by chunk (`jaxcim.montecarlo.iter_chunks`) with a progress bar, checkpoints each chunk
atomically in ``<out>/checkpoint`` and on ``resume`` continues after the last complete chunk, with the same
chunk size, so a resumed study gives bit-for-bit the results of an uninterrupted one. The output folder is
locked while it runs; chunk files carry the study's fingerprint (`jaxcim.io`). In a multi-process run every
process computes its share of each chunk and process 0 writes the files.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxcim import checks, distributed, io
from jaxcim.progress import Progress, format_time
from jaxcim.studies import plots
from jaxcim.studies import results as res_mod
from jaxcim.studies.base import MAX_INSTANCES, MAX_SEED, MAX_SIZE, StudyError, StudyType, register

MVM_DEFAULTS: dict[str, Any] = {
    "study": "mvm", "name": "study", "instances": 256, "times": [0.0], "batch": 64, "seed": 0,
    "weights": "gaussian", "in_features": 256, "out_features": 256, "memory_budget": 0, "chunk_size": 0,
    "optimize": {},  # read by `jaxcim optimize` (jaxcim.cli_optimize), not by `jaxcim run`
}


def check_mvm(study: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Validate and normalize the keys of an "mvm" study (ranges, types, the weights file)."""
    s = dict(study)
    for key, lo, hi in (("instances", 1, MAX_INSTANCES), ("batch", 1, MAX_SIZE), ("seed", 0, MAX_SEED),
                        ("in_features", 1, MAX_SIZE), ("out_features", 1, MAX_SIZE), ("chunk_size", 0, MAX_SIZE)):
        s[key] = checks.check_number(key, s[key], lo, integer=True, hi=hi, say_integer=False)
    s["memory_budget"] = checks.check_number("memory_budget", s["memory_budget"], 0)
    s["times"] = checks.check_times(s["times"])
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
        load_weights(s["weights"])  # refuse a bad file now, before anything is run or deleted
    return s


def load_weights(path: str) -> np.ndarray:
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


def mvm_data(study: Mapping[str, Any], signed: bool = True):
    """(weights (in, out), inputs (batch, in), Monte Carlo key) of an "mvm" study, all from its seed."""
    import jax

    k_w, k_x, k_mc = jax.random.split(jax.random.key(study["seed"]), 3)
    if study["weights"] == "gaussian":
        n_in, n_out = study["in_features"], study["out_features"]
        w = jax.random.normal(k_w, (n_in, n_out)) / math.sqrt(n_in)
    else:
        w = jax.numpy.asarray(load_weights(study["weights"]), dtype=jax.numpy.float32)
    lo = -1.0 if signed else 0.0
    x = jax.random.uniform(k_x, (study["batch"], w.shape[0]), minval=lo, maxval=1.0)
    return w, x, k_mc


def fingerprint(study: Mapping[str, Any], cfg, w, mapping: Any = None) -> str:
    """Hash of everything that determines per-instance results (not the instance count or chunking)."""
    import jax

    skip = ("instances", "memory_budget", "chunk_size", "name", "optimize")
    keep = {k: v for k, v in study.items() if k not in skip}
    leaves = jax.tree.leaves(mapping) if mapping is not None else []
    return io.fingerprint({"study": keep, "crossbar": cfg.to_dict()}, [w, *leaves])


def error_stats(y, reference) -> dict[str, Any]:
    """The per-instance reduction of the study: relative MVM error, total and per column
    (`jaxcim.montecarlo.relative_errors`)."""
    from jaxcim.montecarlo import relative_errors

    total, per_col = relative_errors(y, reference)
    return {"rel_error": total, "col_rel_error": per_col}


# ----------------------------------------------------------------------------------------- the job


def run_mvm(study: dict[str, Any], cfg, out: str | Path, *, resume: bool = False, log=None,
            progress: bool = True, mapping: Any = None, netcdf: bool = False) -> dict[str, Any]:
    """Run an "mvm" study: relative MVM error across device instances at each read time.

    Args:
      study: validated study keys (`jaxcim.studies.load_study`). cfg: the crossbar config.
      out: output folder: results.json, instances.npz, plots, checkpoint/. It is locked while the study runs
        (`jaxcim.io.lock_output`: StudyError if another job holds it).
      resume: continue a checkpointed run of the same study (StudyError if its configuration differs or its
        state file is damaged; chunks that are damaged or of another study are computed again).
      log: a ``print``-like function for messages (default: stderr).
      progress: show a progress bar / progress lines.
      mapping: a learned mapping (`jaxcim.load_mapping`) to program the weights with; None: the plain one.
      netcdf: also write ``results.nc`` (xarray; see `jaxcim.studies.results`).

    Returns:
      the content of results.json (`jaxcim.studies.results`).
    """
    log = log or (lambda *a: print(*a, file=sys.stderr, flush=True))
    # everything is checked before the output folder is touched
    w, x, key = mvm_data(study, cfg.dac.signed)
    if mapping is not None:
        mapping.check(cfg, w.shape)
    fp = fingerprint(study, cfg, w, mapping)
    out = io.prepare_output(out)
    with io.lock_output(out, name=io.job_lock_name()):
        ckpt = out / "checkpoint"
        state = io.start_checkpoint(ckpt, fp, resume, {"chunk_size": io.is_positive_int}, log,
                                    what="crossbar, times, batch, seed or weights")
        job = _Job(study, cfg, w, x, key, fp, ckpt, mapping)
        job.plan(state)
        errors, stats = job.run(state is not None, log, progress)
        return _write_results(job, out, errors, stats, netcdf)


class _Job:
    """One mvm run: its data, chunk plan, noise-free baseline and chunk loop."""

    def __init__(self, study, cfg, w, x, key, fp: str, ckpt: Path, mapping):
        import jax
        import jax.numpy as jnp

        from jaxcim import montecarlo as mc

        self.study, self.cfg, self.w, self.x, self.key, self.fp, self.ckpt = study, cfg, w, x, key, fp, ckpt
        self.mapping = mapping
        self.reference = jnp.matmul(x, w, precision=jax.lax.Precision.HIGHEST)
        self.mesh = mc.default_mesh()
        self.primary = distributed.is_primary()

    def plan(self, state: Mapping[str, Any] | None) -> None:
        """The chunk size: the checkpoint's on resume, else the study's or one that fits the memory budget."""
        from jaxcim import montecarlo as mc

        s, n_dev = self.study, self.mesh.devices.size
        if state is not None:
            self.chunk_size = int(state["chunk_size"])
        else:
            budget = s["memory_budget"] or mc.default_memory_budget(self.mesh.devices.flat)
            per = mc.instance_bytes(self.cfg, self.w.shape[0], self.w.shape[1], self.x.shape[0], len(s["times"]))
            size = s["chunk_size"] or mc.chunk_size_for(budget, per, s["instances"], n_dev)
            self.chunk_size = -(-size // n_dev) * n_dev
        if self.primary:
            self.ckpt.mkdir(exist_ok=True)
            io.atomic_write_json(self.ckpt / "state.json", {"fingerprint": self.fp, "chunk_size": self.chunk_size})

    def chunks(self, cfg, n: int, start: int = 0):
        from jaxcim import montecarlo as mc

        return mc.iter_chunks(cfg, self.w, self.x, key=self.key, n=n, times=self.study["times"], reduce=error_stats,
                              aux=self.reference, mapping=self.mapping, start=start, chunk_size=self.chunk_size,
                              mesh=self.mesh)

    def baseline(self) -> dict[str, np.ndarray]:
        """One instance of noise-free devices (programming, drift, read noise off): the converters' error alone.
        A leaves-only change with the same times and chunk size: it reuses the study's compiled chunk."""
        quiet = self.cfg.replace(**{"device.prog_noise_scale": 0.0, "device.read_noise_scale": 0.0,
                                    "device.drift_scale": 0.0})
        (_, _, base), = self.chunks(quiet, 1)
        return {k: np.asarray(v) for k, v in base.items()}

    def run(self, resuming: bool, log, progress: bool):
        """(per-instance errors, summary statistics) of all instances, chunks checkpointed as they finish."""
        from jaxcim import montecarlo as mc

        n = self.study["instances"]
        base = self.baseline()
        self.baseline_error = float(base["rel_error"][0, 0])
        done, parts = 0, []
        if resuming:  # the checkpoint's chunks, checked against the baseline's per-instance shapes
            done, parts = io.load_chunks(self.ckpt, self.fp, n, {k: (v.shape[1:], v.dtype) for k, v in base.items()},
                                         log)
            distributed.check_same([done], f"the instances done in {self.ckpt} (every process must see the --out "
                                   "folder alike: a shared file system)")
            if done:
                log(f"resuming after {min(done, n)} of {n} instances")
        self.resumed_from, self.ran, self.first_chunk_s = done, 0, None
        bar = Progress(n, min(done, n)) if progress and self.primary else None
        t_start = time.perf_counter()
        for first, stop, res in self.chunks(self.cfg, n, done):
            res = {k: np.asarray(v) for k, v in res.items()}
            if self.first_chunk_s is None:
                self.first_chunk_s = time.perf_counter() - t_start
            if self.primary:
                io.write_npz(self.ckpt / io.chunk_name(first, stop), self.fp, res)
            parts.append(res)
            self.ran += stop - first
            if bar is not None:
                bar.update(stop - first)
        if bar is not None:
            bar.close()
        self.elapsed = time.perf_counter() - t_start
        errors = {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}
        if any(len(v) != n for v in errors.values()):  # cannot happen: the chunks are checked
            raise RuntimeError(f"internal error: {min(len(v) for v in errors.values())} rows for {n} instances")
        import jax.numpy as jnp

        stats = mc.summarize_errors({k: jnp.asarray(v) for k, v in errors.items()})
        return errors, {k: np.asarray(v) for k, v in stats.items()}


def _write_results(job: _Job, out: Path, errors: dict[str, np.ndarray], stats: dict[str, np.ndarray],
                   netcdf: bool) -> dict[str, Any]:
    """results.json (`jaxcim.studies.results`), instances.npz, optionally results.nc, and the plots."""
    times = job.study["times"]
    results = res_mod.header(job.study, job.cfg, job.fp)
    results.update({
        "timings": res_mod.timings(job.elapsed, job.ran, resumed_from=job.resumed_from, chunk_size=job.chunk_size,
                                   first_chunk_s=job.first_chunk_s),
        "metric": {"name": "relative MVM error ||y - xW|| / ||xW||", "unit": "1", "better": "lower"},
        "statistics": [{"series": "analog", "t": t, "n": job.study["instances"],
                        **{k: float(stats[k][i]) for k in res_mod.STAT_KEYS}} for i, t in enumerate(times)],
        "learned_mapping": job.mapping is not None,
        "baseline_rel_error_noise_free": job.baseline_error,
        "column_statistics": {k: stats[k].tolist() for k in stats if k.startswith("col_")},
        "files": ["results.json", "instances.npz"] + (["results.nc"] if netcdf else []),
    })
    if not job.primary:
        results["plots"] = None
        return results
    io.atomic_write_npz(out / "instances.npz", times=np.asarray(times), **errors)
    if netcdf:
        n, _, cols = errors["col_rel_error"].shape
        res_mod.write_netcdf(out / "results.nc", results, {
            "rel_error": (("instance", "time"), errors["rel_error"]),
            "col_rel_error": (("instance", "time", "column"), errors["col_rel_error"]),
        }, {"instance": np.arange(n), "time": np.asarray(times, float), "column": np.arange(cols)})
    io.atomic_write_json(out / "results.json", results)
    pngs = [plots.error_histogram(out, errors["rel_error"], times, job.baseline_error, results["crossbar"]),
            plots.error_vs_time(out, errors["rel_error"], times, job.baseline_error, results["crossbar"])]
    results["plots"] = None if None in pngs else pngs
    return results


def table(results: Mapping[str, Any]) -> str:
    """The summary table of a study's results (the mean across instances, and percentiles)."""
    lines = [f"{'time':>10} {'mean':>9} {'p5':>9} {'p50':>9} {'p95':>9}   relative MVM error ||y - xW|| / ||xW||"]
    lines.append(f"{'ideal':>10} {0.0:9.2%} {0.0:9.2%} {0.0:9.2%} {0.0:9.2%}   (float x @ w)")
    b = results["baseline_rel_error_noise_free"]
    lines.append(f"{'no noise':>10} {b:9.2%} {b:9.2%} {b:9.2%} {b:9.2%}   (converters only, noise-free devices)")
    for r in results["statistics"]:
        lines.append(f"{format_time(r['t']):>10} {r['mean']:9.2%} {r['p5']:9.2%} {r['p50']:9.2%} {r['p95']:9.2%}")
    return "\n".join(lines)


register("mvm", StudyType(MVM_DEFAULTS, run_mvm, check_mvm, table))

__all__ = ["MVM_DEFAULTS", "check_mvm", "error_stats", "fingerprint", "load_weights", "mvm_data", "run_mvm",
           "table"]
