"""The device-model protocol: one contract test over every registered model, and a model defined in this file
(not in jaxcim) run through every entry point: program/read/simulate, monte_carlo, nn.evaluate, optimize_mapping,
the energy model, TOML configs and the `jaxcim run` command line."""

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxcim as jc
from jaxcim import cli
from jaxcim import devices as jd


@jd.register("test-lognormal")
class LogNormalReRAM(jd.DeviceModel):
    """A user's device: relative programming spread, relaxation growing with log time, relative read noise."""

    sigma_rel: Any = 0.04  # programming sigma / G_target
    sigma_floor: Any = 0.2e-6  # S
    relax_per_decade: Any = 0.01  # relative spread added per decade of time after 1 s
    read_rel: Any = 0.005

    def check(self) -> None:
        for name in ("sigma_rel", "sigma_floor", "relax_per_decade", "read_rel"):
            jc.config.check_range("device", name, getattr(self, name), 0.0)

    def programming_sigma(self, g_target):
        return self.sigma_rel * g_target + self.sigma_floor

    def time_params(self, key, targets):
        return tuple(jax.random.normal(jax.random.fold_in(key, i), t.shape, t.dtype) for i, t in enumerate(targets))

    def at_time(self, g_prog, g_target, params, t):
        decades = jnp.log10(jnp.maximum(t, 1.0))
        return jnp.maximum(g_prog * (1.0 + self.drift_scale * self.relax_per_decade * decades * params), 0.0)

    def read_sigma(self, g, g_target, t):
        return self.read_rel * jnp.abs(g)


def _models():
    """One instance of every registered model (the polynomial model needs its coefficients)."""
    out = []
    for name in jd.names():
        fields = {"sigma_poly": (0.01, 0.02)} if name == "custom" else {}
        out.append(jd.build(name, fields))
    return out


MODELS = _models()
R = np.random.default_rng(0)
W = (R.standard_normal((40, 12)) / 6).astype(np.float32)
X = R.uniform(-1, 1, (6, 40)).astype(np.float32)


def _cfg(dev):
    return jc.presets.get("reram-neurram").replace(device=dev, **{"mapping.rows": 32, "mapping.cols": 8})


@pytest.mark.parametrize("dev", MODELS, ids=lambda d: d.name)
def test_contract(dev):
    g = jnp.linspace(0.0, 1.0, 11) * dev.g_max
    for t in (0.0, 1.0, 3600.0, 3e8):
        assert np.all(np.asarray(jd.read_sigma(dev, g, g, t)) >= 0)
        params = jd.sample_time_params(dev, jax.random.key(0), g)
        g_t = np.asarray(jd.at_time(dev, g, g, params, t))
        assert np.all(np.isfinite(g_t)) and np.all(g_t >= 0)
    assert np.all(np.asarray(jd.programming_sigma(dev, g)) >= 0)
    assert np.all(np.isfinite(np.asarray(jd.programming_mean(dev, g))))

    # the noise-free limit of every model is the ideal device
    quiet = dev.replace(prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)
    if isinstance(dev, jd.Polynomial):
        quiet = quiet.replace(mean_poly=())
    ideal = jd.Ideal(g_min=dev.g_min, g_max=dev.g_max)
    y = jc.simulate(_cfg(quiet), W, X, key=jax.random.key(1), t=86400.0)
    y_ideal = jc.simulate(_cfg(ideal), W, X, key=jax.random.key(1), t=86400.0)
    np.testing.assert_allclose(y, y_ideal, rtol=0, atol=1e-6 * np.abs(y_ideal).max())

    # same key, same numbers; the model's kernels under jit(vmap(grad)) are finite
    cfg = _cfg(dev)
    a = jc.simulate(cfg, W, X, key=jax.random.key(2), t=3600.0)
    np.testing.assert_array_equal(a, jc.simulate(cfg, W, X, key=jax.random.key(2), t=3600.0))
    assert not np.array_equal(a, jc.simulate(cfg, W, X, key=jax.random.key(3), t=3600.0)) or not dev.noisy_reads
    # a read right after programming is random exactly when the model has read noise at t = 0 (aihwkit's PCM counts
    # its 1/f noise from t0 = 20 s before the end of programming); same compilations as `simulate`
    state = jc.program(cfg, W, key=jax.random.key(2), x_calib=X)
    r1, r2 = (jc.read(cfg, state, X, key=jax.random.key(k), t=0.0) for k in (1, 2))
    noisy_at_0 = dev.noisy_reads and bool(np.any(np.asarray(jd.read_sigma(dev, g[1:], g[1:], 0.0)) > 0))
    assert np.array_equal(r1, r2) != noisy_at_0

    def kernels(gt):
        params = jd.sample_time_params(dev, jax.random.key(0), gt)
        g = jd.at_time(dev, gt + jd.programming_mean(dev, gt) + jd.programming_sigma(dev, gt), gt, params, 3600.0)
        return (g + jd.read_sigma(dev, g, gt, 3600.0)) / dev.g_max

    grads = jax.jit(jax.vmap(jax.grad(kernels)))(jnp.linspace(0.05, 0.95, 5) * dev.g_max)
    assert np.all(np.isfinite(grads))

    # TOML round trip: [device] model = name and the model's own fields
    again = jc.config.from_dict({"device": cfg.device.to_dict()})
    assert type(again.device) is type(dev) and again.device == cfg.device


