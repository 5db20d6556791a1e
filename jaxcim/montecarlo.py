"""Monte Carlo over device instances, chunked to a memory budget and sharded over devices.

One instance is one draw of everything random in programming, time evolution and reading: instance ``i``
is ``jc.simulate(cfg, w, x, key=jax.random.fold_in(key, i), t=t)``. Its random draws depend only on
(key, i), whatever the chunk size, the number of devices the study is sharded over, or whether it was
interrupted and resumed. The arithmetic on them is the same too, but each chunk size (and each device count)
is a separate XLA program, which may order float sums differently (matrix products, tile partial sums, the
ADC calibration peak is exact): outputs can then differ in the last bit, about 1 ulp (2e-6 of the largest
output in float32). A resumed study keeps its chunk size and is bit for bit the uninterrupted one.

    ys = jc.monte_carlo(cfg, w, x, key=k, n=4096, t=0.0)      # (n, batch, out): one row per instance
    stats = jc.summarize(ys, reference=x @ w)                  # relative error mean/std/percentiles
    errs = jc.monte_carlo_stats(cfg, w, x, key=k, n=1_000_000, times=(1.0, 3600.0, 86400.0))
    stats = jc.summarize_errors(errs)                          # only per-instance statistics were kept

Several read times (``times=(...)``) program each instance once and read it at every time (a drift
study). The reads of one instance share their read-noise key (common random numbers): each time's
marginal distribution is that of an independent read, so statistics across instances at each time are
exact, and the result at time ``t`` is the same whichever other times are in the list.

Instances run on `jaxcim.engine`: chunks sized by ``memory_budget`` (bytes of working memory per chunk) and
padded to a multiple of the device count, each chunk one call of a compiled function of (config leaves,
weights, inputs, instance indices, times) (``stages=2``, the CPU default: two, programming then reading):
sweeping traced config leaves (noise scales, ADC range, wire resistance) or times reuses one compilation.
Instance indices are sharded over a ``jax.sharding.Mesh`` with one ``"instances"`` axis spanning every device;
with several processes (`jaxcim.distributed.initialize` first) the mesh spans every process, each computes its
share, and every process receives the whole result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxcim import engine
from jaxcim import mapping as mp
from jaxcim.checks import (
    check_array,
    check_cfg,
    check_inputs,
    check_int,
    check_key,
    check_product,
    check_representable,
    check_t,
    check_weights,
)
from jaxcim.config import CrossbarConfig, static_zeros, with_static_zeros
from jaxcim.core import check_mapping, program, read
from jaxcim.engine import (  # noqa: F401 - re-exported: the memory model and keys live in the engine
    ACCELERATOR_MEMORY_FRACTION,
    CPU_MEMORY_BUDGET,
    DEFAULT_MEMORY_BUDGET,
    MAX_INSTANCES,
    chunk_size_for,
    default_memory_budget,
    default_mesh,
    instance_key,
)

_CELL_ARRAYS = 5
"""Live per-cell arrays of one instance (programmed G, drift/relaxation parameters, noise words), an upper
estimate: XLA's memory analysis of a chunk of 256x256 PCM instances (CPU, jax 0.10) shows ~3.3 per cell plus
~2 per read time (``tests/test_montecarlo.py`` checks the estimate stays above it)."""
_CELL_ARRAYS_PER_TIME = 3
"""Live per-cell arrays per read time (drifted G, noisy G)."""


# ----------------------------------------------------------------------------------------- helpers


def _as_times(t, times) -> tuple[jax.Array, bool]:
    if times is None:
        check_t(t)
        return jnp.atleast_1d(jnp.asarray(t)), True
    if isinstance(times, str) or not isinstance(times, Sequence | np.ndarray | jax.Array):
        raise TypeError(f"times must be a sequence of read times in seconds, got {type(times).__name__}")
    arr = jnp.asarray(times) if not isinstance(times, jax.Array) else times
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"times must be a non-empty 1-d sequence of seconds, got shape {arr.shape}")
    check_t(arr)
    return arr, False


def instance_bytes(cfg: CrossbarConfig, in_features: int, out_features: int, batch: int, n_times: int = 1,
                   itemsize: int = 4) -> int:
    """Estimated working memory of one instance in a chunk, bytes (conductance arrays and currents).

    Args:
      cfg: the crossbar config. in_features, out_features: weight shape. batch: input vectors.
      n_times: read times per instance. itemsize: bytes per float (4 for float32).
    """
    m = cfg.mapping
    tr, tc = mp.tile_counts(m, in_features, out_features)
    cells = 2 * m.slices * tr * tc * m.rows * m.cols
    cycles = (cfg.dac.bits - (1 if cfg.dac.signed else 0)) if cfg.dac.bit_serial else 1
    currents = 4 * batch * cycles * m.slices * tr * tc * m.cols
    per_time = _CELL_ARRAYS_PER_TIME * cells + currents + batch * out_features
    return itemsize * (_CELL_ARRAYS * cells + currents + n_times * per_time)


# ----------------------------------------------------------------------------------------- kernel

_PER_INSTANCE_FIELDS = ("g_pos", "g_neg", "time_pos", "time_neg", "coeffs", "w_scale", "adc_range", "adc_offset",
                        "adc_gain", "probe0", "out_gain", "out_offset", "adc_circuit")


@dataclasses.dataclass(frozen=True)
class MVMKernel:
    """One crossbar instance for the engine (`jaxcim.engine.Kernel`): program ``w``, read ``x`` at every time.

    ``program`` takes ``(cfg, w, x_calib, scale, mapping)``, ``measure`` takes ``(cfg, x, times, aux)``; the
    instance key is split into a programming and a read key, as `jaxcim.simulate` does. ``reduce(y, aux)``
    (static) keeps a statistic of the outputs y (n_times, batch, out) instead of y; ``zeros`` are the config
    fields that are static zeros (`jaxcim.config.static_zeros`: features that are off draw no random numbers).
    """

    reduce: Callable[[jax.Array, Any], Any] | None = None
    zeros: frozenset = frozenset()

    def program(self, key, args):
        cfg, w, x_calib, scale, learned = args
        k_prog, _ = jax.random.split(key)
        cfg = with_static_zeros(cfg, self.zeros)
        return program(cfg, w, key=k_prog, x_calib=x_calib, scale=scale, mapping=learned).replace(info=None)

    def measure(self, state, key, args):
        cfg, x, times, aux = args
        _, k_read = jax.random.split(key)
        cfg = with_static_zeros(cfg, self.zeros)
        y = jax.vmap(lambda t: read(cfg, state, x, key=k_read, t=t))(times)
        return y if self.reduce is None else self.reduce(y, aux)

    def state_axes(self, state):
        """The target conductances are functions of (w, scale, mapping) alone and kept once; every other field
        has one entry per instance."""
        return state.replace(target_pos=None, target_neg=None, info=None, **dict.fromkeys(_PER_INSTANCE_FIELDS, 0))


def _validate(cfg, w, x, key, n, x_calib, scale, memory_budget, chunk_size, learned=None):
    check_cfg(cfg)
    check_key(key)
    w = check_weights("w", w)
    x = check_inputs(cfg, x, w.shape[0])
    check_product(x, w)
    check_representable(cfg, jnp.result_type(w.dtype, x.dtype))
    n = check_int("n", n, 1, MAX_INSTANCES)
    if x_calib is not None:
        x_calib = jnp.atleast_2d(check_inputs(cfg, x_calib, w.shape[0], "x_calib"))
    if scale is not None:
        scale = check_array("scale", scale, (0, 1))
    engine.check_memory_budget(memory_budget)
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, 1)
    check_mapping(learned, cfg, w.shape)
    return w, x, n, x_calib, scale, chunk_size


def iter_chunks(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, *, key: jax.Array, n: int, t=0.0,
    times: Sequence[float] | None = None, reduce: Callable[[jax.Array, Any], Any] | None = None, aux: Any = None,
    x_calib: jax.Array | None = None, scale: jax.Array | None = None, mapping: Any = None, start: int = 0,
    memory_budget: int | None = None, chunk_size: int | None = None, mesh: Mesh | None = None,
    keep_padding: bool = False, stages: int | str = "auto",
) -> Iterator[tuple[int, int, Any]]:
    """Run instances ``start .. n-1`` chunk by chunk; yields ``(first, stop, result)`` per chunk.

    ``result`` holds instances ``first .. stop-1``: outputs (stop - first, n_times, batch, out), or
    ``reduce(y, aux)`` of each instance's (n_times, batch, out) outputs stacked along a leading axis.
    This is what `monte_carlo`, `monte_carlo_stats` and ``jaxcim run`` (progress, checkpoints) are built on;
    arguments as in `monte_carlo`. ``reduce`` is a static argument of the compiled chunk: define it once
    (a new lambda per call recompiles); pass arrays it needs as ``aux``. ``keep_padding=True`` yields the
    last chunk at full size too (its padding repeats instance n - 1), which avoids a device-side slice.
    When the mesh spans several processes, every process gets each chunk's whole result as numpy arrays.
    """
    w, x, n, x_calib, scale, chunk_size = _validate(cfg, w, x, key, n, x_calib, scale, memory_budget, chunk_size,
                                                    mapping)
    start = check_int("start", start, 0)
    times_arr, _ = _as_times(t, times)
    if x_calib is None and cfg.adc.range_mode == "calibrated":
        x_calib = jnp.atleast_2d(x)  # as jc.simulate: calibrate the ADC on the inputs
    mesh = engine.check_mesh(mesh)
    stages = engine.check_stages(stages, mesh)
    size = engine.plan_chunk_size(
        n, lambda: instance_bytes(cfg, w.shape[0], w.shape[1], x.shape[0] if x.ndim == 2 else 1,
                                  times_arr.shape[0], jnp.dtype(w.dtype).itemsize),
        mesh=mesh, memory_budget=memory_budget, chunk_size=chunk_size)
    dtype = jnp.result_type(w.dtype, x.dtype)
    w, x, times_arr = w.astype(dtype), x.astype(dtype), times_arr.astype(dtype)
    if x_calib is not None:
        x_calib = x_calib.astype(dtype)
    # Replicated on the mesh (arrays committed to one device would clash with it); under an outer jit they are
    # tracers and the sharding constraint inside the chunk does the placement.
    w, x, x_calib, scale, mapping, key, times_arr, aux = engine.replicate(
        (w, x, x_calib, scale, mapping, key, times_arr, aux), mesh)
    kernel = MVMKernel(reduce=reduce, zeros=static_zeros(cfg))
    host = jax.process_count() > 1
    for first, stop in engine.chunks(n, size, start):
        out = engine.run_chunk(kernel, (cfg, w, x_calib, scale, mapping), (cfg, x, times_arr, aux), key,
                               jnp.uint32(first), jnp.uint32(n), mesh=mesh, size=size, stages=stages)
        if host:
            out = engine.to_host(out)
        if stop - first < size and not keep_padding:
            out = jax.tree.map(lambda a, k=stop - first: a[:k], out)
        yield first, stop, out


_HOST_GATHER_BYTES = 1 << 28
"""Chunk results up to this size (bytes, all chunks together) are joined on the host: device-side concatenate,
slice and squeeze compile once per new shape, ~50-100 ms each on a GPU (measured on an H100: ~0.4 s per
`monte_carlo_stats` call with a new n), which dominated studies of a few thousand instances."""


def _gather(parts: list, n: int, single: bool):
    """Join padded chunk results (leading axis: instances) into n instances; drop the time axis if single."""
    leaves = jax.tree.leaves(parts)
    nbytes = sum(a.size * a.dtype.itemsize for a in leaves)
    on_host = all(not isinstance(a, jax.core.Tracer) and (isinstance(a, np.ndarray) or a.is_fully_addressable)
                  for a in leaves)
    if on_host and nbytes <= _HOST_GATHER_BYTES:
        def join(*a):
            out = np.concatenate([np.asarray(b) for b in a], axis=0)[:n]
            return jnp.asarray(out[:, 0] if single else out)
    else:
        def join(*a):
            out = jnp.concatenate(a, axis=0)[:n]
            return out[:, 0] if single else out
    return jax.tree.map(join, *parts)


def monte_carlo(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, *, key: jax.Array, n: int, t=0.0,
    times: Sequence[float] | None = None, reduce: Callable[[jax.Array, Any], Any] | None = None, aux: Any = None,
    x_calib: jax.Array | None = None, scale: jax.Array | None = None, mapping: Any = None,
    memory_budget: int | None = None, chunk_size: int | None = None, mesh: Mesh | None = None,
    stages: int | str = "auto",
) -> Any:
    """Outputs of ``n`` device instances of the crossbar: program ``w``, read with ``x``.

    Args:
      cfg: crossbar config (e.g. ``jc.presets.get("pcm-ibm")``).
      w: weights, (in_features, out_features).
      x: inputs, (batch, in_features) or (in_features,); also the ADC calibration inputs unless ``x_calib``.
      key: the study's key; instance i uses ``jax.random.fold_in(key, i)``.
      n: number of instances.
      t: read time after programming, s (a traced argument: other values reuse the compilation).
      times: several read times, s: each instance is programmed once and read at every time.
      reduce: optional per-instance statistic ``reduce(y, aux)`` of the instance's outputs
        y (n_times, batch, out), returning a pytree of arrays: only those are kept (bounded memory for large n).
      aux: arrays passed to ``reduce`` (e.g. the reference outputs).
      x_calib, scale: as in `jaxcim.program`.
      mapping: a learned mapping (`jaxcim.LearnedMapping`, from `jaxcim.optimize_mapping` or
        `jaxcim.load_mapping`), as in `jaxcim.program`; None: the plain mapping of ``cfg.mapping``.
      memory_budget: working memory per chunk, bytes; sets the chunk size. Default: 256 MiB on CPUs, a quarter
        of the devices' memory on accelerators (`jaxcim.engine.default_memory_budget`).
      chunk_size: instances per chunk (overrides ``memory_budget``); rounded up to a multiple of the devices.
      mesh: a `jax.sharding.Mesh` with an ``"instances"`` axis; default all devices of all processes.
      stages: compiled programs per chunk: 1 (fused), 2 (programming, then reading) or ``"auto"`` (2 on CPUs,
        1 on accelerators; `jaxcim.engine.check_stages`). Same numbers to float rounding.

    Returns:
      (n, batch, out) outputs for a single ``t`` ((n, out) for 1-d ``x``), (n, n_times, batch, out) with
      ``times``; or the stacked ``reduce`` results, leading axis n (then n_times when ``reduce`` keeps it).
    """
    _, single = _as_times(t, times)
    parts = [out for _, _, out in iter_chunks(
        cfg, w, x, key=key, n=n, t=t, times=times, reduce=reduce, aux=aux, x_calib=x_calib, scale=scale,
        mapping=mapping, memory_budget=memory_budget, chunk_size=chunk_size, mesh=mesh, keep_padding=True,
        stages=stages)]
    return _gather(parts, n, reduce is None and single)


# ----------------------------------------------------------------------------------------- statistics


def relative_errors(y: jax.Array, reference: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Relative MVM error of outputs against a reference.

    Args:
      y: outputs, (..., batch, out).
      reference: the exact outputs (e.g. ``x @ w``), (batch, out).

    Returns:
      (total, per_column): ``||y - ref||_F / ||ref||_F`` over the batch and outputs, shape (...), and
      ``||y[:, j] - ref[:, j]|| / ||ref[:, j]||`` per output column, shape (..., out). Dimensionless.
    """
    d = y - reference
    total = jnp.sqrt(jnp.sum(d * d, axis=(-2, -1)) / jnp.sum(reference * reference))
    col_ref = jnp.sum(reference * reference, axis=-2)
    per_col = jnp.sqrt(jnp.sum(d * d, axis=-2) / jnp.where(col_ref > 0, col_ref, 1.0))
    return total, per_col


