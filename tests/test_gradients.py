"""Gradients through every stage of the data path: float64 finite differences where the stage is smooth,
analytic straight-through values where it is not, and the 1/n variance of the Monte Carlo gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxcim as jc
from jaxcim import devices, optimize
from jaxcim.converters import adc, dac
from jaxcim.devices import pcm
from jaxcim.programming import write

EPS = 1e-6  # finite-difference step in normalized units (conductances / g_max, weights / max|w|)


def _fd(f, args, **kw):
    check_grads(f, args, order=1, modes=("fwd", "rev"), eps=EPS, **kw)


@pytest.mark.parametrize("changes", [
    {"device.model": "reram-wan2022"},
    {"device.model": "pcm-ibm", "device.g_max": 25e-6},
    {"device.model": "custom", "device.sigma_poly": (0.01, 0.05, -0.02), "device.mean_poly": (0.0, 0.01)},
    {"device.model": "reram-wan2022", "programming.method": "write_verify", "programming.tolerance": 0.02},
])
def test_programming_gradient_matches_finite_differences(changes):
    with jax.enable_x64(True):
        cfg = jc.presets.get("reram-neurram").replace(**changes)
        gmax = cfg.device.g_max
        xt = jnp.asarray(np.random.default_rng(0).uniform(0.25, 0.75, 12))
        key = jax.random.key(3)
        f = jax.jit(lambda x: write(cfg, x * gmax, key)[0] / gmax)
        _fd(f, (xt,))
        # the gradient is not the identity: it carries d sigma / d G_target (reparameterization)
        g = jax.jacfwd(f)(xt)
        assert not np.allclose(np.diag(g), 1.0, atol=1e-3)


def test_write_verify_gradient_is_that_of_the_accepted_write():
    """Custom gradient of write-verify: d G / d G_t = 1 + sigma'(G_t) * e, e the accepted write's normalized error."""
    with jax.enable_x64(True):
        cfg = jc.presets.get("reram-neurram").replace(**{"programming.method": "write_verify"})
        dev = cfg.device
        gt = jnp.linspace(5e-6, 35e-6, 7)
        g, _ = write(cfg, gt, jax.random.key(1))
        e = (g - gt) / devices.programming_sigma(dev, gt)
        dsig = jax.vmap(jax.grad(lambda a: devices.programming_sigma(dev, a)))(gt)
        grad = jax.jit(jax.vmap(jax.grad(lambda a, i: write(cfg, gt.at[i].set(a), jax.random.key(1))[0][i])))(
            gt, jnp.arange(7))
        np.testing.assert_allclose(grad, 1.0 + dsig * e, rtol=1e-9)


def test_drift_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        g = jnp.asarray(rng.uniform(0.2, 1.0, 10))
        nu = jnp.asarray(rng.uniform(0.03, 0.1, 10))
        _fd(lambda g, nu, lt: pcm.drift(g, nu, jnp.exp(lt)), (g, nu, jnp.log(86400.0)))
        # through the state-dependent exponent nu(G_target) = mu(G) + s(G) * eps, in its unclipped range
        dev = jc.presets.get("pcm-ibm").device
        xt = jnp.asarray(rng.uniform(0.02, 0.18, 10))

        def aged(x):
            gt = x * dev.g_max
            nu = devices.sample_time_params(dev, jax.random.key(0), gt)
            return devices.at_time(dev, gt, gt, nu, 86400.0) / dev.g_max

        _fd(aged, (xt,))


def test_drift_power_law_gradient_analytic():
    with jax.enable_x64(True):
        t, nu = 86400.0, 0.06
        d = jax.grad(lambda n: pcm.drift(1.0, n, t))(nu)
        np.testing.assert_allclose(d, -np.log((t + pcm.T0) / pcm.T0) * ((t + pcm.T0) / pcm.T0) ** -nu, rtol=1e-12)


def test_quantizer_gradients_are_straight_through():
    with jax.enable_x64(True):
        cfg = jc.presets.get("reram-neurram")
        i = jnp.asarray([-3.0, -0.4, 0.1, 0.77, 2.5])  # full scale 1: first and last are clipped
        gain = 0.03
        grad = jax.grad(lambda a: jnp.sum(adc(cfg.adc, a, 1.0, 0.2, gain)))(i)
        np.testing.assert_allclose(grad, [0.0, 1 + gain, 1 + gain, 1 + gain, 0.0], rtol=1e-12)
        x = jnp.asarray([[0.3, -0.7, 1.0]])
        gdac = jax.grad(lambda a: jnp.sum(dac(cfg.dac, a)[0] * jnp.asarray([1.0, 2.0, 3.0])))(x)
        np.testing.assert_allclose(gdac, [[1.0, 2.0, 3.0]], rtol=1e-12)  # x_scale is a constant (max |x| of the row)
        lv = jc.presets.get("reram-neurram").replace(**{"device.levels": 8}).device
        glv = jax.grad(lambda g: jnp.sum(devices.quantize_levels(lv, g)))(jnp.asarray([3e-6, 17e-6, 33e-6]))
        np.testing.assert_allclose(glv, 1.0, rtol=1e-12)


def test_ir_drop_gradient_matches_finite_differences():
    ir = pytest.importorskip("jaxcim.circuit.ir_drop")
    if not hasattr(ir, "column_currents"):
        pytest.skip("jaxcim.circuit.ir_drop.column_currents is not there yet")
    with jax.enable_x64(True):
        rng = np.random.default_rng(2)
        gmax = 40e-6
        gn = jnp.asarray(rng.uniform(0.05, 1.0, (8, 6)))
        v = jnp.asarray(rng.uniform(-0.2, 0.2, (3, 8)))
        # r * g_max = 4e-3: strong enough IR drop for a visibly non-linear map
        f = lambda gn, v: ir.column_currents(gn * gmax, v, r_row=100.0, r_col=100.0) / (0.2 * gmax)
        _fd(f, (gn, v))


def _pipeline_setup(preset, changes):
    cfg = jc.presets.get(preset).replace(**{"dac.bits": 0, "adc.bits": 0, "mapping.rows": 16, "mapping.cols": 8,
                                             **changes})
    rng = np.random.default_rng(4)
    w = jnp.asarray(rng.standard_normal((16, 8)) * 0.1)
    x = jnp.asarray(rng.uniform(-1, 1, (5, 16)))
    m = optimize.init_mapping(cfg, w, ("col_range", "split", "curve", "digital"))
    m = m.replace(col_range=jnp.full(8, 0.8), common_mode=m.common_mode + 0.1,
                  curve=jnp.asarray(rng.uniform(-0.05, 0.05, m.curve.shape)))
    return cfg, w, x, m


@pytest.mark.slow
@pytest.mark.parametrize("preset,changes,t", [
    ("pcm-ibm", {}, 86400.0),  # drift, 1/f read noise, global drift compensation
    ("reram-neurram", {"programming.method": "write_verify"}, 3600.0),  # write-verify, relaxation
])
def test_expected_loss_gradient_matches_finite_differences(preset, changes, t):
    """d E[loss] / d (mapping parameters, weights) through programming, drift, read noise and the digital path."""
    with jax.enable_x64(True):
        cfg, w, x, m = _pipeline_setup(preset, changes)
        keys = jax.random.split(jax.random.key(5), 2)
        scale = jnp.max(jnp.abs(w))  # fixed scale: FD of w must not move max |w|
        loss = jax.jit(lambda m, wn: optimize.expected_loss(cfg, wn * scale, x, keys, mapping=m, times=(t,),
                                                            scale=scale))
        check_grads(loss, (m, w / scale), order=1, modes=("rev",), eps=EPS, atol=1e-6, rtol=1e-5)


def test_gradient_variance_falls_as_one_over_instances():
    cfg = jc.presets.get("reram-neurram").replace(**{"mapping.rows": 16, "mapping.cols": 8})
    rng = np.random.default_rng(6)
    w = jnp.asarray(rng.standard_normal((16, 8)).astype(np.float32) * 0.1)
    x = jnp.asarray(rng.uniform(-1, 1, (8, 16)).astype(np.float32))
    m = optimize.init_mapping(cfg, w, ("col_range", "digital"))
    grad = jax.grad(lambda m, keys: optimize.expected_loss(cfg, w, x, keys, mapping=m, times=(1.0,)))

    def flat_grads(n, repeats, seed):
        keys = jax.random.split(jax.random.key(seed), repeats * n).reshape(repeats, n)
        g = jax.jit(lambda keys: jax.vmap(lambda k: grad(m, k))(keys))(keys)
        return jnp.concatenate([a.reshape(repeats, -1) for a in jax.tree.leaves(g)], axis=1)

    repeats = 200
    v1 = float(jnp.sum(jnp.var(flat_grads(1, repeats, 0), axis=0, ddof=1)))
    v4 = float(jnp.sum(jnp.var(flat_grads(4, repeats, 1), axis=0, ddof=1)))
    # each total variance has relative standard deviation <= sqrt(2 / (repeats - 1)); 3 sigma on the ratio
    tol = 3 * np.sqrt(2) * np.sqrt(2 / (repeats - 1))
    assert abs(v1 / v4 / 4.0 - 1.0) < tol, (v1, v4, v1 / v4)
