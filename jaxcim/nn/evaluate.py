"""Classification accuracy of an analog model over many chip instances and read times.

    res = jc.nn.evaluate(model, jc.presets.get("pcm-ibm"), (x_test, y_test), key=jax.random.key(0),
                         n_instances=1024, times=(1.0, 3600.0, 86400.0, 3.15e7))
    res.accuracies          # (n_instances, n_times): one row per chip
    print(res.table())      # mean, std, percentiles per time

Instance ``i`` is the chip with key ``jax.random.fold_in(key, i)``: every analog layer is programmed once
(`jaxcim.nn.program`, ADC ranges calibrated on ``x_calib``), then the whole evaluation set is read at every
time. Each read of a layer at time t is one read event (one read-noise draw shared by all inputs, as in
aihwkit's inference noise model); reads at different times share the read-noise key (common random
numbers), so the result at time t does not depend on the other times in the list. Results depend only on
(key, i): not on the chunk size, the evaluation batch size or the number of devices.

Instances are vmapped in chunks sized by a memory budget, chunks run one after the other under
``jax.lax.map`` inside one compiled function, and the instance axis is sharded over a 1-d device mesh
(axis ``"instances"``, all local devices by default) with ``jax.shard_map``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxcim import mapping
from jaxcim.montecarlo import default_memory_budget
from jaxcim.nn.convert import analogize
from jaxcim.nn.layers import SHAPE_LOG, _layers_or_raise, program, set_mode, set_time

_CELL_ARRAYS = 16
"""Live per-cell float arrays of one programmed layer (G+/G-, targets, drift parameters, noisy copies while
reading), an upper estimate from the data path in `jaxcim.core`."""
_CURRENT_ARRAYS = 4
"""Live per-column-current arrays per read (currents, ADC codes, their gradients-free copies)."""


@dataclasses.dataclass(frozen=True)
class AccuracyResult:
    """Accuracy of every chip instance at every read time.

    Attributes:
      accuracies: fraction of correctly classified examples, (n_instances, n_times).
      times: read times after programming, s, (n_times,).
      n_examples: examples in the evaluation set.
      digital_accuracy: accuracy of the same weights computed digitally (float), the reference.
    """

    accuracies: np.ndarray
    times: np.ndarray
    n_examples: int
    digital_accuracy: float

    @property
    def n_instances(self) -> int:
        return int(self.accuracies.shape[0])

    def mean(self) -> np.ndarray:
        """Mean accuracy over instances, (n_times,)."""
        return self.accuracies.mean(axis=0)

    def std(self) -> np.ndarray:
        """Standard deviation of the accuracy across instances (chip-to-chip spread), (n_times,)."""
        return self.accuracies.std(axis=0, ddof=1) if self.n_instances > 1 else np.zeros(len(self.times))

    def quantile(self, q: float | Sequence[float]) -> np.ndarray:
        """Accuracy quantiles over instances, (n_times,) or (len(q), n_times)."""
        return np.quantile(self.accuracies, q, axis=0)

    def stderr(self) -> np.ndarray:
        """Standard error of `mean` (n_times,): the larger of the Monte Carlo error std / sqrt(n_instances)
        and the binomial error sqrt(p (1 - p) / (n_examples * n_instances))."""
        p = self.mean()
        binomial = np.sqrt(p * (1 - p) / (self.n_examples * self.n_instances))
        return np.maximum(self.std() / math.sqrt(self.n_instances), binomial)

    def summary(self) -> list[dict[str, float]]:
        """One dict per time: t_s, mean, std, stderr, min, p5, median, p95, max (accuracies as fractions)."""
        q = self.quantile([0.0, 0.05, 0.5, 0.95, 1.0])
        mean, std, se = self.mean(), self.std(), self.stderr()
        return [dict(t_s=float(t), mean=float(mean[j]), std=float(std[j]), stderr=float(se[j]),
                     min=float(q[0, j]), p5=float(q[1, j]), median=float(q[2, j]), p95=float(q[3, j]),
                     max=float(q[4, j])) for j, t in enumerate(self.times)]

    def table(self) -> str:
        """The summary as a text table (accuracies in %)."""
        head = f"{'time':>10} {'mean %':>8} {'std':>6} {'p5':>6} {'median':>7} {'p95':>6} {'min':>6}"
        rows = [head]
        for s in self.summary():
            rows.append(f"{format_time(s['t_s']):>10} {100 * s['mean']:8.2f} {100 * s['std']:6.2f} "
                        f"{100 * s['p5']:6.2f} {100 * s['median']:7.2f} {100 * s['p95']:6.2f} "
                        f"{100 * s['min']:6.2f}")
        rows.append(f"({self.n_instances} chip instances, {self.n_examples} examples; digital "
                    f"{100 * self.digital_accuracy:.2f} %)")
        return "\n".join(rows)


def format_time(t: float) -> str:
    """Seconds as a short human unit: 1 s, 1 h, 1 d, 1 y."""
    for unit, sec in (("y", 365.25 * 86400), ("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if t >= sec:
            return f"{t / sec:.3g} {unit}"
    return f"{t:.3g} s"


# ----------------------------------------------------------------------------------------- checks


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")
    return int(value)


def _check_data(data: Any) -> tuple[jax.Array, jax.Array]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise TypeError("data must be a pair (x, labels): inputs (n, ...) and integer class labels (n,)")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"data inputs must be numeric, got dtype {x.dtype}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"data labels must be integer class indices, got dtype {y.dtype}")
    if y.ndim != 1 or x.ndim < 2 or x.shape[0] != y.shape[0] or y.shape[0] == 0:
        raise ValueError(f"data must be inputs (n, ...) and labels (n,) with n >= 1; got shapes {x.shape}, {y.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("data inputs contain NaN or inf values")
    return jnp.asarray(x, jnp.result_type(float)), jnp.asarray(y, jnp.int32)


def _check_calib(x_calib: Any, feature_shape: tuple[int, ...]) -> jax.Array:
    xc = np.asarray(x_calib)
    if not np.issubdtype(xc.dtype, np.floating) and not np.issubdtype(xc.dtype, np.integer):
        raise TypeError(f"x_calib must be numeric, got dtype {xc.dtype}")
    if xc.ndim < 2 or xc.shape[1:] != feature_shape or xc.shape[0] == 0:
        raise ValueError(f"x_calib must be (n, {', '.join(map(str, feature_shape))}) like the data inputs, "
                         f"got shape {xc.shape}")
    if not np.all(np.isfinite(xc)):
        raise ValueError("x_calib contains NaN or inf values")
    return jnp.asarray(xc, jnp.result_type(float))


def _check_times(times: Any) -> jax.Array:
    if isinstance(times, str) or not isinstance(times, Sequence | np.ndarray | jax.Array | float | int):
        raise TypeError(f"times must be a sequence of read times in seconds, got {type(times).__name__}")
    arr = np.atleast_1d(np.asarray(times, dtype=float))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"times must be a non-empty 1-d sequence of finite seconds >= 0, got {times!r}")
    return jnp.asarray(arr, jnp.float32)


# ----------------------------------------------------------------------------------------- sizing


def instance_bytes(model: Any, x: jax.Array, n_times: int = 1) -> int:
    """Estimated working memory of one chip instance reading the batch ``x``, bytes.

    The analog layers record their matrix shapes while the model is traced (``jax.eval_shape``, nothing
    runs); each layer counts its programmed cells and the column currents of one read.
    """
    log: list = []
    token = SHAPE_LOG.set(log)
    try:
        view = nnx.view(model, analog_mode="digital", raise_if_not_found=False)
        jax.eval_shape(lambda xx: view(xx), x)
    finally:
        SHAPE_LOG.reset(token)
    total = 0
    for cfg, n_rows, n_in, n_out in log:
        m = cfg.mapping
        tr, tc = mapping.tile_counts(m, n_in, n_out)
        cells = m.slices * tr * tc * m.rows * m.cols
        cycles = (cfg.dac.bits - (1 if cfg.dac.signed else 0)) if cfg.dac.bit_serial else 1
        currents = n_rows * cycles * m.slices * tr * tc * m.cols
        total += _CELL_ARRAYS * cells + _CURRENT_ARRAYS * currents + 2 * n_rows * (n_in + n_out)
    return 4 * total * (1 + (n_times > 1))


def default_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-d mesh with axis ``"instances"`` over ``devices`` (default: all local devices)."""
    return Mesh(np.asarray(list(devices) if devices is not None else jax.local_devices()), ("instances",))