def error_stats(y: jax.Array, reference: jax.Array) -> dict[str, jax.Array]:
    """`relative_errors` as ``{"rel_error": total, "col_rel_error": per_column}``: the ``reduce`` of
    `monte_carlo_stats` and ``jaxcim run``."""
    total, per_col = relative_errors(y, reference)
    return {"rel_error": total, "col_rel_error": per_col}


_error_stats = error_stats  # the name jaxcim.study imports


COLUMN_MODES = ("moments", "instances")
"""What `monte_carlo_stats` keeps of the per-column errors."""


@jax.jit
def _merge_moments(acc, col, n_valid):
    """Merge one chunk's per-column errors (size, ..., out), of which the first ``n_valid`` are instances, into
    running (count, mean, m2, min, max) (Chan, Golub & LeVeque, Am. Stat. 1983: pairwise update of the mean and
    the sum of squared deviations)."""
    count, mean, m2, lo, hi = acc
    valid = (jnp.arange(col.shape[0]) < n_valid).reshape((-1,) + (1,) * (col.ndim - 1))
    nb = n_valid.astype(col.dtype)
    mean_b = jnp.sum(jnp.where(valid, col, 0), axis=0) / nb
    m2_b = jnp.sum(jnp.where(valid, (col - mean_b) ** 2, 0), axis=0)
    total = count + nb
    delta = mean_b - mean
    mean = mean + delta * (nb / total)
    m2 = m2 + m2_b + delta * delta * (count * nb / total)
    lo = jnp.minimum(lo, jnp.min(jnp.where(valid, col, jnp.inf), axis=0))
    hi = jnp.maximum(hi, jnp.max(jnp.where(valid, col, -jnp.inf), axis=0))
    return total, mean, m2, lo, hi


