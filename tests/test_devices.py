"""Device models against the published check values (aihwkit 1.2 PCMLikeNoiseModel, Joshi 2020, Wan 2022),
independent fits and Monte Carlo moments."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcim as jc
from jaxcim.devices import pcm, reram

G25 = 25e-6


# Published check values of the IBM PCM-like model (Joshi 2020 / aihwkit PCMLikeNoiseModel), x = G / g_max:
# x -> (mu_nu, s_nu, sigma_prog in uS, Qs)
PCM_CHECK = {1.0: (0.049, 0.008, 1.055, 0.0088), 0.1: (0.0601, 0.0229, 0.448, 0.0393),
             0.01: (0.0958, 0.045, 0.283, 0.1756)}


@pytest.mark.parametrize("x", sorted(PCM_CHECK))
def test_pcm_published_check_values(x):
    mu_ref, s_ref, sig_ref, q_ref = PCM_CHECK[x]
    g = jnp.asarray(x * G25)
    mu, s = pcm.drift_nu_stats(g, G25)
    assert float(mu) == pytest.approx(mu_ref, abs=6e-4)
    assert float(s) == pytest.approx(s_ref, abs=6e-4)
    assert float(pcm.programming_sigma(g, G25)) * 1e6 == pytest.approx(sig_ref, abs=1.5e-3)
    assert float(pcm.read_noise_q(g, G25)) == pytest.approx(q_ref, rel=2e-3)


@pytest.mark.parametrize(("t", "factor"), [(3600.0, 0.775), (86400.0, 0.664), (365 * 86400.0, 0.497)])
def test_pcm_drift_published_factors(t, factor):
    assert float(pcm.drift(1.0, 0.049, t)) == pytest.approx(factor, abs=1.5e-3)


def test_pcm_read_noise_counts_from_t0_and_grows_as_sqrt_log():
    """aihwkit's 1/f integral runs from its time origin t0 = 20 s before the end of programming (aihwkit 1.1.0,
    inference/noise/pcm.py, ``apply_drift_noise_to_conductance``): a read at t = 0 already carries noise."""
    g = jnp.asarray(10e-6)
    for t in (0.0, 3600.0):
        expect = 10e-6 * min(0.0088 / 0.4**0.65, 0.2) * math.sqrt(math.log((t + 20.0 + 250e-9) / 500e-9))
        assert float(pcm.read_noise_sigma(g, g, t, G25)) == pytest.approx(expect, rel=1e-5)


def test_reram_wan2022_fits_at_their_times():
    x = np.linspace(0, 1, 11)
    g = jnp.asarray(x * 40e-6)
    for t, coeffs in zip(reram.FIT_TIMES, reram.SIGMA_POLY_US, strict=True):
        expect = np.maximum(np.polynomial.polynomial.polyval(x, coeffs), 0) * 1e-6
        np.testing.assert_allclose(reram.programming_sigma(g, t), expect, rtol=1e-5, atol=1e-12)


def test_reram_interpolates_in_log_time_and_holds_outside():
    g = jnp.asarray([5e-6, 20e-6, 35e-6])
    mid = math.sqrt(1.0 * 86400.0)  # log-time midpoint of the 1 s and 1 day fits
    expect = 0.5 * (reram.programming_sigma(g, 1.0) + reram.programming_sigma(g, 86400.0))
    np.testing.assert_allclose(reram.programming_sigma(g, mid), expect, rtol=1e-5)
    np.testing.assert_allclose(reram.programming_sigma(g, 0.01), reram.programming_sigma(g, 1.0))
    np.testing.assert_allclose(reram.programming_sigma(g, 3e7), reram.programming_sigma(g, 172800.0))


def test_reram_agrees_with_independent_crosssim_cubic_fit():
    """CrossSim's RRAMWan cubic is a separate fit of the same NeuRRAM data (G, sigma in uS, G <= 39.26 uS)."""
    g_us = np.array([5.0, 10.0, 20.0, 30.0, 38.0])
    cubic = 1.536e-4 * g_us**3 - 1.167e-2 * g_us**2 + 0.2374 * g_us + 1.053
    ours = np.asarray(reram.programming_sigma(jnp.asarray(g_us * 1e-6), 1.0)) * 1e6
    # The two fit forms differ most at the top of the range; they agree within 20% of the peak spread.
    assert np.max(np.abs(ours - cubic)) < 0.2 * cubic.max()