def test_published_constants_are_leaves():
    """A model's constants are pytree leaves: vmapped over, and differentiated through."""
    dev = jd.PCMLike()
    sig = jax.vmap(lambda t0: jd.at_time(dev.replace(t0=t0), jnp.ones(3) * 1e-5, jnp.ones(3) * 1e-5,
                                         jnp.full(3, 0.05), 3600.0))(jnp.asarray([10.0, 20.0, 40.0]))
    assert sig.shape == (3, 3) and np.all(np.diff(np.asarray(sig)[:, 0]) > 0)  # larger t0: less drift
    d = jax.grad(lambda s: jd.programming_sigma(LogNormalReRAM(sigma_rel=s), jnp.asarray(1e-5)))(0.04)
    assert float(d) == pytest.approx(1e-5, rel=1e-6)


def test_users_model_everywhere(tmp_path):
    dev = LogNormalReRAM(g_min=1e-6, g_max=40e-6)
    cfg = _cfg(dev)
    ref = X.astype(np.float64) @ W.astype(np.float64)

    state = jc.program(cfg, W, key=jax.random.key(0), x_calib=X)
    y1 = jc.read(cfg, state, X, key=jax.random.key(1), t=1.0)
    y2 = jc.read(cfg, state, X, key=jax.random.key(1), t=3e7)
    e1, e2 = (float(np.linalg.norm(y - ref) / np.linalg.norm(ref)) for y in (y1, y2))
    assert 0.005 < e1 < 0.3 and e2 > e1  # relaxation over a year adds error

    ys = jc.monte_carlo(cfg, W, X, key=jax.random.key(2), n=4, times=(1.0, 3e7), chunk_size=4)
    np.testing.assert_allclose(ys[3, 0], jc.simulate(cfg, W, X, key=jax.random.fold_in(jax.random.key(2), 3), t=1.0),
                               rtol=0, atol=2e-6 * float(np.abs(ys).max()))

    model = nnx.Sequential(nnx.Linear(40, 12, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(12, 3, rngs=nnx.Rngs(1)))
    labels = np.asarray(jnp.argmax(model(X), -1))
    acc = jc.nn.evaluate(model, cfg, (X, labels), key=jax.random.key(3), n_instances=3, times=(1.0,)).accuracies
    assert np.asarray(acc).shape == (3, 1) and np.all(np.asarray(acc) >= 0.5)

    res = jc.optimize_mapping(cfg, W, np.concatenate([X, X]), key=jax.random.key(4), steps=2,
                              optimizer=optax.adam(1e-2), n_instances=2, times=(1.0,), n_eval=2)
    assert math.isfinite(float(res.loss_history[-1]))

    rep = jc.energy.estimate(cfg, jc.energy.Workload(in_features=40, out_features=12), w=W)
    assert rep.tops_per_w > 0

    # TOML: a config file and a study run through the command line, by the registered name
    toml = tmp_path / "cfg.toml"
    toml.write_text('preset = "reram-neurram"\n[device]\nmodel = "test-lognormal"\nsigma_rel = 0.08\n')
    loaded = jc.load_config(toml)
    assert isinstance(loaded.device, LogNormalReRAM) and loaded.device.sigma_rel == 0.08
    study = tmp_path / "study.toml"
    study.write_text('study = "mvm"\ninstances = 4\nbatch = 6\nin_features = 40\nout_features = 12\n'
                     'times = [1.0, 3e7]\nchunk_size = 4\n[crossbar]\npreset = "reram-neurram"\n'
                     '[crossbar.device]\nmodel = "test-lognormal"\n[crossbar.mapping]\nrows = 32\ncols = 8\n')
    assert cli.main(["run", str(study), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "results.json").is_file()


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match="device.model must be one of .*'pcm-ibm'.*'test-lognormal'"):
        jc.presets.get("ideal").replace(**{"device.model": "mram"})
    with pytest.raises(KeyError, match="unknown key 'device.sigma_rel' for device.model = 'pcm-ibm'"):
        jc.presets.get("pcm-ibm").replace(**{"device.sigma_rel": 0.1})
    with pytest.raises(TypeError, match="DeviceModel subclass"):
        jd.register("x")(int)