class _ColumnMoments:
    """Running ``col_mean``, ``col_std`` (over instances, ddof 0), ``col_min``, ``col_max`` of per-column errors
    added chunk by chunk. Each chunk is merged on one device, so the numbers do not depend on how the chunk was
    sharded (devices, processes)."""

    def __init__(self):
        self.acc = None

    def add(self, col: jax.Array, n_valid: int) -> None:
        """Merge a chunk's errors (size, ..., out), of which the first ``n_valid`` are instances."""
        if not isinstance(col, np.ndarray | jax.core.Tracer):
            col = jax.device_put(col, jax.local_devices()[0])
        if self.acc is None:
            z = jnp.zeros(col.shape[1:], col.dtype)
            self.acc = (jnp.zeros((), col.dtype), z, z, z + jnp.inf, z - jnp.inf)
        self.acc = _merge_moments(self.acc, col, jnp.int32(n_valid))

    def result(self, single: bool) -> dict[str, jax.Array]:
        count, mean, m2, lo, hi = self.acc
        out = {"col_mean": mean, "col_std": jnp.sqrt(m2 / count), "col_min": lo, "col_max": hi}
        return {k: v[0] if single else v for k, v in out.items()}


def monte_carlo_stats(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, *, key: jax.Array, n: int, t=0.0,
    times: Sequence[float] | None = None, reference: jax.Array | None = None, columns: str = "moments", **kwargs,
) -> dict[str, jax.Array]:
    """Per-instance relative errors of ``n`` instances, without keeping their outputs.

    Memory: the per-instance total errors (n, n_times) are kept; the per-column errors are reduced chunk by chunk
    to their moments over instances (``columns="moments"``), unless ``columns="instances"`` asks for all of
    them ((n, n_times, out): 3 GB for a million instances of 256 columns at 3 times).

    Args:
      cfg, w, x, key, n, t, times: as in `monte_carlo` (other keyword arguments too).
      reference: exact outputs, (batch, out); default ``x @ w`` at full precision.
      columns: ``"moments"`` or ``"instances"`` (see Returns).

    Returns:
      ``{"rel_error": (n, n_times)}`` (see `relative_errors`) and, with ``columns="moments"``, ``col_mean``,
      ``col_std``, ``col_min``, ``col_max`` over instances, each (n_times, out); with ``columns="instances"``,
      ``col_rel_error`` (n, n_times, out). Without ``times`` the n_times axes are absent. The same instances give
      the same ``rel_error`` either way.
    """
    _, single = _as_times(t, times)
    if columns not in COLUMN_MODES:
        raise ValueError(f"columns must be one of {COLUMN_MODES}, got {columns!r}")
    if reference is None:
        xw = check_array("x", x, (1, 2))
        reference = jnp.matmul(jnp.atleast_2d(xw), check_array("w", w, (2,)),
                               precision=jax.lax.Precision.HIGHEST)
    reference = jnp.atleast_2d(jnp.asarray(reference))
    parts, moments = [], _ColumnMoments()
    for first, stop, out in iter_chunks(cfg, w, x, key=key, n=n, t=t, times=times, reduce=error_stats,
                                        aux=reference, keep_padding=True, **kwargs):
        if columns == "instances":
            parts.append(out)
        else:  # only this chunk's column errors are alive
            parts.append({"rel_error": out["rel_error"]})
            moments.add(out["col_rel_error"], stop - first)
    stats = _gather(parts, n, single)
    return stats if columns == "instances" else {**stats, **moments.result(single)}


