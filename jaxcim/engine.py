"""The engine that runs device instances: chunk plan, instance keys, sharding, checkpoints.

Every study of many device instances (`jaxcim.monte_carlo`, `jaxcim.monte_carlo_stats`, `jaxcim.nn.evaluate`,
the held-out evaluation of `jaxcim.optimize_mapping`) is a client of this module:

- one memory model sizes chunks (`plan_chunk_size`, from `default_memory_budget` and a per-instance byte
  estimate the client supplies);
- one place derives instance keys: instance ``i`` of a study with key ``key`` uses `instance_key` (``jax.random.
  fold_in(key, i)``), or ``keys[i]`` when the caller passes one key per instance. Its random draws depend only on
  that key, whatever the chunk size, the device count, the process count or a resume;
- one sharding path: a 1-d `jax.sharding.Mesh` with axis ``"instances"`` over every device of every process
  (`default_mesh`); inputs are replicated and instance indices sharded with `replicate` / `shard_instances`,
  which build global arrays from each process's own copy, so the same code runs in one process or in several
  (`jaxcim.distributed.initialize`); `to_host` gathers results to every process;
- one chunk store (`ChunkStore`) saves each chunk as it completes (atomic, fingerprinted ``.npz`` files,
  `jaxcim.io`) and loads the intact ones on resume;
- one chunk runner (`run_chunk`) compiles a client's `Kernel` (program an instance, then measure it) into one
  program per chunk, or two (programming, then measuring: ``stages=2``, the CPU default).

A kernel is a small hashable object (a frozen dataclass) with three methods; the engine vmaps them over a
chunk's instances and never asks which study it runs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcim import io
from jaxcim.checks import check_int
from jaxcim.distributed import check_same, is_primary

# ----------------------------------------------------------------------------------------- memory model

CPU_MEMORY_BUDGET = 256 << 20
"""Working memory per chunk on CPUs, bytes (256 MiB): chunks of ~50 256x256 instances, whose programmed states
(~1 MB each) stay in the last-level cache between a chunk's two programs (programming, then reading); on a
2-core Xeon with a 260 MiB L3, chunks of 24-96 instances all ran within ~10 % of each other
(benchmarks/README.md)."""

DEFAULT_MEMORY_BUDGET = 1 << 30
"""Working memory per chunk (1 GiB) on accelerators that report no memory size, and the least an accelerator
gets (`default_memory_budget`)."""

ACCELERATOR_MEMORY_FRACTION = 0.25
"""Share of each accelerator's memory (``memory_stats()["bytes_limit"]``) a chunk may use by default: leaves
room for the caller's arrays and XLA's buffers. On an 80 GB H100 this gives chunks of ~3,300 256x256 instances
(benchmarks/README.md)."""

MAX_INSTANCES = 2**32 - 1
"""Most instances in one study: instance indices are uint32 (``jax.random.fold_in`` takes 32-bit data)."""


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
        except Exception:  # backends without memory statistics (and other processes' devices)
            limits.append(0)
    if not limits or min(limits) <= 0:
        return DEFAULT_MEMORY_BUDGET
    return max(DEFAULT_MEMORY_BUDGET, int(ACCELERATOR_MEMORY_FRACTION * min(limits)) * len(limits))


def chunk_size_for(memory_budget: int, per_instance: int, n: int, n_devices: int = 1) -> int:
    """Instances per chunk: as many as fit ``memory_budget`` bytes, at most ``n`` (rounded up to a whole
    number per device), at least one per device, a multiple of ``n_devices``."""
    c = max(1, min(int(memory_budget // max(per_instance, 1)), n))
    c = -(-c // n_devices) * n_devices
    return max(c, n_devices)


def check_memory_budget(memory_budget: Any) -> None:
    """Raise ValueError unless ``memory_budget`` is None or a positive finite number of bytes."""
    if memory_budget is None:
        return
    if (isinstance(memory_budget, bool) or not isinstance(memory_budget, int | float | np.integer)
            or not math.isfinite(memory_budget) or memory_budget <= 0):
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget!r}")


def plan_chunk_size(n: int, per_instance: Callable[[], int] | int, *, mesh: Mesh, memory_budget: float | None = None,
                    chunk_size: int | None = None) -> int:
    """Instances per chunk of a study of ``n`` instances on ``mesh``: a multiple of the mesh's device count.

    Args:
      n: instances in the study.
      per_instance: estimated working memory of one instance, bytes (or a function computing it, called only
        when the chunk size comes from the memory budget).
      mesh: the mesh the instances are sharded over.
      memory_budget: working memory per chunk, bytes; default `default_memory_budget` of the mesh's devices.
      chunk_size: an explicit chunk size (overrides the budget), rounded up to a multiple of the devices.
    """
    n_dev = mesh.devices.size
    if chunk_size is not None:
        return -(-check_int("chunk_size", chunk_size, 1) // n_dev) * n_dev
    check_memory_budget(memory_budget)
    budget = default_memory_budget(mesh.devices.flat) if memory_budget is None else memory_budget
    per = per_instance() if callable(per_instance) else per_instance
    return chunk_size_for(budget, per, n, n_dev)


# ----------------------------------------------------------------------------------------- instance keys


def instance_key(key: jax.Array, i) -> jax.Array:
    """The key of instance ``i`` of a study with key ``key``: ``jax.random.fold_in(key, i)``."""
    return jax.random.fold_in(key, i)


def key_of(key: jax.Array, i, per_instance: bool = False) -> jax.Array:
    """The key of instance ``i``: `instance_key` of the study key ``key``, or ``key[i]`` when ``per_instance``
    (one key per instance, (n,), as `jaxcim.optimize.mvm_errors` takes them)."""
    return key[i] if per_instance else instance_key(key, i)


# ----------------------------------------------------------------------------------------- sharding

AXIS = "instances"
"""The mesh axis instances are sharded over."""


def default_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh with axis ``"instances"`` over ``devices`` (default every device of every process)."""
    devs = np.asarray(list(devices) if devices is not None else jax.devices())
    return Mesh(devs, (AXIS,))


