"""ReRAM retention over years and temperature (`jaxcim.devices.ReRAMRetention`) and the multi-level error rate, against
the published fits written out again here, the Arrhenius law and the Gaussian overlap of levels (erfc)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxcim as jc
from jaxcim import devices as jd

K_B = 8.617333262e-5  # eV/K
DAY = 86400.0
YEAR10 = 10 * 365.25 * DAY
# NeuRRAM spread fits (Wan et al., Nature 2022) as published in aihwkit 1.1.0 ReRamWan2022NoiseModel.coeff_dic:
# sigma in uS, ascending polynomial in x = G / 40 uS
WAN_2DAYS = (0.782, 20.274, -43.507, 37.062, -11.934)
WAN_1S = (0.348, 16.030, -43.853, 45.393, -16.815)
# aihwkit 1.1.0 ReRamCMONoiseModel.decay_dict: mean and std slopes in uS per e-fold of time
CMO_MEAN, CMO_STD = -0.08900206, 0.04201137


def _af(temperature, ea=1.0, t_ref=298.15):
    return math.exp(ea / K_B * (1.0 / t_ref - 1.0 / temperature))


def _published_level(g_us, t_eq):
    """(mean shift, standard deviation) in uS of a level programmed to g_us (g_max = 40 uS) after t_eq >= 2 days at
    the reference temperature: the 2-day NeuRRAM spread, then the CMO/HfOx log-time slopes."""
    x = g_us / 40.0
    lt = math.log(t_eq / (2 * DAY))
    return CMO_MEAN * lt, np.polynomial.polynomial.polyval(x, WAN_2DAYS) + CMO_STD * lt


def test_reference_temperature_up_to_two_days_is_the_neurram_model():
    wan = jd.ReRAMWan2022(g_min=2e-6, g_max=40e-6)
    ret = jd.ReRAMRetention(g_min=2e-6, g_max=40e-6)
    g = jnp.linspace(2e-6, 40e-6, 64)
    params = jd.sample_time_params(ret, jax.random.key(1), g)
    np.testing.assert_array_equal(params, jd.sample_time_params(wan, jax.random.key(1), g))
    times = jnp.asarray([0.0, 1.0, 3600.0, DAY, 2 * DAY, 30 * DAY])
    aged = jax.jit(jax.vmap(lambda dev, t: jd.at_time(dev, g * 1.02, g, params, t), in_axes=(None, 0)))
    ours, neurram = np.asarray(aged(ret, times)), np.asarray(aged(wan, times))
    np.testing.assert_array_equal(ours[:5], neurram[:5])
    assert not np.array_equal(ours[5], neurram[5])  # beyond the fits the levels keep moving
    # a model without thermal activation ignores the temperature
    np.testing.assert_array_equal(aged(wan.replace(temperature=358.15), times), neurram)


def test_arrhenius_equivalence_is_exact():
    """t seconds at T age a cell as much as t * AF seconds at T_ref, AF from the Arrhenius law (float64)."""
    with jax.enable_x64(True):
        dev = jd.ReRAMRetention(g_min=2e-6, g_max=40e-6)
        g = jnp.linspace(2e-6, 40e-6, 16, dtype=jnp.float64)
        params = jd.sample_time_params(dev, jax.random.key(0), g)
        aged = jax.jit(jax.vmap(lambda temp, t: jd.at_time(dev.replace(temperature=temp), g, g, params, t)))
        temps, times = np.array([358.15, 358.15, 398.15, 273.15]), np.array([3600.0, YEAR10, 60.0, 1e7])
        hot = aged(jnp.asarray(temps), jnp.asarray(times))
        ref = aged(jnp.full(4, 298.15), jnp.asarray(times * np.array([_af(temp) for temp in temps])))
        np.testing.assert_allclose(hot, ref, rtol=1e-12, atol=0)
        assert float(jd.retention.acceleration(358.15)) == pytest.approx(_af(358.15), rel=1e-12)
        assert _af(358.15) == pytest.approx(679.0, rel=2e-3)  # 1 eV between 25 C and 85 C
        # differentiable in the temperature and the activation energy (fit them to bakes)
        check_grads(jax.jit(lambda temp, ea: jd.at_time(dev.replace(temperature=temp * 300.0, activation_energy=ea),
                                                        g, g, params, YEAR10) / dev.g_max), (1.2, 1.0), order=1,
                    modes=["rev"])


def test_ten_years_at_85c_moments_follow_the_published_slopes():
    """Monte Carlo mean and std of levels after 10 years at 85 C (open-loop programming, no read) against the
    published 2-day NeuRRAM spread continued by the CMO/HfOx slopes, in log equivalent time."""
    dev = jd.ReRAMRetention(g_min=2e-6, g_max=40e-6, temperature=358.15)
    n = 50_000
    levels_us = np.array([15.0, 25.0, 38.0])  # >= 3 sigma above 0 S: the clamp at 0 is negligible
    targets = jnp.repeat(jnp.asarray(levels_us * 1e-6, jnp.float32), n)

    @jax.jit
    def aged(dev):
        g_prog, _ = jc.programming.write(jc.CrossbarConfig(device=dev), targets, jax.random.key(0))
        return jd.at_time(dev, g_prog, targets, jd.sample_time_params(dev, jax.random.key(1), targets), YEAR10)

    g = np.asarray(aged(dev), np.float64).reshape(3, n) * 1e6
    t_eq = YEAR10 * _af(358.15)
    for level, sample in zip(levels_us, g, strict=True):
        shift, sigma = _published_level(level, t_eq)
        assert abs(sample.mean() - level - shift) < 4 * sigma / math.sqrt(n)
        assert abs(sample.std() / sigma - 1) < 4 / math.sqrt(2 * n)
    assert abs(shift) > 1.0  # the levels have moved by more than 1 uS: the test sees the retention terms


def _gaussian_level_error(levels, g_min_us, g_max_us, temperature, t):
    """Per-level error rate of Gaussian levels (published spreads and shifts) decoded at mid-level thresholds."""
    nominal = np.linspace(g_min_us, g_max_us, levels)
    half = (nominal[1] - nominal[0]) / 2
    out = []
    for i, g in enumerate(nominal):
        shift, sigma = _published_level(g, t * _af(temperature))
        below = 0.5 * math.erfc((g + shift - (g - half)) / (math.sqrt(2) * sigma)) if i > 0 else 0.0
        above = 0.5 * math.erfc(((g + half) - (g + shift)) / (math.sqrt(2) * sigma)) if i < levels - 1 else 0.0
        out.append(below + above)
    return np.array(out)


@pytest.fixture(scope="module")
def quiet_reads():
    """The retention model without read noise (its levels are then exactly Gaussian) in a 10-40 uS window."""
    return jd.ReRAMRetention(g_min=10e-6, g_max=40e-6, read_noise_scale=0.0)


def test_level_error_rate_is_the_gaussian_overlap(quiet_reads):
    cells = 20_000
    rate = jax.jit(jax.vmap(lambda t, temp: jc.level_error_rate(quiet_reads, 4, t, temp, key=jax.random.key(3),
                                                                cells_per_level=cells, per_level=True)))
    times = np.array([30 * DAY, YEAR10, YEAR10])
    temps = np.array([298.15, 298.15, 358.15])
    got = np.asarray(rate(jnp.asarray(times), jnp.asarray(temps)))
    for row, t, temp in zip(got, times, temps, strict=True):
        expect = _gaussian_level_error(4, 10.0, 40.0, temp, t)
        assert np.all(np.abs(row - expect) <= 4 * np.sqrt(expect * (1 - expect) / cells) + 1e-4), (row, expect)
    assert np.all(np.diff(got.mean(axis=1)) > 0)  # later and hotter: more errors
    # closer levels (8 in the same window) fail first; the mean over levels is the default
    eight = jc.level_error_rate(quiet_reads, 8, times[2], temps[2], key=jax.random.key(3), cells_per_level=cells)
    assert float(eight) > float(got[2].mean()) + 0.05


def test_bad_input_is_named(quiet_reads):
    with pytest.raises(ValueError, match="levels"):
        jc.level_error_rate(quiet_reads, 1, 1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="device.temperature"):
        jc.level_error_rate(quiet_reads, 4, 1.0, -5.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="device.activation_energy"):
        jd.ReRAMRetention(activation_energy=-1.0)


def test_temperature_is_a_read_keyword_and_a_toml_field(tmp_path):
    """`jc.simulate(..., temperature=)` replaces the device leaf; a TOML `temperature` sets it."""
    toml = tmp_path / "hot.toml"
    toml.write_text('preset = "reram-neurram"\n[device]\nmodel = "reram-retention"\ntemperature = 358.15\n'
                    '[mapping]\nrows = 32\ncols = 8\n')
    hot = jc.load_config(toml)
    assert isinstance(hot.device, jd.ReRAMRetention) and hot.device.temperature == 358.15
    cool = hot.replace(**{"device.temperature": 298.15})
    w = (np.random.default_rng(0).standard_normal((40, 12)) / 6).astype(np.float32)
    x = np.random.default_rng(1).uniform(-1, 1, (4, 40)).astype(np.float32)
    y_hot = jc.simulate(hot, w, x, key=jax.random.key(0), t=YEAR10)
    np.testing.assert_array_equal(y_hot, jc.simulate(cool, w, x, key=jax.random.key(0), t=YEAR10, temperature=358.15))
    assert not np.array_equal(y_hot, jc.simulate(cool, w, x, key=jax.random.key(0), t=YEAR10))
