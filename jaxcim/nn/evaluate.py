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

Instances run on `jaxcim.engine`: vmapped in chunks sized by a memory budget, chunks one after the other under
``jax.lax.map`` inside one compiled function (or one call per chunk with progress or a checkpoint), the instance
axis sharded over a 1-d device mesh (axis ``"instances"``, every device of every process by default) with
``jax.shard_map``.

Memory follows the budget, not the model (`plan_evaluation`): when one programmed chip does not fit (a real-size
network: ResNet-18 fills ~200 arrays of 256x256), its layers are streamed. Each evaluation batch goes through the
chip once, stacked with the calibration inputs and repeated for every read time (`jaxcim.nn.layers.Segments`):
each layer is programmed, calibrated on its calibration rows and read at every time before the next layer is
programmed, so only one layer's conductances live at a time; the evaluation batch and the chips per chunk are the
largest that fit. A chip is programmed again for every batch, with the same draws: the same chip.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, PartitionSpec

from jaxcim import engine, mapping
from jaxcim.checks import check_int
from jaxcim.nn.convert import analogize
from jaxcim.nn.layers import (
    SEGMENTS,
    SHAPE_LOG,
    Segments,
    analog_layers_or_raise,
    program,
    set_instance,
    set_mode,
    set_time,
)
from jaxcim.progress import Progress, format_time

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


# ----------------------------------------------------------------------------------------- checks


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


def _layer_log(model: Any, x: jax.Array, concrete: bool = False) -> list:
    """(cfg, input rows, in, out, inputs) of every analog matrix product of the digital view of ``model`` on
    ``x``: traced only (``jax.eval_shape``, nothing runs), or with the inputs computed (``concrete``)."""
    log: list = []
    view = nnx.view(model, analog_mode="digital", raise_if_not_found=False)

    def inputs(xx):
        token = SHAPE_LOG.set(log)
        try:
            view(xx)
        finally:
            SHAPE_LOG.reset(token)
        return [entry[4] for entry in log]

    if not concrete:
        jax.eval_shape(inputs, x)
        return log
    values = jax.jit(inputs)(x)
    return [entry[:4] + (v,) for entry, v in zip(log, values, strict=True)]


def _layer_bytes(cfg: Any, n_rows: int, n_in: int, n_out: int) -> tuple[int, int]:
    """(programmed-cell bytes, read bytes) of one analog layer reading ``n_rows`` input rows."""
    m = cfg.mapping
    tr, tc = mapping.tile_counts(m, n_in, n_out)
    cells = m.slices * tr * tc * m.rows * m.cols
    cycles = (cfg.dac.bits - (1 if cfg.dac.signed else 0)) if cfg.dac.bit_serial else 1
    currents = n_rows * cycles * m.slices * tr * tc * m.cols
    return 4 * _CELL_ARRAYS * cells, 4 * (_CURRENT_ARRAYS * currents + 2 * n_rows * (n_in + n_out))


def instance_bytes(model: Any, x: jax.Array, n_times: int = 1) -> int:
    """Estimated working memory of one chip instance reading the batch ``x`` with every layer programmed and
    held (``streamed=False`` in `plan_evaluation`), bytes.

    The analog layers record their matrix shapes while the model is traced (``jax.eval_shape``, nothing
    runs); each layer counts its programmed cells and the column currents of one read.
    """
    total = sum(sum(_layer_bytes(cfg, n_rows, n_in, n_out)) for cfg, n_rows, n_in, n_out, _ in _layer_log(model, x))
    return total * (1 + (n_times > 1))


def _streamed_parts(model: Any, x: jax.Array) -> list[tuple[int, int]]:
    """(programmed-cell bytes, read bytes per stacked example) of every analog layer of ``model``."""
    one = jax.ShapeDtypeStruct((1,) + x.shape[1:], x.dtype)
    return [_layer_bytes(cfg, n_rows, n_in, n_out) for cfg, n_rows, n_in, n_out, _ in _layer_log(model, one)]