def test_programming_noise_monte_carlo_matches_sigma():
    """Std of programmed - target over N cells is within a few sigma/sqrt(2N) of the published sigma."""
    cfg = jc.presets.get("pcm-ibm")
    n = 200_000
    target = jnp.full((n,), 0.5 * G25)
    g, _ = jc.programming.write(cfg, target, jax.random.key(1))
    err = np.asarray(g - target)
    sigma = (0.26348 + 1.9650 * 0.5 - 1.1731 * 0.25) * 1e-6
    assert abs(err.std() / sigma - 1) < 4 / math.sqrt(2 * n)
    assert abs(err.mean()) < 4 * sigma / math.sqrt(n)


def test_pcm_drift_exponents_sampled_with_published_moments():
    dev = jc.presets.get("pcm-ibm").device
    n = 200_000
    nu = np.asarray(jc.devices.sample_time_params(dev, jax.random.key(2), jnp.full((n,), 0.1 * G25)))
    assert abs(nu.mean() - 0.0601) < 4 * 0.0229 / math.sqrt(n) + 6e-4
    assert abs(nu.std() - 0.0229) < 4 * 0.0229 / math.sqrt(2 * n) + 6e-4


def test_fit_custom_recovers_a_known_device():
    g_max = 50e-6
    true_sigma = (0.02, 0.03, -0.02)  # sigma / g_max vs x
    true_mean = (0.0, 0.01)
    rng = np.random.default_rng(0)
    targets = np.repeat(np.linspace(0.05, 1.0, 12) * g_max, 4000)
    x = targets / g_max
    sig = np.polynomial.polynomial.polyval(x, true_sigma) * g_max
    mean = np.polynomial.polynomial.polyval(x, true_mean) * g_max
    prog = targets + mean + sig * rng.standard_normal(targets.size)
    dev = jc.fit_custom(targets, prog, g_max=g_max, degree=2)
    xs = np.linspace(0.05, 1, 7)
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(xs, dev.sigma_poly),
                               np.polynomial.polynomial.polyval(xs, true_sigma), rtol=0.03)
    np.testing.assert_allclose(np.polynomial.polynomial.polyval(xs, dev.mean_poly),
                               np.polynomial.polynomial.polyval(xs, true_mean), atol=1e-3)
    cfg = jc.presets.get("ideal").replace(device=dev)
    g, _ = jc.programming.write(cfg, jnp.full((100_000,), 0.5 * g_max), jax.random.key(0))
    expect = np.polynomial.polynomial.polyval(0.5, true_sigma) * g_max
    assert float(jnp.std(g)) == pytest.approx(expect, rel=0.05)


def test_fit_custom_rejects_bad_tables():
    with pytest.raises(ValueError, match="same length"):
        jc.fit_custom(np.ones(100), np.ones(99))
    with pytest.raises(ValueError, match="at least"):
        jc.fit_custom(np.ones(3), np.ones(3))


def test_multilevel_quantization_of_targets():
    dev = jc.DeviceConfig(model="ideal", g_min=0.0, g_max=30e-6, levels=4)
    g = jnp.asarray([0.0, 4e-6, 6e-6, 16e-6, 29e-6])
    np.testing.assert_allclose(jc.devices.quantize_levels(dev, g), [0, 0, 10e-6, 20e-6, 30e-6], atol=1e-12)
    # straight-through gradient
    assert float(jax.grad(lambda a: jc.devices.quantize_levels(dev, a).sum())(g).sum()) == pytest.approx(5.0)