# ----------------------------------------------------------------------------------------- kernels


def _batches(x: jax.Array, y: jax.Array, batch: int):
    """(n, ...) -> (n_batches, batch, ...) padded, with a validity mask."""
    n = x.shape[0]
    nb = -(-n // batch)
    pad = nb * batch - n
    xb = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1)).reshape((nb, batch) + x.shape[1:])
    yb = jnp.pad(y, (0, pad)).reshape(nb, batch)
    valid = (jnp.arange(nb * batch) < n).reshape(nb, batch)
    return xb, yb, valid


def _instance_accuracy(graphdef, state, x_calib, xb, yb, valid, times, key):
    """(n_times,) correctly classified counts of one chip instance: programmed once, read at every time."""
    model = nnx.merge(graphdef, state, copy=True)
    program(model, x_calib, key=key)
    g_prog, s_prog = nnx.split(model)

    def at(t):
        m = nnx.merge(g_prog, s_prog, copy=True)
        set_time(m, t)

        def count(args):
            xx, yy, vv = args
            return jnp.sum((jnp.argmax(m(xx), axis=-1) == yy) & vv)

        return jnp.sum(jax.lax.map(count, (xb, yb, valid)))

    return jax.lax.map(at, times)


_INSTANCES = PartitionSpec(None, "instances")