def _streamed_cost(parts: list[tuple[int, int]], examples: int) -> int:
    """Estimated working memory of one chip in a streamed call on ``examples`` stacked examples, bytes: the
    two largest layers' programmed cells (XLA may program the next layer, whose draws do not depend on the
    activations, while one is read), the largest reads, plus one more set of the largest layer inputs and
    outputs (activations the graph still holds, e.g. a residual branch). Read bytes grow with the examples.

    On ResNet-18 (batch 8, 256x256 arrays) this gives 333 MiB where XLA's compiled chunk reports 306 MiB of
    temporaries (benchmarks/README.md)."""
    cells = sorted((c for c, _ in parts), reverse=True)
    reads = max(r for _, r in parts) * examples
    return sum(cells[:2]) + 2 * reads


def check_example_major(model: Any, x: jax.Array) -> None:
    """ValueError unless every analog layer's input rows are example-major (``rows = examples * rows per
    example``, one example's rows together), what a streamed call needs: the digital view on ``x`` (>= 2
    examples) and on its first half must give the same leading rows to every analog layer."""
    if x.shape[0] < 2:
        return
    full = _layer_log(model, x, concrete=True)
    half = _layer_log(model, x[: x.shape[0] // 2], concrete=True)
    for j, (a, b) in enumerate(zip(full, half, strict=True)):
        ua, ub = np.asarray(a[4]), np.asarray(b[4])
        if ua.shape[0] % x.shape[0] or not np.allclose(ua[: ub.shape[0]], ub, rtol=1e-4, atol=1e-6):
            raise ValueError(f"analog layer {j} (in graph order) does not take its input rows example by example "
                             "(e.g. a time-major sequence): evaluate it without layer streaming, with a "
                             "memory_budget that holds a whole programmed chip")


@dataclasses.dataclass(frozen=True)
class EvaluationPlan:
    """How `evaluate` runs its chips within the memory budget (`plan_evaluation`).

    Attributes:
      streamed: False: every layer of a chip is programmed, then the data is read batch by batch with all
        layers held. True (a whole programmed chip does not fit the budget): layers are streamed, each
        programmed, calibrated and read at every time before the next (`jaxcim.nn.layers.Segments`), for each
        evaluation batch (a chip is programmed again for every batch: the same draws, so the same chip).
      chunk_size: chip instances per vmapped chunk (a multiple of the device count).
      batch_size: evaluation examples per read.
      instance_bytes: estimated working memory of one chip instance, bytes.
      memory_budget: the budget, bytes. The default one, when a streamed chip of the model does not fit it, is
        raised to half a held chip or, when more, the least a streamed chip needs; under it a chip is streamed
        only when that at least halves its memory, else one held chip per chunk, above the budget.
    """

    streamed: bool
    chunk_size: int
    batch_size: int
    instance_bytes: int
    memory_budget: int

    @property
    def chunk_bytes(self) -> int:
        """Estimated working memory of one chunk on one device, bytes."""
        return self.instance_bytes * self.chunk_size


def _streamed_batch(parts: list[tuple[int, int]], n: int, n_calib: int, n_times: int, budget: int) -> int:
    """The largest evaluation batch (<= n, >= 1) whose streamed chip fits ``budget``."""
    lo, hi = 1, n
    if _streamed_cost(parts, n_calib + n_times * hi) <= budget:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if _streamed_cost(parts, n_calib + n_times * mid) <= budget else (lo, mid)
    return lo


default_mesh = engine.default_mesh


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


def _instance_accuracy_streamed(graphdef, state, x_calib, xb, yb, valid, times, key):
    """(n_times,) correctly classified counts of one chip instance, layers streamed: for every batch, one call
    on the calibration inputs stacked with the batch once per time (`jaxcim.nn.layers.Segments`) programs each
    layer, calibrates it and reads it at every time before the next layer is programmed."""
    n_calib, batch, n_times = x_calib.shape[0], xb.shape[1], times.shape[0]
    segments = Segments(n_calib=n_calib, n_block=batch, times=times)

    def count(args):
        xx, yy, vv = args
        model = set_instance(nnx.merge(graphdef, state, copy=True), key)
        token = SEGMENTS.set(segments)
        try:
            logits = model(jnp.concatenate([x_calib] + [xx] * n_times))
        finally:
            SEGMENTS.reset(token)
        pred = jnp.argmax(logits[n_calib:], axis=-1).reshape(n_times, batch)
        return jnp.sum((pred == yy) & vv, axis=1)

    return jnp.sum(jax.lax.map(count, (xb, yb, valid)), axis=0)


_INSTANCES = PartitionSpec(None, engine.AXIS)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _run(graphdef, mesh, streamed, state, x_calib, xb, yb, valid, times, key, idx):
    """Correct counts (n_chunks, chunk, n_times) of the instances ``idx`` (n_chunks, chunk), sharded over ``mesh``,
    layers streamed or not.

    Compiled once per model structure, config, mesh, mode and shapes (the weights and the key are traced)."""
    instance = _instance_accuracy_streamed if streamed else _instance_accuracy

    def local(state, x_calib, xb, yb, valid, times, key, idx):
        def chunk(ids):
            # The barrier ties the weights to the chunk: XLA would otherwise hoist what depends on the weights
            # only (conductance targets, their noise sigmas: several arrays per cell of every layer) out of the
            # loop over chunks and hold them all, ~3x the working memory of one chunk.
            weights, ids = jax.lax.optimization_barrier((state, ids))
            return jax.vmap(lambda i: instance(graphdef, weights, x_calib, xb, yb, valid, times,
                                               engine.instance_key(key, i)))(ids)

        return jax.lax.map(chunk, idx)

    rep = PartitionSpec()
    return jax.shard_map(local, mesh=mesh, in_specs=(rep,) * 7 + (_INSTANCES,), out_specs=_INSTANCES,
                         check_vma=False)(state, x_calib, xb, yb, valid, times, key, idx)


# ----------------------------------------------------------------------------------------- evaluate


def _analog_model(model: Any, cfg: Any) -> Any:
    """The analog copy of ``model`` in evaluation mode."""
    analog = analogize(model, cfg, mode="analog") if cfg is not None else nnx.clone(model)
    analog_layers_or_raise(analog, "evaluate")
    analog.eval()  # dropout off, batch norm on running averages
    return analog


@functools.partial(jax.jit, static_argnums=0)
def _digital_logits(graphdef, state, x):
    """The digital model's outputs, one compiled program (op by op, a real-size network compiles each op)."""
    return nnx.merge(graphdef, state)(x)


def _check_args(x: jax.Array, n_instances: Any, times: Any, x_calib: Any, batch_size: Any, memory_budget: Any,
                mesh: Any) -> tuple[int, jax.Array, int | None, jax.Array, Mesh]:
    """Checked (n_instances, times, batch size or None, calibration inputs, mesh) of `evaluate`."""
    n_instances = check_int("n_instances", n_instances, 1)
    times_arr = _check_times(times)
    if memory_budget is not None:
        check_int("memory_budget", memory_budget, 1)
    if batch_size is not None:
        batch_size = min(check_int("batch_size", batch_size, 1), x.shape[0])
    xc = x[:128] if x_calib is None else _check_calib(x_calib, x.shape[1:])
    return n_instances, times_arr, batch_size, xc, engine.check_mesh(mesh)


def plan_evaluation(
    model: Any, cfg: Any, data: tuple[Any, Any], *, n_instances: int = 256, times: Sequence[float] = (1.0,),
    x_calib: Any = None, batch_size: int | None = None, chunk_size: int | None = None,
    memory_budget: int | None = None, mesh: Mesh | None = None,
) -> EvaluationPlan:
    """How `evaluate` with the same arguments runs within its memory budget (nothing runs: the model is traced).

    A chip whose programmed layers fit the budget is programmed whole and chips are vmapped in chunks of as many
    as fit; a larger chip (a real-size network) is streamed layer by layer, with the largest evaluation batch
    that fits (``batch_size`` default) and as many chips per chunk as fit, so that working memory follows the
    budget, not the model or the chip count (`EvaluationPlan`). Results do not depend on the plan.
    """
    x, _ = _check_data(data)
    n_instances, times_arr, batch_size, xc, mesh = _check_args(x, n_instances, times, x_calib, batch_size,
                                                              memory_budget, mesh)
    return _plan(_analog_model(model, cfg), x, xc, len(times_arr), n_instances, batch_size, chunk_size,
                 memory_budget, mesh)


def _plan(analog: Any, x: jax.Array, x_calib: jax.Array, n_times: int, n_instances: int, batch_size: int | None,
          chunk_size: int | None, memory_budget: int | None, mesh: Mesh) -> EvaluationPlan:
    """The plan (see `plan_evaluation`); ``chunk_size`` overrides the budget's chunk size, not its mode."""
    budget = engine.default_memory_budget(mesh.devices.flat) if memory_budget is None else memory_budget
    batch = x.shape[0] if batch_size is None else batch_size
    per = held = instance_bytes(analog, x[:batch], n_times)
    streamed = per > budget
    if streamed:
        parts = _streamed_parts(analog, x)
        least = _streamed_cost(parts, x_calib.shape[0] + n_times)
        if least > budget:
            if memory_budget is not None:
                raise ValueError(f"memory_budget {memory_budget / 2**20:.1f} MiB is below what one chip of this model "
                                 f"needs with its layers streamed ({least / 2**20:.1f} MiB: its two largest layers' "
                                 "programmed cells and the reads of the calibration inputs and one example)")
            budget = max(least, held // 2)  # the default is too small for this model: half a held chip, or the least
        if batch_size is None:
            batch = _streamed_batch(parts, x.shape[0], x_calib.shape[0], n_times, budget)
        per = _streamed_cost(parts, x_calib.shape[0] + n_times * batch)
        if memory_budget is None and 2 * per > held:
            # Under the default budget, streaming that saves less than half a held chip is not worth its cost
            # (every batch programs the chip again and reads the calibration inputs again): one held chip per
            # chunk, as close to the budget as the model allows.
            streamed, per, batch = False, held, x.shape[0] if batch_size is None else batch_size
    chunk = engine.plan_chunk_size(n_instances, per, mesh=mesh, memory_budget=budget, chunk_size=chunk_size)
    return EvaluationPlan(streamed=streamed, chunk_size=chunk, batch_size=batch, instance_bytes=per,
                          memory_budget=budget)


def _checked_streaming(plan: EvaluationPlan, analog: Any, x: jax.Array, x_calib: jax.Array, n_times: int,
                       n_instances: int, chunk_size: int | None, memory_budget: int | None,
                       mesh: Mesh) -> EvaluationPlan:
    """``plan`` when the model's layer inputs are example-major (`check_example_major`); else, with the default
    budget, every layer held, one chip per chunk, and a warning (an explicit budget: the ValueError)."""
    try:
        check_example_major(analog, jnp.concatenate([x_calib, x])[:4])
        return plan
    except ValueError as e:
        if memory_budget is not None:
            raise
        warnings.warn(f"{e}; evaluating with every layer of a chip held, above the default memory budget",
                      stacklevel=3)
    per = instance_bytes(analog, x[: plan.batch_size], n_times)
    chunk = engine.plan_chunk_size(n_instances, per, mesh=mesh, memory_budget=per, chunk_size=chunk_size)
    return EvaluationPlan(streamed=False, chunk_size=chunk, batch_size=plan.batch_size, instance_bytes=per,
                          memory_budget=per)


def _chunk_size(store: engine.ChunkStore | None, plan: EvaluationPlan, chunk_size: int | None, mesh: Mesh) -> int:
    """The checkpoint's chunk size when it has one (an explicit different one is an error), else the plan's."""
    saved = None if store is None else store.chunk_size()
    if saved is None:
        return plan.chunk_size
    if chunk_size is not None and -(-chunk_size // mesh.size) * mesh.size != saved:
        raise ValueError(f"chunk_size {chunk_size} differs from the checkpoint's ({saved}) in {store.folder}")
    return -(-saved // mesh.size) * mesh.size


def _run_by_chunk(run, n_instances: int, chunk: int, n_times: int, store: engine.ChunkStore | None,
                  progress: bool) -> np.ndarray:
    """Correct counts (n_chunks, chunk, n_times), one compiled call per chunk: chunks saved in ``store`` are
    loaded, the others run (and saved), with an optional progress bar."""
    saved = {}
    if store is not None:
        store.open(chunk)
        saved = store.load(chunk, n_instances, {"correct": ((1, chunk, n_times), "iu")})
    bar = None
    if progress and engine.is_primary():


        done = sum(min(chunk, n_instances - first) for first in saved)
        bar = Progress(n_instances, done, desc="chips")
    parts = []
    for first, stop in engine.chunks(n_instances, chunk):
        if first in saved:
            parts.append(saved[first]["correct"])
            continue
        parts.append(run(first // chunk, first // chunk + 1))
        if store is not None:
            store.save(first, first + chunk, {"correct": parts[-1]})
        if bar is not None:
            bar.update(stop - first)
    if bar is not None:
        bar.close()
    return np.concatenate(parts, axis=0)


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
        sees the same read-noise draw); default all, or with streamed layers the most that fit the budget.
      chunk_size: instances per vmapped chunk (rounded up to a multiple of the device count); default from
        ``memory_budget``.
      memory_budget: working memory per chunk, bytes; default 256 MiB on CPUs, a quarter of the devices' memory
        on accelerators (`jaxcim.engine.default_memory_budget`). A chip that does not fit whole is streamed
        layer by layer (`plan_evaluation`); its layers' input rows must then be example by example, as in
        batch-first models and imported CNNs, MLPs and recurrent networks. When they are not (PyTorch's
        MultiheadAttention flattens time-major rows), an explicit budget is a ValueError and the default one
        holds whole chips, with a warning.
      mesh: 1-d mesh with axis ``"instances"`` to shard instances over; default every device of every process
        (each process computes its share; every process gets the whole result).
      progress: show progress over chunks: a tqdm bar on a terminal, plain lines otherwise (runs one compiled
        call per chunk).
      checkpoint: a folder to save every chunk's results in as it completes (atomic writes) and to resume from:
        chunks already saved there are loaded, not run again, and the chunk size is the saved one. Results are
        the same as an uninterrupted run. Every chunk file carries ``fingerprint``; files that are damaged,
        of another shape or of another fingerprint are computed again (and replaced). Runs one compiled call per
        chunk (`jaxcim.engine.ChunkStore`; with several processes, process 0 writes).
      fingerprint: what the checkpoint's chunks must belong to (``jaxcim run``: a hash of the study); default
        a hash of the analog model (structure, weights, configs), the data, ``x_calib``, the times and the key.

    Returns:
      An `AccuracyResult` with ``accuracies`` (n_instances, n_times).
    """
    core_key_check(key)
    x, y = _check_data(data)
    n_instances, times_arr, batch_size, xc, mesh = _check_args(x, n_instances, times, x_calib, batch_size,
                                                              memory_budget, mesh)
    analog = _analog_model(model, cfg)
    digital_acc = float(jnp.mean(jnp.argmax(_digital_logits(*nnx.split(set_mode(nnx.clone(analog), "digital")), x),
                                            axis=-1) == y))
    plan = _plan(analog, x, xc, len(times_arr), n_instances, batch_size, chunk_size, memory_budget, mesh)
    if plan.streamed:
        plan = _checked_streaming(plan, analog, x, xc, len(times_arr), n_instances, chunk_size, memory_budget, mesh)

    store = None
    if checkpoint is not None:
        fingerprint = _fingerprint(analog, x, y, xc, times_arr, key) if fingerprint is None else fingerprint
        store = engine.ChunkStore(Path(checkpoint), fingerprint)
    chunk = _chunk_size(store, plan, chunk_size, mesh)
    n_chunks = -(-n_instances // chunk)
    idx = np.arange(n_chunks * chunk, dtype=np.uint32).reshape(n_chunks, chunk)
    graphdef, state = nnx.split(analog)
    args = engine.replicate((state, xc, *_batches(x, y, plan.batch_size), times_arr, key), mesh)

    def run(c0: int, c1: int) -> np.ndarray:
        return engine.to_host(_run(graphdef, mesh, plan.streamed, *args,
                                   engine.shard_instances(idx[c0:c1], mesh, axis=1)))

    if progress or store is not None:
        acc = _run_by_chunk(run, n_instances, chunk, len(times_arr), store, progress)
    else:
        acc = run(0, n_chunks)
    acc = acc.reshape(n_chunks * chunk, len(times_arr))[:n_instances] / x.shape[0]
    return AccuracyResult(accuracies=acc, times=np.asarray(times_arr, dtype=float), n_examples=int(x.shape[0]),
                          digital_accuracy=digital_acc)


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


__all__ = ["AccuracyResult", "EvaluationPlan", "accuracy", "check_example_major", "default_mesh", "evaluate",
           "instance_bytes", "plan_evaluation"]
