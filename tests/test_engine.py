"""The engine that runs device instances (jaxcim.engine): chunk plans, instance keys, the chunk store, a kernel
of one's own; drift compensation and learned mappings as objects behind their protocols."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcim as jc
from jaxcim import compensation, engine, io


@dataclasses.dataclass(frozen=True)
class _Gaussian:
    """A kernel of one's own: an instance draws a normal vector at programming and adds a scaled one when read."""

    def program(self, key, args):
        (shape,) = args
        return jax.random.normal(jax.random.fold_in(key, 0), shape.shape)

    def measure(self, state, key, args):
        (scale,) = args
        return state + scale * jax.random.normal(jax.random.fold_in(key, 1), state.shape)

    def state_axes(self, state):
        return 0


def _direct(key, i, scale=0.5):
    k = jax.random.fold_in(key, i)
    return jax.random.normal(jax.random.fold_in(k, 0), (3,)) + scale * jax.random.normal(jax.random.fold_in(k, 1),
                                                                                            (3,))


def test_a_kernel_of_ones_own_runs_on_the_engine_whatever_the_chunking():
    key, n = jax.random.key(7), 11
    kernel, prog, meas = _Gaussian(), (jnp.zeros(3),), (jnp.float32(0.5),)
    mesh = engine.default_mesh()
    size = engine.plan_chunk_size(n, 1, mesh=mesh, chunk_size=3)
    assert size == mesh.size == 8  # rounded up to the devices
    for stages in (1, 2):
        parts = [engine.to_host(engine.run_chunk(kernel, prog, meas, key, jnp.uint32(a), jnp.uint32(n), mesh=mesh,
                                                 size=size, stages=stages))[:b - a] for a, b in engine.chunks(n, size)]
        ys = np.concatenate(parts)
        assert ys.shape == (n, 3)
        for i in (0, 5, 10):  # instance i is the study key folded with i, computed directly
            np.testing.assert_allclose(ys[i], _direct(key, i), rtol=1e-6, atol=1e-6)
    # one key per instance (the optimizer's held-out instances), in a traced computation too
    keys = jax.random.split(key, 4)
    one = engine.to_host(engine.run_chunk(kernel, prog, meas, keys, jnp.uint32(0), jnp.uint32(4), mesh=mesh,
                                          size=8, stages=1, per_instance=True))[:4]
    traced = jax.jit(lambda k: engine.map_instances(kernel, prog, meas, k, batch_size=2))(keys)
    np.testing.assert_allclose(one, traced, rtol=1e-6, atol=1e-6)


def test_memory_model_plans_chunks():
    mesh = engine.default_mesh(jax.devices()[:2])
    assert engine.plan_chunk_size(1000, 2**20, mesh=mesh, memory_budget=9 * 2**20) == 10  # 9 fit, even
    assert engine.plan_chunk_size(5, 2**20, mesh=mesh, memory_budget=2**40) == 6  # at most n, even
    assert engine.plan_chunk_size(5, lambda: 1 / 0, mesh=mesh, chunk_size=3) == 4  # no estimate needed
    with pytest.raises(ValueError, match="memory_budget must be a positive number of bytes"):
        engine.plan_chunk_size(5, 1, mesh=mesh, memory_budget=float("nan"))
    with pytest.raises(ValueError, match="mesh must be a jax.sharding.Mesh with the single axis 'instances'"):
        engine.check_mesh(jax.sharding.Mesh(np.asarray(jax.devices()), ("x",)))


def test_chunk_store_keeps_intact_chunks_and_deletes_the_rest(tmp_path):
    store = engine.ChunkStore(tmp_path / "ck", "study-a")
    assert store.chunk_size() is None
    store.open(4)
    assert store.chunk_size() == 4 and engine.ChunkStore(tmp_path / "ck", "study-b").chunk_size() is None
    assert json.loads((tmp_path / "ck" / engine.RECORD).read_text()) == {"chunk_size": 4, "fingerprint": "study-a"}
    good = np.arange(8, dtype=np.int32).reshape(1, 4, 2)
    store.save(0, 4, {"correct": good})
    store.save(8, 12, {"correct": good + 1})
    store.save(4, 6, {"correct": good})  # wrong size
    engine.ChunkStore(tmp_path / "ck", "study-b").save(12, 16, {"correct": good})  # another study
    store.save(16, 20, {"correct": good.astype(np.float32)})  # wrong dtype
    (tmp_path / "ck" / io.chunk_name(20, 24)).write_bytes(b"truncated")  # damaged
    saved = store.load(4, 30, {"correct": ((1, 4, 2), "iu")})
    assert sorted(saved) == [0, 8]
    np.testing.assert_array_equal(saved[8]["correct"], good + 1)
    assert [(a, b) for a, b, _ in io.list_chunks(tmp_path / "ck")] == [(0, 4), (8, 12)]
    assert sorted(store.load(4, 5, {"correct": ((1, 4, 2), "iu")})) == [0]  # chunks past n are stale


def test_drift_compensation_is_an_object():
    pcm = jc.presets.get("pcm-ibm")
    assert isinstance(pcm.drift_compensation, compensation.GlobalDriftCompensation)  # the preset's `true`
    assert pcm.to_dict()["drift_compensation"] is True
    assert jc.config.from_dict(pcm.to_dict()).drift_compensation == pcm.drift_compensation
    off = pcm.replace(drift_compensation=False)
    assert off.drift_compensation is None and off.to_dict()["drift_compensation"] is False
    assert jc.config.from_dict(off.to_dict()).drift_compensation is None
    with pytest.raises(TypeError, match="drift_compensation must be true or false"):
        pcm.replace(drift_compensation="global")

    @dataclasses.dataclass(frozen=True)
    class Halve:  # a compensation of one's own: the pipeline never asks which one it has
        name: str = "halve"

        def compensate(self, y, probe0, probe_t):
            return 0.5 * y

    cfg = jc.presets.get("ideal").replace(**{"mapping.rows": 32, "mapping.cols": 16})
    r = np.random.default_rng(0)
    w, x = (r.standard_normal((40, 20)) / 6).astype(np.float32), r.uniform(-1, 1, (4, 40)).astype(np.float32)
    key = jax.random.key(0)
    y = jc.simulate(cfg, w, x, key=key, t=3600.0)
    np.testing.assert_array_equal(jc.simulate(cfg.replace(drift_compensation=Halve()), w, x, key=key, t=3600.0),
                                  0.5 * y)
    # without drift the global compensation's probe ratio is 1: the outputs stay
    glob = jc.simulate(cfg.replace(drift_compensation=True), w, x, key=key, t=3600.0)
    np.testing.assert_allclose(glob, y, rtol=1e-6, atol=1e-6 * float(jnp.max(jnp.abs(y))))


def test_a_mapping_must_implement_the_protocol():
    cfg = jc.presets.get("ideal").replace(**{"mapping.rows": 32, "mapping.cols": 16})
    w = np.ones((8, 4), np.float32)
    with pytest.raises(TypeError, match="mapping must be a jaxcim.optimize.LearnedMapping"):
        jc.program(cfg, w, key=jax.random.key(0), mapping=object())
    with pytest.raises(TypeError, match="jaxcim.mapping.WeightMapping"):
        jc.monte_carlo(cfg, w, np.ones((2, 8), np.float32), key=jax.random.key(0), n=2, mapping={"col_range": 1})
    assert isinstance(jc.optimize.init_mapping(cfg, w), jc.mapping.WeightMapping)