@functools.partial(jax.jit, static_argnums=(0, 1))
def _run(graphdef, mesh, state, x_calib, xb, yb, valid, times, key, idx):
    """Correct counts (n_chunks, chunk, n_times) of the instances ``idx`` (n_chunks, chunk), sharded over ``mesh``.

    Compiled once per model structure, config, mesh and shapes (the weights and the key are traced)."""

    def local(state, x_calib, xb, yb, valid, times, key, idx):
        def one(i):
            return _instance_accuracy(graphdef, state, x_calib, xb, yb, valid, times, jax.random.fold_in(key, i))

        return jax.lax.map(jax.vmap(one), idx)

    rep = PartitionSpec()
    return jax.shard_map(local, mesh=mesh, in_specs=(rep,) * 7 + (_INSTANCES,), out_specs=_INSTANCES,
                         check_vma=False)(state, x_calib, xb, yb, valid, times, key, idx)


def evaluate(
    model: Any, cfg: Any, data: tuple[Any, Any], *, key: jax.Array, n_instances: int = 256,
    times: Sequence[float] = (1.0,), x_calib: Any = None, batch_size: int | None = None,
    chunk_size: int | None = None, memory_budget: int | None = None, mesh: Mesh | None = None,
    progress: bool = False, checkpoint: str | Path | None = None, fingerprint: str | None = None,
) -> AccuracyResult:
    """Accuracy of ``model`` on ``data`` for ``n_instances`` chip instances at every time in ``times``.

    Args:
      model: a trained nnx classifier (logits as the last axis). Its ``nnx.Linear``/``nnx.Conv`` and analog
        layers are mapped as ``cfg`` says; the model itself is not modified.
      cfg: a `CrossbarConfig`, a dict ``{layer path: cfg or None}`` or a callable, as `jaxcim.nn.analogize`;
        None keeps the model's analog layers as they are (their own configs).
      data: (inputs (n, ...), integer labels (n,)).
      key: the study's key; instance ``i`` is the chip ``jax.random.fold_in(key, i)``.
      n_instances: chip instances.
      times: read times after programming, s.
      x_calib: inputs the ADC ranges are calibrated on when a chip is programmed; default the first 128
        inputs of ``data``.
      batch_size: evaluation examples per read call (bounds memory; does not change results: every batch
        sees the same read-noise draw); default all.
      chunk_size: instances per vmapped chunk (rounded up to a multiple of the device count); default from
        ``memory_budget``.
      memory_budget: working memory per chunk, bytes; default 256 MiB on CPUs, a quarter of the devices' memory
        on accelerators (`jaxcim.montecarlo.default_memory_budget`).
      mesh: 1-d mesh with axis ``"instances"`` to shard instances over; default all local devices.
      progress: show progress over chunks: a tqdm bar on a terminal, plain lines otherwise (runs one compiled
        call per chunk).
      checkpoint: a folder to save every chunk's results in as it completes (atomic writes) and to resume from:
        chunks already saved there are loaded, not run again, and the chunk size is the saved one. Results are
        the same as an uninterrupted run. Every chunk file carries ``fingerprint``; files that are damaged,
        of another shape or of another fingerprint are computed again (and replaced). Runs one compiled call per
        chunk.
      fingerprint: what the checkpoint's chunks must belong to (``jaxcim run``: a hash of the study); default
        a hash of the analog model (structure, weights, configs), the data, ``x_calib``, the times and the key.

    Returns:
      An `AccuracyResult` with ``accuracies`` (n_instances, n_times).
    """
    core_key_check(key)
    x, y = _check_data(data)
    n_instances = _check_int("n_instances", n_instances, 1)
    times_arr = _check_times(times)
    if memory_budget is not None:
        memory_budget = _check_int("memory_budget", memory_budget, 1)
    batch = x.shape[0] if batch_size is None else min(_check_int("batch_size", batch_size, 1), x.shape[0])
    xc = x[:128] if x_calib is None else _check_calib(x_calib, x.shape[1:])
    mesh = default_mesh() if mesh is None else mesh
    if not isinstance(mesh, Mesh) or mesh.axis_names != ("instances",):
        raise ValueError("mesh must be a jax.sharding.Mesh with the single axis 'instances'")
    n_dev = mesh.size

    analog = analogize(model, cfg, mode="analog") if cfg is not None else nnx.clone(model)
    _layers_or_raise(analog, "evaluate")
    analog.eval()  # dropout off, batch norm on running averages
    digital = set_mode(nnx.clone(analog), "digital")
    digital_acc = float(jnp.mean(jnp.argmax(digital(x), axis=-1) == y))

    folder = None if checkpoint is None else Path(checkpoint)
    if folder is not None and fingerprint is None:
        fingerprint = _fingerprint(analog, x, y, xc, times_arr, key)
    saved_chunk = _saved_chunk_size(folder, fingerprint)
    if saved_chunk is not None:
        if chunk_size is not None and -(-chunk_size // n_dev) * n_dev != saved_chunk:
            raise ValueError(f"chunk_size {chunk_size} differs from the checkpoint's ({saved_chunk}) in {folder}")
        chunk_size = saved_chunk
    if chunk_size is None:
        if memory_budget is None:
            memory_budget = default_memory_budget(mesh.devices.flat)
        per = instance_bytes(analog, x[:batch], len(times_arr))
        chunk_size = max(1, min(memory_budget // max(per, 1), n_instances))
    chunk = -(-_check_int("chunk_size", chunk_size, 1) // n_dev) * n_dev
    n_chunks = -(-n_instances // chunk)
    idx = jnp.arange(n_chunks * chunk, dtype=jnp.uint32).reshape(n_chunks, chunk)

    graphdef, state = nnx.split(analog)
    xb, yb, valid = _batches(x, y, batch)
    idx = jax.device_put(idx, NamedSharding(mesh, _INSTANCES))
    args = (state, xc, xb, yb, valid, times_arr, key)
    if progress or folder is not None:
        from jaxcim import io
        from jaxcim.study import Progress  # tqdm on a terminal

        saved = {}
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            io.atomic_write_json(folder / "chunks.json", {"chunk_size": chunk, "fingerprint": fingerprint})
            saved = _saved_chunks(folder, chunk, n_chunks, len(times_arr), fingerprint)
        done = sum(min(chunk, n_instances - c * chunk) for c in saved)
        bar, parts = Progress(n_instances, done, desc="chips") if progress else None, []
        for c in range(n_chunks):
            if c in saved:
                parts.append(saved[c])
                continue
            parts.append(np.asarray(_run(graphdef, mesh, *args, idx[c:c + 1])))
            if folder is not None:
                io.write_npz(folder / io.chunk_name(c * chunk, (c + 1) * chunk), fingerprint, {"correct": parts[-1]})
            if bar is not None:
                bar.update(min(chunk, n_instances - c * chunk))
        if bar is not None:
            bar.close()
        acc = np.concatenate(parts, axis=0)
    else:
        acc = np.asarray(_run(graphdef, mesh, *args, idx))
    acc = acc.reshape(n_chunks * chunk, len(times_arr))[:n_instances] / x.shape[0]
    return AccuracyResult(accuracies=acc, times=np.asarray(times_arr, dtype=float), n_examples=int(x.shape[0]),
                          digital_accuracy=digital_acc)


def _saved_chunk_size(folder: Path | None, fingerprint: str | None = None) -> int | None:
    """The chunk size recorded in a checkpoint folder of `evaluate` (``chunks.json``), or None: no folder, no
    record, a damaged record, or (``fingerprint`` given) the record of another evaluation."""
    if folder is None or not (folder / "chunks.json").is_file():
        return None
    try:
        record = json.loads((folder / "chunks.json").read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    size = record.get("chunk_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        return None
    if fingerprint is not None and record.get("fingerprint") != fingerprint:
        return None
    return size


def _saved_chunks(folder: Path, chunk: int, n_chunks: int, n_times: int, fingerprint: str) -> dict[int, np.ndarray]:
    """Correct counts (1, chunk, n_times) of the valid chunks saved in ``folder``, by chunk index (< n_chunks).

    Chunk files that are damaged, of another size or shape, or of another ``fingerprint`` are deleted: those
    chunks run again."""
    from jaxcim import io

    saved, stale = {}, []
    for first, stop, f in io.list_chunks(folder):
        c = first // chunk
        if first % chunk or stop != first + chunk or c >= n_chunks or c in saved:
            stale.append(f)
            continue
        try:
            part = io.read_npz(f, fingerprint, {"correct": ((1, chunk, n_times), None)})["correct"]
        except io.CheckpointError:
            stale.append(f)
            continue
        if part.dtype.kind not in "iu":
            stale.append(f)
            continue
        saved[c] = part
    io.remove_files(stale)
    return saved


def _fingerprint(model: Any, x: jax.Array, y: jax.Array, x_calib: jax.Array, times: jax.Array,
                 key: jax.Array) -> str:
    """Hash of what an evaluation's per-chip results depend on (not the instance count or the chunk size)."""
    graphdef, state = nnx.split(model)
    h = hashlib.sha256(repr(graphdef).encode())
    h.update(str(jax.tree.structure(state)).encode())
    for a in (*jax.tree.leaves(state), x, y, x_calib, times, key):
        if hasattr(a, "dtype") and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a = jax.random.key_data(a)
        a = np.asarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def core_key_check(key: Any) -> None:
    if key is None:
        raise TypeError("key is required: a jax.random.key(seed) for the study (instance i uses fold_in(key, i))")
    if not isinstance(key, jax.Array):
        raise TypeError(f"key must be a jax.random.key, got {type(key).__name__}")


def accuracy(model: Any, data: tuple[Any, Any]) -> float:
    """Fraction of ``data`` (inputs, labels) that ``model`` classifies correctly (argmax of the logits)."""
    x, y = _check_data(data)
    return float(jnp.mean(jnp.argmax(model(x), axis=-1) == y))


__all__ = ["AccuracyResult", "accuracy", "default_mesh", "evaluate", "instance_bytes"]
