"""Tests of jaxcim.circuit.adc: ideal limits, INL/DNL statistics against their analytic values, comparator noise
against the normal CDF, a measured table round trip, energy against the Murmann ADC survey range, the crossbar
read path with a circuit (identical to the ideal quantizer when the circuit is ideal), gradients and bad input."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcim as jc
from jaxcim.circuit import adc as A

LEVELS = 63  # 6-bit unipolar


def test_ideal_circuits_equal_rounding():
    v = jnp.linspace(-2.0, LEVELS + 2.0, 2001)
    ideal = jnp.clip(jnp.round(v), 0, LEVELS)
    for c in (A.SARADC(a_c=0.0), A.FlashADC(), A.RampADC(), A.MeasuredADC(inl=jnp.zeros(LEVELS))):
        p = c.ideal_params((), LEVELS)
        np.testing.assert_array_equal(np.asarray(c.convert(p, v, LEVELS)), np.asarray(ideal), err_msg=type(c).__name__)


def test_flash_dnl_statistics_match_offsets():
    # independent comparator offsets sigma: INL_k ~ N(0, sigma), DNL_k = o_{k+1} - o_k ~ N(0, sqrt(2) sigma)
    c = A.FlashADC(offset=0.2)
    p = c.sample(jax.random.key(0), (400,), LEVELS)
    inl, dnl = A.inl_dnl(c.thresholds(p, LEVELS))
    n = inl.size
    assert float(jnp.std(inl)) == pytest.approx(0.2, abs=4 * 0.2 / math.sqrt(2 * n))
    sd = 0.2 * math.sqrt(2)
    assert float(jnp.std(dnl)) == pytest.approx(sd, abs=4 * sd / math.sqrt(2 * dnl.size))


def test_sar_midscale_dnl_from_capacitor_mismatch():
    # midscale transition: the MSB capacitor (2**(N-1) units) against the other bits (2**(N-1) - 1 units), each unit
    # with relative mismatch s: DNL at midscale ~ N(0, s * sqrt(2**(N-1) + 2**(N-1) - 1)) (Pelgrom law for caps)
    c = A.SARADC(c_unit=1e-15, a_c=0.02)
    p = c.sample(jax.random.key(1), (2000,), LEVELS)
    t = c.thresholds(p, LEVELS)
    _, dnl = A.inl_dnl(t)
    mid = dnl[:, 30]  # T_32 - T_31 - 1: the MSB transition
    expect = 0.02 * math.sqrt(32 + 31)
    assert float(jnp.std(mid)) == pytest.approx(expect, rel=4 / math.sqrt(2 * 2000))
    # other transitions are much better matched than the MSB one
    assert float(jnp.std(dnl[:, 0])) < expect / 3


def test_comparator_noise_transition_is_a_normal_cdf():
    c = A.FlashADC(offset=1e-9, comparator_noise=0.3)
    p = c.ideal_params((), LEVELS)
    v = jnp.full((20000,), 10.5 + 0.3)  # 1 sigma above the 10 -> 11 transition
    code = c.convert(p, v, LEVELS, jax.random.key(2))
    frac = float(jnp.mean(code >= 11))
    expect = 0.5 * (1 + math.erf(1 / math.sqrt(2)))  # Phi(1) = 0.841
    assert frac == pytest.approx(expect, abs=4 * math.sqrt(expect * (1 - expect) / 20000))


def test_measured_table_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    dnl = rng.uniform(-0.3, 0.3, LEVELS - 1)
    path = tmp_path / "adc.csv"
    path.write_text("code,dnl\n" + "\n".join(f"{k + 1},{d}" for k, d in enumerate(dnl)))
    m = A.MeasuredADC.load(path)
    inl, dnl_back = A.inl_dnl(m.thresholds(m.sample(None, (), LEVELS), LEVELS))
    np.testing.assert_allclose(np.asarray(dnl_back), dnl, atol=1e-5)
    np.testing.assert_allclose(np.asarray(inl), np.concatenate([[0], np.cumsum(dnl)]), atol=1e-5)
    with pytest.raises(ValueError, match="adc.bits"):
        m.sample(None, (), 31)
    bad = tmp_path / "bad.csv"
    bad.write_text("code,foo\n1,0\n")
    with pytest.raises(ValueError, match="'inl' or a 'dnl'"):
        A.MeasuredADC.load(bad)


def test_energy_in_murmann_survey_range_and_tradeoffs():
    # Murmann ADC survey (ISSCC/VLSI 1997-2024): Walden FoM of published designs spans ~0.2 fJ/step (best SAR)
    # to ~1 pJ/step; a sensible default SAR must sit inside, near the survey's SAR median (~10-30 fJ/step at 8 b)
    for c in (A.SARADC(), A.FlashADC(), A.RampADC()):
        for bits in (4, 6, 8):
            fom = float(c.energy(bits)) / 2**bits
            assert 0.2e-15 < fom < 1e-12, (type(c).__name__, bits, fom)
    sar = A.SARADC()
    assert float(sar.energy(8)) > float(sar.energy(4))
    # a noisier comparator saves energy; larger (better matched) unit capacitors cost energy and area
    assert float(A.SARADC(comparator_noise=0.5).energy(8)) < float(sar.energy(8))
    assert float(A.SARADC(c_unit=4e-15).energy(8)) > float(sar.energy(8))
    assert float(A.SARADC(c_unit=4e-15).sigma_unit()) == pytest.approx(float(sar.sigma_unit()) / 2)
    assert float(A.FlashADC(offset=0.1).area(6)) == pytest.approx(4 * float(A.FlashADC(offset=0.2).area(6)))
    assert float(A.RampADC().latency(8)) == pytest.approx(16 * float(A.RampADC().latency(4)))


def test_crossbar_read_with_circuits():
    # 12 x 10 weights on 8 x 8 arrays: several tiles in both directions
    cfg = jc.presets.get("ideal").replace(**{"mapping.rows": 8, "mapping.cols": 8, "adc.bits": 6,
                                             "adc.range_mode": "calibrated"})
    w = jax.random.normal(jax.random.key(0), (12, 10))
    x = jax.random.uniform(jax.random.key(1), (4, 12), minval=-1, maxval=1)
    key = jax.random.key(2)
    y0 = jc.simulate(cfg, w, x, key=key)
    ideal = cfg.replace(**{"adc.circuit": A.SARADC(a_c=0.0, comparator_noise=0.0)})
    np.testing.assert_array_equal(np.asarray(jc.simulate(ideal, w, x, key=key)), np.asarray(y0))
    ref = x @ w
    # same circuit class (same compiled program, the circuit's numbers are traced leaves): 30 % unit-capacitor
    # mismatch and 1 LSB comparator noise on 6 bits cost accuracy
    bad = cfg.replace(**{"adc.circuit": A.SARADC(a_c=0.3, comparator_noise=1.0)})
    err = lambda y: float(jnp.linalg.norm(y - ref) / jnp.linalg.norm(ref))  # noqa: E731
    assert err(jc.simulate(bad, w, x, key=key)) > err(y0)
    # config round trip through a dict (study files)
    d = bad.to_dict()["adc"]["circuit"]
    assert d["type"] == "sar" and jc.presets.get("ideal").replace(**{"adc.circuit": d}).adc.circuit == bad.adc.circuit


def test_straight_through_gradient():
    c = A.FlashADC(offset=0.5)
    p = c.sample(jax.random.key(0), (5,), LEVELS)
    g = jax.grad(lambda i: jnp.sum(A.convert_current(c, p, 6, i, 1e-5, unipolar=True)))(jnp.full((5,), 4e-6))
    np.testing.assert_allclose(np.asarray(g), 1.0, rtol=1e-6)  # identity inside the range
    g_out = jax.grad(lambda i: jnp.sum(A.convert_current(c, p, 6, i, 1e-5, unipolar=True)))(jnp.full((5,), 2e-5))
    np.testing.assert_array_equal(np.asarray(g_out), 0.0)  # clipped outside


def test_jit_vmap_and_bad_input():
    c = A.SARADC()
    p = jax.vmap(lambda k: c.sample(k, (4,), LEVELS))(jax.random.split(jax.random.key(0), 3))
    v = jnp.linspace(0, LEVELS, 4)
    out = jax.jit(jax.vmap(lambda q: c.convert(q, v, LEVELS)))(p)
    loop = [c.convert(jax.tree.map(lambda a, i=i: a[i], p), v, LEVELS) for i in range(3)]
    np.testing.assert_array_equal(np.asarray(out), np.asarray(jnp.stack(loop)))
    with pytest.raises(ValueError, match="adc.circuit.c_unit"):
        A.SARADC(c_unit=0.0)
    with pytest.raises(ValueError, match="adc.circuit.type"):
        A.circuit_from_dict({"type": "pipeline"})
    with pytest.raises(KeyError, match="valid"):
        A.circuit_from_dict({"type": "sar", "c_unti": 1e-15})
