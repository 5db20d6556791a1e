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

Instances are processed in chunks whose size comes from ``memory_budget`` (bytes of working memory per
chunk), padded to a multiple of the device count. Each chunk is one call of a jit-compiled function of
(config leaves, weights, inputs, instance indices, times) (on CPUs two: programming, then reading, which XLA's
CPU fusion runs ~1.6-1.9x faster): sweeping traced config leaves (noise scales, ADC range, wire resistance) or
times reuses one compilation. Instance indices are sharded over a
``jax.sharding.Mesh`` with one ``"instances"`` axis spanning ``jax.devices()``; on a cluster, call
``jax.distributed.initialize()`` first (``jaxcim run --distributed``) and the mesh spans every host.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcim import mapping
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
from jaxcim.core import program, read

CPU_MEMORY_BUDGET = 256 << 20
"""Working memory per chunk on CPUs, bytes (256 MiB): chunks of ~50 256x256 instances, whose programmed states
(~1 MB each) stay in the last-level cache between a chunk's two programs (programming, then reading). On the
project's 2-core Xeon (260 MiB L3), n = 4096, old and new budgets alternated: PCM 771 -> 1090 and ReRAM
629 -> 1045 instances/s (chunks of 224 -> 56); chunks of 24-96 all ran within ~10 % of each other
(benchmarks/README.md)."""

DEFAULT_MEMORY_BUDGET = 1 << 30
"""Working memory per chunk (1 GiB) on accelerators that report no memory size, and the least an accelerator
gets (`default_memory_budget`)."""

ACCELERATOR_MEMORY_FRACTION = 0.25
"""Share of each accelerator's memory (``memory_stats()["bytes_limit"]``) a chunk may use by default: leaves
room for the caller's arrays and XLA's buffers. On an 80 GB H100 (XLA's limit: 75 % of it) this gives ~15 GiB
and chunks of ~3,300 256x256 instances, where 1 GiB chunks (224 instances) ran ~10x fewer instances/s
(NeuRRAM preset, n = 65536: 27,500/s vs 363,000-381,000/s; benchmarks/README.md)."""

_CELL_ARRAYS = 5
"""Live per-cell arrays of one instance (programmed G, drift/relaxation parameters, noise words), an upper
estimate: XLA's memory analysis of a chunk of 256x256 PCM instances (CPU, jax 0.10) shows ~3.3 per cell plus
~2 per read time (``tests/test_montecarlo.py`` checks the estimate stays above it)."""
_CELL_ARRAYS_PER_TIME = 3
"""Live per-cell arrays per read time (drifted G, noisy G)."""


# ----------------------------------------------------------------------------------------- helpers


MAX_INSTANCES = 2**32 - 1
"""Most instances in one study: instance indices are uint32 (``jax.random.fold_in`` takes 32-bit data)."""


def instance_key(key: jax.Array, i) -> jax.Array:
    """The key of instance ``i`` of a study with key ``key``: ``jax.random.fold_in(key, i)``."""
    return jax.random.fold_in(key, i)


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
    tr, tc = mapping.tile_counts(m, in_features, out_features)
    cells = 2 * m.slices * tr * tc * m.rows * m.cols
    cycles = (cfg.dac.bits - (1 if cfg.dac.signed else 0)) if cfg.dac.bit_serial else 1
    currents = 4 * batch * cycles * m.slices * tr * tc * m.cols
    per_time = _CELL_ARRAYS_PER_TIME * cells + currents + batch * out_features
    return itemsize * (_CELL_ARRAYS * cells + currents + n_times * per_time)