PERCENTILES = (5.0, 50.0, 95.0)
"""Percentiles reported by `summarize_errors`."""


def summarize_errors(errors: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Statistics across instances of per-instance errors (from `monte_carlo_stats`).

    Args:
      errors: ``{"rel_error": (n, ...), "col_rel_error": (n, ..., out)}`` (the latter optional), or the
        column moments of `monte_carlo_stats` (``col_mean``, ``col_std``, ``col_min``, ``col_max``; passed on).

    Returns:
      ``mean``, ``std``, ``min``, ``max``, ``p5``, ``p50``, ``p95`` of the relative error over instances,
      each of shape (...) (e.g. (n_times,)), and the same per column as ``col_mean``, ``col_std``,
      ``col_p5``, ``col_p50``, ``col_p95``, shape (..., out); ``n`` the instance count.
    """
    e = errors["rel_error"]
    out = {"n": e.shape[0], "mean": jnp.mean(e, 0), "std": jnp.std(e, 0), "min": jnp.min(e, 0),
           "max": jnp.max(e, 0)}
    for p, v in zip(PERCENTILES, jnp.percentile(e, jnp.asarray(PERCENTILES), axis=0), strict=True):
        out[f"p{p:g}"] = v
    if "col_rel_error" in errors:
        c = errors["col_rel_error"]
        out["col_mean"], out["col_std"] = jnp.mean(c, 0), jnp.std(c, 0)
        for p, v in zip(PERCENTILES, jnp.percentile(c, jnp.asarray(PERCENTILES), axis=0), strict=True):
            out[f"col_p{p:g}"] = v
    else:  # moments reduced chunk by chunk (monte_carlo_stats' default): passed on
        out.update({k: errors[k] for k in ("col_mean", "col_std", "col_min", "col_max") if k in errors})
    return out


def summarize(ys: jax.Array, reference: jax.Array) -> dict[str, jax.Array]:
    """Relative-error statistics of Monte Carlo outputs.

    Args:
      ys: outputs from `monte_carlo`, (n, batch, out) or (n, n_times, batch, out).
      reference: exact outputs, (batch, out), e.g. ``x @ w``.

    Returns:
      see `summarize_errors`.
    """
    ys = jnp.asarray(ys)
    reference = jnp.atleast_2d(jnp.asarray(reference))
    if ys.ndim not in (3, 4) or ys.shape[-2:] != reference.shape:
        raise ValueError(f"ys must be (n, [n_times,] batch, out) with (batch, out) = reference.shape "
                         f"{reference.shape}, got {ys.shape}")
    total, per_col = relative_errors(ys, reference)
    return summarize_errors({"rel_error": total, "col_rel_error": per_col})


__all__ = [
    "ACCELERATOR_MEMORY_FRACTION", "COLUMN_MODES", "CPU_MEMORY_BUDGET", "DEFAULT_MEMORY_BUDGET", "MVMKernel",
    "chunk_size_for", "default_memory_budget", "default_mesh", "error_stats", "instance_bytes", "instance_key",
    "iter_chunks", "monte_carlo", "monte_carlo_stats", "relative_errors", "summarize", "summarize_errors",
]