def check_mesh(mesh: Any) -> Mesh:
    """``mesh``, or `default_mesh` for None; a clear error for anything but a 1-d ``"instances"`` mesh."""
    if mesh is None:
        return default_mesh()
    if not isinstance(mesh, Mesh) or mesh.axis_names != (AXIS,):
        raise ValueError("mesh must be a jax.sharding.Mesh with the single axis 'instances'")
    return mesh


def _spans_processes(mesh: Mesh) -> bool:
    return jax.process_count() > 1 and any(d.process_index != jax.process_index() for d in mesh.devices.flat)


def _put(a: Any, sharding: NamedSharding, multi: bool) -> Any:
    if a is None or isinstance(a, jax.core.Tracer) or getattr(a, "sharding", None) == sharding:
        return a
    if not multi:
        return jax.device_put(a, sharding)
    # Several processes: device_put cannot reach other processes' devices; each process supplies its own
    # (identical) copy of the parts its devices hold.
    host = a if jax.dtypes.issubdtype(getattr(a, "dtype", np.float32), jax.dtypes.prng_key) else np.asarray(a)
    return jax.make_array_from_callback(np.shape(host), sharding, lambda idx: host[idx])


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array of ``tree`` replicated on ``mesh`` (tracers are left to the compiled program's placement)."""
    rep = NamedSharding(mesh, PartitionSpec())
    multi = _spans_processes(mesh)
    return jax.tree.map(lambda a: _put(a, rep, multi), tree)


def shard_instances(a: Any, mesh: Mesh, axis: int = 0) -> jax.Array:
    """``a`` (the same full array in every process) split over the mesh's devices along ``axis``."""
    spec = PartitionSpec(*([None] * axis + [AXIS]))
    return _put(a, NamedSharding(mesh, spec), _spans_processes(mesh))


def instance_ids(start, n, size: int, mesh: Mesh) -> jax.Array:
    """(size,) uint32 indices ``start, start + 1, ...`` sharded over the mesh, inside a compiled chunk; indices
    past ``n - 1`` (the padding of the last chunk) repeat instance ``n - 1`` and are dropped by the caller."""
    idx = start + jnp.arange(size, dtype=jnp.uint32)
    idx = jnp.minimum(idx, n - 1)
    return jax.lax.with_sharding_constraint(idx, NamedSharding(mesh, PartitionSpec(AXIS)))


def to_host(tree: Any) -> Any:
    """Arrays of ``tree`` as numpy arrays in every process (gathered from all processes when sharded over
    several)."""
    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(one, tree)


# ----------------------------------------------------------------------------------------- chunk runner


class Kernel(Protocol):
    """What the engine runs for each instance of a chunk: a hashable object (a frozen dataclass; it is a static
    argument of the compiled chunk, so equal kernels share one compilation)."""

    def program(self, key: jax.Array, args: Any) -> Any:
        """The state of the instance with key ``key`` (everything random drawn once per instance)."""

    def measure(self, state: Any, key: jax.Array, args: Any) -> Any:
        """The instance's result (a pytree of arrays) from its state."""

    def state_axes(self, state: Any) -> Any:
        """vmap axes of a chunk's states (None: one copy shared by all instances), for ``stages=2``."""


def check_stages(stages: Any, mesh: Mesh) -> int:
    """Compiled programs per chunk: 1 (programming and measuring fused) or 2 (programming, then measuring);
    ``"auto"``: 2 on CPU meshes, 1 on accelerators.

    Two programs are faster on CPUs: in one, XLA's CPU fusion recomputes the programmed conductances' random draws
    inside each of their consumers and reads stored parts of them in transposed order; storing the states
    between two programs avoids both (PCM ~1.9x, ReRAM ~1.6x instances/s on 2 cores, benchmarks/README.md).
    Same instances, same numbers to float rounding.
    """
    if stages == "auto":
        return 2 if all(d.platform == "cpu" for d in mesh.devices.flat) else 1
    if stages not in (1, 2) or isinstance(stages, bool):
        raise ValueError(f"stages must be 1, 2 or 'auto', got {stages!r}")
    return stages


@partial(jax.jit, static_argnames=("kernel", "mesh", "size", "per_instance"))
def _fused(kernel, prog_args, meas_args, key, start, n, *, mesh, size, per_instance):
    def one(i):
        k = key_of(key, i, per_instance)
        return kernel.measure(kernel.program(k, prog_args), k, meas_args)

    return jax.vmap(one)(instance_ids(start, n, size, mesh))


@partial(jax.jit, static_argnames=("kernel", "mesh", "size", "per_instance"))
def _program_stage(kernel, prog_args, key, start, n, *, mesh, size, per_instance):
    idx = instance_ids(start, n, size, mesh)

    def one(i):
        return kernel.program(key_of(key, i, per_instance), prog_args)

    axes = kernel.state_axes(jax.eval_shape(one, idx[0]))
    return jax.vmap(one, out_axes=axes)(idx)


@partial(jax.jit, static_argnames=("kernel", "mesh", "size", "per_instance"))
def _measure_stage(kernel, states, meas_args, key, start, n, *, mesh, size, per_instance):
    def one(state, i):
        return kernel.measure(state, key_of(key, i, per_instance), meas_args)

    return jax.vmap(one, in_axes=(kernel.state_axes(states), 0))(states, instance_ids(start, n, size, mesh))


def run_chunk(kernel: Kernel, prog_args: Any, meas_args: Any, key: jax.Array, start, n, *, mesh: Mesh, size: int,
              stages: int, per_instance: bool = False) -> Any:
    """Results of instances ``start .. start + size - 1`` (indices past ``n - 1`` repeat the last instance),
    stacked along a leading axis and sharded over ``mesh``.

    Args:
      kernel: what each instance runs (`Kernel`).
      prog_args, meas_args: pytrees passed to ``kernel.program`` / ``kernel.measure`` (traced: new values reuse
        the compilation).
      key: the study key (instance i: `instance_key`), or one key per instance, (n,), with ``per_instance``.
      start, n: first instance and the study's instance count (uint32 scalars).
      mesh: the instances mesh. size: the chunk size (a multiple of the mesh's devices).
      stages: 1 or 2 compiled programs (`check_stages`).
    """
    if stages == 1:
        return _fused(kernel, prog_args, meas_args, key, start, n, mesh=mesh, size=size, per_instance=per_instance)
    states = _program_stage(kernel, prog_args, key, start, n, mesh=mesh, size=size, per_instance=per_instance)
    return _measure_stage(kernel, states, meas_args, key, start, n, mesh=mesh, size=size, per_instance=per_instance)


def chunk_peak_bytes(kernel: Kernel, prog_args: Any, meas_args: Any, key: jax.Array, *, mesh: Mesh, size: int,
                     stages: int, per_instance: bool = False) -> int:
    """XLA's working memory of one chunk on one device, bytes (what `plan_chunk_size`'s estimate must bound):
    the temporaries of the fused program, or the stored states plus the larger stage's temporaries."""
    kw = dict(mesh=mesh, size=size, per_instance=per_instance)
    start, n = jnp.uint32(0), jnp.uint32(size)
    if stages == 1:
        fused = _fused.lower(kernel, prog_args, meas_args, key, start, n, **kw).compile()
        return fused.memory_analysis().temp_size_in_bytes
    prog = _program_stage.lower(kernel, prog_args, key, start, n, **kw).compile().memory_analysis()
    states = _program_stage(kernel, prog_args, key, start, n, **kw)
    meas = _measure_stage.lower(kernel, states, meas_args, key, start, n, **kw).compile().memory_analysis()
    return prog.output_size_in_bytes + max(prog.temp_size_in_bytes, meas.temp_size_in_bytes)


def compilations() -> int:
    """Programs the chunk runner has compiled so far in this process (a sweep of traced leaves adds none)."""
    return sum(f._cache_size() for f in (_fused, _program_stage, _measure_stage))


def map_instances(kernel: Kernel, prog_args: Any, meas_args: Any, keys: jax.Array, *,
                  batch_size: int | None = None) -> Any:
    """Results of the instances with keys ``keys`` (n,), stacked, inside a traced computation (differentiable:
    the training objective of `jaxcim.optimize_mapping`): all at once (vmap), or ``batch_size`` at a time."""
    def one(k):
        return kernel.measure(kernel.program(k, prog_args), k, meas_args)

    return jax.lax.map(one, keys, batch_size=batch_size) if batch_size else jax.vmap(one)(keys)


def chunks(n: int, chunk_size: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """``(first, stop)`` of the chunks of instances ``start .. n-1``."""
    for first in range(start, n, chunk_size):
        yield first, min(first + chunk_size, n)


# ----------------------------------------------------------------------------------------- chunk store

RECORD = "chunks.json"
"""The chunk store's record of its chunk size and fingerprint."""


def recorded_chunk_size(folder: str | Path, fingerprint: str | None = None) -> int | None:
    """The chunk size recorded in a `ChunkStore` folder (``chunks.json``), or None: no record, a damaged one, or
    (``fingerprint`` given) another study's (`jaxcim.io.saved_chunk_size`)."""
    return io.saved_chunk_size(folder, fingerprint)


@dataclasses.dataclass(frozen=True)
class ChunkStore:
    """A folder of a study's chunk results, one ``chunk_FIRST_STOP.npz`` file per chunk (`jaxcim.io`).

    Every file carries the study's ``fingerprint``: files that are damaged, of another shape or of another study
    are not loaded (and are deleted, so that their chunks run again). The chunk size is recorded (``chunks.json``)
    so that a resumed study runs the same chunks, the same compiled programs: bit for bit the uninterrupted run.
    Only the primary process writes (`is_primary`).
    """

    folder: Path
    fingerprint: str

    def chunk_size(self) -> int | None:
        """The recorded chunk size, or None: no record, a damaged one, or another study's."""
        return recorded_chunk_size(self.folder, self.fingerprint)

    def open(self, chunk_size: int) -> None:
        """Create the folder and record the chunk size (primary process only)."""
        if is_primary():
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            io.atomic_write_json(Path(self.folder) / RECORD,
                                 {"chunk_size": chunk_size, "fingerprint": self.fingerprint})

    def load(self, chunk_size: int, n: int,
             expect: Mapping[str, tuple[tuple[int, ...], Any]]) -> dict[int, dict[str, np.ndarray]]:
        """The intact saved chunks of full size ``chunk_size`` (below ``n``), by first instance.

        ``expect``: ``{name: (shape, dtype kind or None)}`` of each chunk's arrays (dtype kinds as numpy's
        ``"iu"``, ``"f"``). Every other chunk file is deleted (primary process only).
        """
        saved, stale = {}, []
        shapes = {k: (s, None) for k, (s, _) in expect.items()}
        for first, stop, f in io.list_chunks(self.folder):
            if first % chunk_size or stop != first + chunk_size or first >= n or first in saved:
                stale.append(f)
                continue
            try:
                arrays = io.read_npz(f, self.fingerprint, shapes)
            except io.CheckpointError:
                stale.append(f)
                continue
            if any(kind is not None and arrays[k].dtype.kind not in kind for k, (_, kind) in expect.items()):
                stale.append(f)
                continue
            saved[first] = arrays
        if is_primary():
            io.remove_files(stale)
        check_same([len(saved), sum(saved)], f"the chunks saved in {self.folder} (every process must see it alike)")
        return saved

    def save(self, first: int, stop: int, arrays: Mapping[str, Any]) -> None:
        """Write one chunk's results atomically (primary process only)."""
        if is_primary():
            io.write_npz(Path(self.folder) / io.chunk_name(first, stop), self.fingerprint, arrays)


__all__ = [
    "ACCELERATOR_MEMORY_FRACTION", "AXIS", "CPU_MEMORY_BUDGET", "ChunkStore", "DEFAULT_MEMORY_BUDGET", "Kernel",
    "MAX_INSTANCES", "check_memory_budget", "check_mesh", "check_stages", "chunk_peak_bytes", "chunk_size_for",
    "chunks", "compilations", "default_memory_budget", "default_mesh", "instance_ids", "instance_key", "is_primary",
    "key_of", "map_instances", "plan_chunk_size", "recorded_chunk_size", "replicate", "run_chunk",
    "shard_instances", "to_host",
]