def chunk_size_for(memory_budget: int, per_instance: int, n: int, n_devices: int = 1) -> int:
    """Instances per chunk: as many as fit ``memory_budget`` bytes, at most ``n`` (rounded up to a whole
    number per device), at least one per device, a multiple of ``n_devices``."""
    c = max(1, min(int(memory_budget // max(per_instance, 1)), n))
    c = -(-c // n_devices) * n_devices
    return max(c, n_devices)


def default_memory_budget(devices: Sequence[jax.Device] | None = None) -> int:
    """Default working memory per chunk, bytes: 256 MiB on CPUs (`CPU_MEMORY_BUDGET`); on accelerators
    `ACCELERATOR_MEMORY_FRACTION` of the smallest device's memory times the number of devices (a chunk is
    split evenly over them), at least `DEFAULT_MEMORY_BUDGET`."""
    devs = list(devices) if devices is not None else jax.devices()
    limits = []
    for d in devs:
        if d.platform == "cpu":
            return CPU_MEMORY_BUDGET
        try:
            limits.append(int((d.memory_stats() or {}).get("bytes_limit", 0)))
        except Exception:  # backends without memory statistics
            limits.append(0)
    if not limits or min(limits) <= 0:
        return DEFAULT_MEMORY_BUDGET
    return max(DEFAULT_MEMORY_BUDGET, int(ACCELERATOR_MEMORY_FRACTION * min(limits)) * len(limits))


def default_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh with axis ``"instances"`` over ``devices`` (default all devices, all hosts)."""
    devs = np.asarray(list(devices) if devices is not None else jax.devices())
    return Mesh(devs, ("instances",))


# ----------------------------------------------------------------------------------------- kernels


def _program_instance(cfg, w, x_calib, scale, learned, key):
    """The programmed state of the instance with key ``key`` (what it needs to be read; no `ProgramInfo`)."""
    k_prog, _ = jax.random.split(key)
    return program(cfg, w, key=k_prog, x_calib=x_calib, scale=scale, mapping=learned).replace(info=None)


def _read_instance(cfg, state, x, key, times):
    """(n_times, batch, out) outputs of a programmed instance read at every time."""
    _, k_read = jax.random.split(key)
    return jax.vmap(lambda t: read(cfg, state, x, key=k_read, t=t))(times)


def _state_axes(state):
    """vmap axes of a chunk's states: the target conductances are functions of (w, scale, mapping) alone and
    kept once; every other field has one entry per instance."""
    per_instance = ("g_pos", "g_neg", "time_pos", "time_neg", "coeffs", "w_scale", "adc_range", "adc_offset",
                    "adc_gain", "probe0", "out_gain", "out_offset", "adc_circuit")
    return state.replace(target_pos=None, target_neg=None, info=None, **dict.fromkeys(per_instance, 0))


def _instance_ids(start, n, size, mesh):
    idx = start + jnp.arange(size, dtype=jnp.uint32)
    idx = jnp.minimum(idx, n - 1)  # padding instances repeat the last one and are dropped by the caller
    return jax.lax.with_sharding_constraint(idx, NamedSharding(mesh, PartitionSpec("instances")))


@partial(jax.jit, static_argnames=("reduce", "mesh", "size", "zeros"))
def _chunk(cfg, w, x, x_calib, scale, learned, key, start, n, times, aux, *, reduce, mesh, size, zeros):
    """One chunk as one compiled program (accelerators): programming and reading fused."""
    cfg = with_static_zeros(cfg, zeros)  # features that are off draw no random numbers

    def one(i):
        k = instance_key(key, i)
        y = _read_instance(cfg, _program_instance(cfg, w, x_calib, scale, learned, k), x, k, times)
        return y if reduce is None else reduce(y, aux)

    return jax.vmap(one)(_instance_ids(start, n, size, mesh))


@partial(jax.jit, static_argnames=("mesh", "size", "zeros"))
def _chunk_program(cfg, w, x_calib, scale, learned, key, start, n, *, mesh, size, zeros):
    """Programmed states of a chunk's instances (first stage of `_chunk_in_stages`)."""
    cfg = with_static_zeros(cfg, zeros)
    idx = _instance_ids(start, n, size, mesh)

    def one(i):
        return _program_instance(cfg, w, x_calib, scale, learned, instance_key(key, i))

    axes = _state_axes(jax.eval_shape(one, idx[0]))
    return jax.vmap(one, out_axes=axes)(idx)


@partial(jax.jit, static_argnames=("reduce", "mesh", "size", "zeros"))
def _chunk_read(cfg, states, x, key, start, n, times, aux, *, reduce, mesh, size, zeros):
    """Outputs (or ``reduce``d outputs) of a chunk's programmed instances (second stage)."""
    cfg = with_static_zeros(cfg, zeros)

    def one(state, i):
        y = _read_instance(cfg, state, x, instance_key(key, i), times)
        return y if reduce is None else reduce(y, aux)

    return jax.vmap(one, in_axes=(_state_axes(states), 0))(states, _instance_ids(start, n, size, mesh))


def _chunk_in_stages(cfg, w, x, x_calib, scale, learned, key, start, n, times, aux, *, reduce, mesh, size, zeros):
    """`_chunk` as two compiled programs, programming then reading (CPUs).

    Same instances, same numbers (to float rounding). In the single program, XLA's CPU fusion recomputes the
    programmed conductances' random draws (hashing, the normal transform) inside each of their consumers
    (the ADC calibration, the drift-compensation probe, the read) and reads stored parts of them in transposed
    order; storing the states between two programs avoids both: PCM ~1.9x, ReRAM ~1.6x instances/s on 2 cores
    (benchmarks/README.md). Accelerators keep the single program, the one measured there (the staged form has
    not been timed on a GPU).
    """
    states = _chunk_program(cfg, w, x_calib, scale, learned, key, start, n, mesh=mesh, size=size, zeros=zeros)
    return _chunk_read(cfg, states, x, key, start, n, times, aux, reduce=reduce, mesh=mesh, size=size, zeros=zeros)


def _runs_in_stages(mesh: Mesh) -> bool:
    return all(d.platform == "cpu" for d in mesh.devices.flat)


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
    if memory_budget is not None:
        if (isinstance(memory_budget, bool) or not isinstance(memory_budget, int | float)
                or not math.isfinite(memory_budget) or memory_budget <= 0):
            raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")
    if chunk_size is not None:
        chunk_size = check_int("chunk_size", chunk_size, 1)
    if learned is not None:
        if not callable(getattr(learned, "check", None)):
            raise TypeError(f"mapping must be a jaxcim.LearnedMapping, got {type(learned).__name__}")
        learned.check(cfg, w.shape)
    return w, x, n, x_calib, scale, chunk_size


def iter_chunks(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, *, key: jax.Array, n: int, t=0.0,
    times: Sequence[float] | None = None, reduce: Callable[[jax.Array, Any], Any] | None = None, aux: Any = None,
    x_calib: jax.Array | None = None, scale: jax.Array | None = None, mapping: Any = None, start: int = 0,
    memory_budget: int | None = None, chunk_size: int | None = None, mesh: Mesh | None = None,
    keep_padding: bool = False,
) -> Iterator[tuple[int, int, Any]]:
    """Run instances ``start .. n-1`` chunk by chunk; yields ``(first, stop, result)`` per chunk.

    ``result`` holds instances ``first .. stop-1``: outputs (stop - first, n_times, batch, out), or
    ``reduce(y, aux)`` of each instance's (n_times, batch, out) outputs stacked along a leading axis.
    This is what `monte_carlo`, `monte_carlo_stats` and ``jaxcim run`` (progress, checkpoints) are built on;
    arguments as in `monte_carlo`. ``reduce`` is a static argument of the compiled chunk: define it once
    (a new lambda per call recompiles); pass arrays it needs as ``aux``. ``keep_padding=True`` yields the
    last chunk at full size too (its padding repeats instance n - 1), which avoids a device-side slice.
    """
    w, x, n, x_calib, scale, chunk_size = _validate(cfg, w, x, key, n, x_calib, scale, memory_budget, chunk_size,
                                                    mapping)
    start = check_int("start", start, 0)
    times_arr, _ = _as_times(t, times)
    if x_calib is None and cfg.adc.range_mode == "calibrated":
        x_calib = jnp.atleast_2d(x)  # as jc.simulate: calibrate the ADC on the inputs
    mesh = mesh if mesh is not None else default_mesh()
    n_dev = mesh.devices.size
    if chunk_size is None:
        if memory_budget is None:
            memory_budget = default_memory_budget(mesh.devices.flat)
        per = instance_bytes(cfg, w.shape[0], w.shape[1], x.shape[0] if x.ndim == 2 else 1, times_arr.shape[0],
                             jnp.dtype(w.dtype).itemsize)
        chunk_size = chunk_size_for(memory_budget, per, n, n_dev)
    else:
        chunk_size = -(-chunk_size // n_dev) * n_dev
    dtype = jnp.result_type(w.dtype, x.dtype)
    w, x = w.astype(dtype), x.astype(dtype)
    times_arr = times_arr.astype(dtype)
    if x_calib is not None:
        x_calib = x_calib.astype(dtype)
    # Replicate the inputs on the mesh (arrays committed to one device would clash with it); under an
    # outer jit they are tracers and the sharding constraint inside the chunk does the placement.
    zeros = static_zeros(cfg)
    rep = NamedSharding(mesh, PartitionSpec())
    w, x, x_calib, scale, mapping, key, times_arr, aux = jax.tree.map(
        lambda a: a if isinstance(a, jax.core.Tracer) or getattr(a, "sharding", None) == rep
        else jax.device_put(a, rep), (w, x, x_calib, scale, mapping, key, times_arr, aux))
    run = _chunk_in_stages if _runs_in_stages(mesh) else _chunk
    for first in range(start, n, chunk_size):
        stop = min(first + chunk_size, n)
        out = run(cfg, w, x, x_calib, scale, mapping, key,
                  jnp.uint32(first), jnp.uint32(n), times_arr, aux, reduce=reduce, mesh=mesh, size=chunk_size,
                  zeros=zeros)
        if stop - first < chunk_size and not keep_padding:
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
    on_host = all(not isinstance(a, jax.core.Tracer) and a.is_fully_addressable for a in leaves)
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
        of the devices' memory on accelerators (`default_memory_budget`).
      chunk_size: instances per chunk (overrides ``memory_budget``); rounded up to a multiple of the devices.
      mesh: a `jax.sharding.Mesh` with an ``"instances"`` axis; default all devices.

    Returns:
      (n, batch, out) outputs for a single ``t`` ((n, out) for 1-d ``x``), (n, n_times, batch, out) with
      ``times``; or the stacked ``reduce`` results, leading axis n (then n_times when ``reduce`` keeps it).
    """
    _, single = _as_times(t, times)
    parts = [out for _, _, out in iter_chunks(
        cfg, w, x, key=key, n=n, t=t, times=times, reduce=reduce, aux=aux, x_calib=x_calib, scale=scale,
        mapping=mapping, memory_budget=memory_budget, chunk_size=chunk_size, mesh=mesh, keep_padding=True)]
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


def _error_stats(y, reference):
    total, per_col = relative_errors(y, reference)
    return {"rel_error": total, "col_rel_error": per_col}


def monte_carlo_stats(
    cfg: CrossbarConfig, w: jax.Array, x: jax.Array, *, key: jax.Array, n: int, t=0.0,
    times: Sequence[float] | None = None, reference: jax.Array | None = None, **kwargs,
) -> dict[str, jax.Array]:
    """Per-instance relative errors of ``n`` instances, without keeping their outputs.

    Args:
      cfg, w, x, key, n, t, times: as in `monte_carlo` (other keyword arguments too).
      reference: exact outputs, (batch, out); default ``x @ w`` at full precision.

    Returns:
      ``{"rel_error": (n, n_times), "col_rel_error": (n, n_times, out)}`` (see `relative_errors`);
      without ``times`` the n_times axis is absent.
    """
    _, single = _as_times(t, times)
    if reference is None:
        xw = check_array("x", x, (1, 2))
        reference = jnp.matmul(jnp.atleast_2d(xw), check_array("w", w, (2,)),
                               precision=jax.lax.Precision.HIGHEST)
    reference = jnp.atleast_2d(jnp.asarray(reference))
    parts = [out for _, _, out in iter_chunks(cfg, w, x, key=key, n=n, t=t, times=times, reduce=_error_stats,
                                               aux=reference, keep_padding=True, **kwargs)]
    return _gather(parts, n, single)


PERCENTILES = (5.0, 50.0, 95.0)
"""Percentiles reported by `summarize_errors`."""


def summarize_errors(errors: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Statistics across instances of per-instance errors (from `monte_carlo_stats`).

    Args:
      errors: ``{"rel_error": (n, ...), "col_rel_error": (n, ..., out)}`` (the latter optional).

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
    "ACCELERATOR_MEMORY_FRACTION", "CPU_MEMORY_BUDGET", "DEFAULT_MEMORY_BUDGET", "chunk_size_for",
    "default_memory_budget", "default_mesh", "instance_bytes", "instance_key", "iter_chunks", "monte_carlo",
    "monte_carlo_stats", "relative_errors", "summarize", "summarize_errors",
]
