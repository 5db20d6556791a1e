"""Monte Carlo over device instances: per-instance reproducibility under chunking/sharding/resume, statistics
against analytic values and numpy, bounded memory, one compilation per sweep."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcim as jc
from jaxcim import engine
from jaxcim import montecarlo as mc
from jaxcim.config import static_zeros

N_IN, N_OUT, BATCH = 48, 20, 8


def _cfg(preset="pcm-ibm"):
    return jc.presets.get(preset).replace(**{"mapping.rows": 64, "mapping.cols": 32})


def _data(seed=0):
    r = np.random.default_rng(seed)
    return (r.standard_normal((N_IN, N_OUT)).astype(np.float32) / np.sqrt(N_IN),
            r.uniform(-1, 1, (BATCH, N_IN)).astype(np.float32))


@pytest.mark.slow
def test_instance_i_is_simulate_with_folded_key():
    cfg, (w, x), key = _cfg(), _data(), jax.random.key(3)
    ys = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=5, t=3600.0, chunk_size=8))
    assert ys.shape == (5, BATCH, N_OUT)
    for i in (0, 4):
        y = jc.simulate(cfg, w, x, key=jax.random.fold_in(key, i), t=3600.0)
        np.testing.assert_allclose(ys[i], y, rtol=1e-6, atol=1e-6 * np.abs(y).max())
    assert not np.allclose(ys[0], ys[1])  # instances differ


@pytest.mark.slow
def test_same_results_whatever_the_chunking_devices_or_resume():
    cfg, (w, x), key = _cfg(), _data(), jax.random.key(1)
    assert len(jax.devices()) == 8
    ref = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=19, times=(1.0, 86400.0), chunk_size=8))
    one_dev = mc.default_mesh(jax.devices()[:1])
    for kw in (dict(chunk_size=3, mesh=one_dev),):
        ys = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=19, times=(1.0, 86400.0), **kw))
        # one float32 rounding of the accumulation order at most (a different XLA program per chunk size)
        np.testing.assert_allclose(ys, ref, rtol=0, atol=2e-6 * np.abs(ref).max())
    # resuming after instance 11 with the same chunk size is the same program: bit for bit
    tail = [np.asarray(o) for _, _, o in mc.iter_chunks(cfg, w, x, key=key, n=19, times=(1.0, 86400.0),
                                                        chunk_size=8, start=11)]
    np.testing.assert_array_equal(np.concatenate(tail), ref[11:])


def test_times_program_once_and_read_each_time():
    cfg, (w, x), key = _cfg(), _data(), jax.random.key(2)
    both = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=4, times=(10.0, 1e5), chunk_size=8))
    assert both.shape == (4, 2, BATCH, N_OUT)
    for j, t in enumerate((10.0, 1e5)):  # the result at t does not depend on the other times
        single = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=4, t=t, chunk_size=8))
        np.testing.assert_allclose(both[:, j], single, rtol=0, atol=2e-6 * np.abs(single).max())
    # without drift and read noise every read of an instance sees the same programmed conductances
    still = cfg.replace(**{"device.drift_scale": 0.0, "device.read_noise_scale": 0.0})
    ys = np.asarray(mc.monte_carlo(still, w, x, key=key, n=3, times=(0.0, 1e6), chunk_size=8))
    np.testing.assert_allclose(ys[:, 1], ys[:, 0], rtol=1e-6, atol=1e-7)


def test_programming_noise_error_matches_analytic_variance():
    # constant sigma = 1% of g_max, no read noise, ideal converters: y - x@w = s * x @ (eps+ - eps-) exactly
    g_min, g_max, frac = 10e-6, 40e-6, 0.01
    cfg = _cfg().replace(**{"device.model": "custom", "device.sigma_poly": (frac,), "device.g_min": g_min,
                            "device.g_max": g_max, "device.read_noise_scale": 0.0, "dac.bits": 0, "adc.bits": 0,
                            "drift_compensation": False})
    w, x = _data(1)
    ref = x.astype(np.float64) @ w
    n = 256
    err = np.asarray(mc.monte_carlo_stats(cfg, w, x, key=jax.random.key(9), n=n)["rel_error"]).astype(np.float64)
    s = frac * g_max / (g_max - g_min) * np.abs(w).max()
    expected = 2 * s**2 * N_OUT * np.sum(x.astype(np.float64) ** 2) / np.sum(ref**2)  # E[rel_error^2]
    e2 = err**2
    assert abs(e2.mean() - expected) < 4 * e2.std() / np.sqrt(n)


@pytest.mark.slow
def test_stats_and_summary_match_numpy():
    cfg, (w, x), key = _cfg(), _data(), jax.random.key(4)
    ys = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=12, times=(1.0, 3600.0), chunk_size=8)).astype(np.float64)
    ref = x.astype(np.float64) @ w
    rel = np.linalg.norm(ys - ref, axis=(-2, -1)) / np.linalg.norm(ref)
    col = np.linalg.norm(ys - ref, axis=-2) / np.linalg.norm(ref, axis=0)
    st = mc.monte_carlo_stats(cfg, w, x, key=key, n=12, times=(1.0, 3600.0), chunk_size=5, columns="instances")
    np.testing.assert_allclose(st["rel_error"], rel, rtol=2e-4)
    np.testing.assert_allclose(st["col_rel_error"], col, rtol=2e-4)
    # by default the per-column errors are reduced chunk by chunk (3 chunks of 5, the last one padded)
    mom = mc.monte_carlo_stats(cfg, w, x, key=key, n=12, times=(1.0, 3600.0), chunk_size=5)
    assert "col_rel_error" not in mom and mom["col_mean"].shape == (2, N_OUT)
    np.testing.assert_array_equal(mom["rel_error"], st["rel_error"])
    for name, value in (("col_mean", col.mean(0)), ("col_std", col.std(0)), ("col_min", col.min(0)),
                        ("col_max", col.max(0))):
        np.testing.assert_allclose(mom[name], value, rtol=2e-4, err_msg=name)
    summ = mc.summarize(ys, ref)
    assert summ["n"] == 12
    np.testing.assert_allclose(summ["mean"], rel.mean(0), rtol=1e-5)
    np.testing.assert_allclose(summ["std"], rel.std(0), rtol=1e-4)
    np.testing.assert_allclose(summ["p5"], np.percentile(rel, 5, axis=0), rtol=1e-5)
    np.testing.assert_allclose(summ["p95"], np.percentile(rel, 95, axis=0), rtol=1e-5)
    np.testing.assert_allclose(summ["col_p50"], np.percentile(col, 50, axis=0), rtol=1e-5)
    single = mc.monte_carlo_stats(cfg, w, x, key=key, n=12, t=1.0, chunk_size=8)
    np.testing.assert_allclose(single["rel_error"], rel[:, 0], rtol=2e-4)


def _kernel_args(cfg, w, x, times, reduce=None, x_calib=None):
    kernel = mc.MVMKernel(reduce=reduce, zeros=static_zeros(cfg))
    return kernel, (cfg, w, x_calib, None, None), (cfg, x, jnp.asarray(times), x @ w)


def test_memory_estimate_bounds_xla_working_memory():
    cfg = jc.presets.get("pcm-ibm")
    w = jnp.zeros((256, 256)) + 0.1
    x = jnp.ones((64, 256))
    size, n_times = 8, 2  # one device: XLA's memory analysis is per device
    mesh = mc.default_mesh(jax.devices()[:1])
    est = mc.instance_bytes(cfg, 256, 256, 64, n_times)
    kernel, prog, meas = _kernel_args(cfg, w, x, [1.0, 1.0], reduce=mc.error_stats, x_calib=x)
    for stages in (1, 2):  # one program (accelerators); two (CPUs): the states live between them
        peak = engine.chunk_peak_bytes(kernel, prog, meas, jax.random.key(0), mesh=mesh, size=size, stages=stages)
        assert peak / size < est < 4 * peak / size, stages
    assert mc.chunk_size_for(10 * 2**20, 2**20, 1000, 8) == 16  # 10 fit, rounded up to the 8 devices
    assert mc.chunk_size_for(2**40, 2**20, 5, 8) == 8
    assert mc.chunk_size_for(1, 2**20, 100, 1) == 1


def test_programs_in_stages_match_the_fused_program():
    """CPUs run a chunk as two programs (programming, then reading), accelerators as one: same numbers to
    float rounding (compared without ADC quantization, where a rounding difference can flip one level)."""
    w, x = _data()
    key = jax.random.key(4)
    mesh = mc.default_mesh(jax.devices()[:1])
    for name, change in (("pcm-ibm", {}), ("reram-neurram", {"mapping.scheme": "offset"}),
                         ("reram-neurram", {"circuit.kind": "ir_drop", "circuit.r_row": 2.0, "circuit.r_col": 2.0}),
                         ("ideal", {"adc.offset_sigma": 0.5, "adc.gain_sigma": 0.01})):
        cfg = jc.presets.get(name).replace(**{"mapping.rows": 64, "mapping.cols": 32, "adc.bits": 0, **change})
        x_calib = x if cfg.adc.range_mode == "calibrated" else None
        kernel, prog, meas = _kernel_args(cfg, w, x, [1.0, 3600.0], x_calib=x_calib)
        fused, staged = (engine.run_chunk(kernel, prog, meas, key, jnp.uint32(3), jnp.uint32(9), mesh=mesh, size=4,
                                          stages=s) for s in (1, 2))
        assert fused.shape == staged.shape == (4, 2) + (x.shape[0], w.shape[1])
        # float32 rounding (summation order; the offset mapping subtracts a reference column) vs the
        # instance-to-instance spread that a different random draw would show
        diff = float(jnp.max(jnp.abs(staged - fused)))
        assert diff <= 2e-4 * float(jnp.max(jnp.abs(fused))), (name, change, diff)
        assert float(jnp.mean(jnp.std(fused, axis=0))) > 100 * diff, (name, change, diff)
    with pytest.raises(ValueError, match="stages must be 1, 2 or 'auto'"):  # the public argument selecting them
        mc.monte_carlo(cfg, w, x, key=key, n=3, stages=3)


def test_sweeps_of_traced_leaves_and_times_reuse_one_compilation():
    cfg, (w, x), key = _cfg(), _data(), jax.random.key(0)
    mc.monte_carlo_stats(cfg, w, x, key=key, n=8, t=1.0, chunk_size=8)
    before = engine.compilations()
    for change in ({"device.prog_noise_scale": 0.5}, {"adc.margin": 1.5}, {"device.g_max": 20e-6},
                   {"circuit.r_row": 2.5}):
        mc.monte_carlo_stats(cfg.replace(**change), w, x, key=key, n=8, t=1e4, chunk_size=8)
    mc.monte_carlo_stats(cfg, w, x, key=jax.random.key(1), n=5, t=3.0, chunk_size=8)
    assert engine.compilations() == before


@pytest.mark.slow
def test_jit_and_grad_through_monte_carlo():
    cfg = jc.presets.get("ideal").replace(**{"mapping.rows": 64, "mapping.cols": 32})
    w, x = _data()
    key = jax.random.key(0)
    eager = mc.monte_carlo(cfg, w, x, key=key, n=3, chunk_size=8)
    jitted = jax.jit(lambda w, x: mc.monte_carlo(cfg, w, x, key=key, n=3, chunk_size=8))(w, x)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(eager[1], x @ w, rtol=1e-4, atol=1e-5)  # ideal preset: exact matmul
    # d/dx of sum over instances and outputs of x @ w: every row gets n * w.sum(1)
    g = jax.grad(lambda x: jnp.sum(mc.monte_carlo(cfg, w, x, key=key, n=3, chunk_size=8)))(x)
    np.testing.assert_allclose(g, np.broadcast_to(3 * w.sum(1), x.shape), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(n=0), ValueError, "n must be >= 1"),
    (dict(n=2.5), TypeError, "n must be an integer"),
    (dict(n=2, times=()), ValueError, "times"),
    (dict(n=2, times=(1.0, -3.0)), ValueError, "t \\(seconds"),
    (dict(n=2, t=-1.0), ValueError, "t \\(seconds"),
    (dict(n=2, memory_budget=-1), ValueError, "memory_budget"),
    (dict(n=2, chunk_size=0), ValueError, "chunk_size"),
])
def test_bad_arguments_fail_early(kwargs, exc, match):
    w, x = _data()
    with pytest.raises(exc, match=match):
        mc.monte_carlo(_cfg(), w, x, key=jax.random.key(0), **kwargs)


def test_bad_arrays_fail_early():
    w, x = _data()
    with pytest.raises(ValueError, match="in_features"):
        mc.monte_carlo(_cfg(), w, x[:, :5], key=jax.random.key(0), n=2)
    with pytest.raises(TypeError, match="key is required"):
        mc.monte_carlo(_cfg(), w, x, key=None, n=2)
    with pytest.raises(ValueError, match="reference.shape"):
        mc.summarize(np.zeros((3, 4, 5)), np.zeros((4, 6)))


def test_default_memory_budget_uses_accelerator_memory():
    class Fake:
        def __init__(self, platform, limit):
            self.platform, self.limit = platform, limit

        def memory_stats(self):
            return None if self.limit is None else {"bytes_limit": self.limit}

    assert mc.default_memory_budget() == mc.CPU_MEMORY_BUDGET  # the test machine's CPU devices
    gpus = [Fake("gpu", 80 * 10**9), Fake("gpu", 40 * 10**9)]
    assert mc.default_memory_budget(gpus) == 2 * 10 * 10**9  # a quarter of the smallest, per device
    assert mc.default_memory_budget([Fake("gpu", None)]) == mc.DEFAULT_MEMORY_BUDGET
    assert mc.default_memory_budget([Fake("tpu", 2 * 10**9)]) == mc.DEFAULT_MEMORY_BUDGET  # never below 1 GiB
