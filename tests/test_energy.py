"""Tests of jaxcim.energy: published ADC energies, hand-calculated array/driver energies and event counts,
the published-macro validation bands, jit/vmap/grad, bad input, the Pareto front and the CLI handlers."""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcim as jc
from jaxcim import cli_energy
from jaxcim.energy import HardwareConfig, Workload, adc_energy, counts, estimate, macros, pareto


def _ideal(**changes):
    cfg = jc.presets.get("ideal").replace(**{"device.g_min": 0.0, "device.g_max": 40e-6})
    return cfg.replace(**changes)


# ----------------------------------------------------------------------------------------- ADC models


def test_sar_model_reproduces_neurosim_22nm_energies():
    hw = HardwareConfig()
    # NeuroSim V1.4 SAR ADC model at 22 nm: ~33 fJ at 4 bits, ~42 fJ at 5 bits
    assert float(adc_energy(hw, 4)) == pytest.approx(33e-15, rel=0.03)
    assert float(adc_energy(hw, 5)) == pytest.approx(42e-15, rel=0.03)


def test_walden_model_is_fom_times_two_to_enob():
    hw = HardwareConfig(adc_model="walden", adc_fom=25e-15)  # Murmann survey median SAR
    assert float(adc_energy(hw, 8)) == pytest.approx(25e-15 * 256, rel=1e-6)


# ----------------------------------------------------------------------------------------- hand calculations


def test_array_energy_is_sum_v2_g_t_by_hand():
    # w = [[1, -0.5], [0.25, 0]], differential, g_max 40 uS: G+ = [[40, 0], [10, 0]] uS, G- = [[0, 20], [0, 0]] uS
    cfg = _ideal(**{"mapping.rows": 2, "mapping.cols": 2, "dac.v_read": 0.2})
    w = jnp.array([[1.0, -0.5], [0.25, 0.0]])
    x = jnp.array([[1.0, 0.5]])
    hw = HardwareConfig(t_read=10e-9)
    st = jc.program(cfg, w, key=jax.random.key(0))
    hand = (0.2**2 * 60e-6 + 0.1**2 * 10e-6) * 10e-9  # V_i^2 * sum_j G_ij * t, = 2.5e-14 J
    r_state = estimate(cfg, Workload(2, 2), hw, state=st, x=x)
    r_w = estimate(cfg, Workload(2, 2), hw, w=w, x=x)
    assert float(r_state.array) == pytest.approx(hand, rel=1e-5)
    assert float(r_w.array) == pytest.approx(hand, rel=1e-5)


def test_pwm_and_bit_serial_array_energy_by_hand():
    cfg = _ideal(**{"mapping.rows": 2, "mapping.cols": 2, "dac.v_read": 0.2, "dac.bits": 2,
                    "dac.signed": False})
    w = jnp.array([[1.0, 0.0], [1.0, 0.0]])  # 40 uS on each row's G+ column 0
    x = jnp.array([[1.0, 1.0 / 3.0]])  # 2-bit codes 3 and 1
    t = 10e-9
    g = 40e-6
    # PWM: level 1 and 1/3 of a full-amplitude pulse
    pwm = estimate(cfg, Workload(2, 2), HardwareConfig(t_read=t, input_encoding="pwm"), w=w, x=x)
    assert float(pwm.array) == pytest.approx(0.04 * g * t * (1 + 1 / 3), rel=1e-5)
    # bit-serial: code 3 = bits (1, 1), code 1 = bits (1, 0): three full-voltage pulses
    bs = estimate(cfg, Workload(2, 2), HardwareConfig(t_read=t, input_bits_per_cycle=1), w=w, x=x)
    assert float(bs.array) == pytest.approx(0.04 * g * t * 3, rel=1e-5)
    # amplitude, both bits at once: V^2 scales with level^2
    amp = estimate(cfg, Workload(2, 2), HardwareConfig(t_read=t), w=w, x=x)
    assert float(amp.array) == pytest.approx(0.04 * g * t * (1 + 1 / 9), rel=1e-5)


def test_counts_latency_and_adc_energy_by_hand():
    cfg = _ideal(**{"dac.bits": 8, "dac.signed": False, "dac.bit_serial": True, "adc.bits": 5})
    hw = HardwareConfig(rows_per_read=16, adc_share=8, t_read=10e-9, t_adc_bit=1e-9)
    wl = Workload(300, 200)  # 2 row tiles x 1 column tile of 256 x 256
    c = counts(cfg, hw, wl)
    assert (c["row_tiles"], c["col_tiles"], c["cycles"], c["groups"]) == (2, 1, 8, 16)
    # only rows and columns holding the layer are read: tile 1 has 256 rows (16 groups of 16), tile 2 has 44 rows
    # (3 groups); 200 of the 256 columns hold weights
    assert (c["used_groups"], c["used_cols"]) == (16 + 3, 200)
    assert c["conversions"] == 8 * (16 + 3) * 200
    r = estimate(cfg, wl, hw)
    # the fullest array sets the time: 16 groups per cycle, 200 columns on 256 / 8 = 32 ADCs = 7 conversions each
    assert float(r.latency_mvm) == pytest.approx(8 * 16 * (10e-9 + 7 * 5e-9), rel=1e-6)
    assert float(r.adc) == pytest.approx(c["conversions"] * 42e-15, rel=0.03)
    assert float(r.ops) == 2 * 300 * 200
    assert float(r.tops_per_w) == pytest.approx(2 * 300 * 200 / float(r.total) / 1e12, rel=1e-5)


def test_layers_smaller_than_their_arrays_pay_for_the_lines_they_use():
    cfg = _ideal()  # 256 x 256 differential arrays
    hw = HardwareConfig(c_col_per_cell=0.2e-15, rows_per_read=64)
    c = counts(cfg, hw, Workload(100, 10))
    cyc, s = c["cycles"], c["slices"]
    # 100 input rows fill 2 of the 4 groups of 64 rows; 10 outputs fill 10 of 256 columns
    assert (c["used_groups"], c["used_cols"]) == (2, 10)
    assert c["conversions"] == cyc * 2 * s * 10
    r = estimate(cfg, Workload(100, 10), hw)
    # each group read charges 2 x 10 bit lines (G+ and G-) of 256 cells to v_read
    v = cfg.dac.v_read
    assert float(r.lines) == pytest.approx(cyc * 2 * s * 20 * 256 * 0.2e-15 * v**2, rel=1e-6)
    # a one-column layer costs 1/256 of a full array's conversions and bit lines, and the same row drive per row
    full, one = estimate(cfg, Workload(256, 256), hw), estimate(cfg, Workload(256, 1), hw)
    assert float(full.adc) == pytest.approx(256 * float(one.adc), rel=1e-6)
    assert float(full.lines) == pytest.approx(256 * float(one.lines), rel=1e-6)
    assert float(full.dac) == pytest.approx(float(one.dac), rel=1e-6)


def test_driver_energy_by_hand():
    cfg = _ideal(**{"mapping.rows": 4, "mapping.cols": 3, "dac.bits": 3, "dac.signed": False})
    hw = HardwareConfig(c_row_per_cell=0.1e-15, dac_c_unit=1e-15, v_wordline=1.0)
    x = jnp.array([[1.0, 0.0, 3 / 7, 0.0]])  # two driven rows, one 3-bit cycle
    r = estimate(cfg, Workload(4, 3), hw, w=jnp.ones((4, 3)), x=x)
    # each driven row: 2 * 3 physical columns (G+ and G-) * 0.1 fF + (2**3 - 1) * 1 fF DAC units, at 1 V
    assert float(r.dac) == pytest.approx(2 * (6 * 0.1e-15 + 7e-15), rel=1e-5)


def test_statistics_match_actual_uniform_inputs():
    cfg = _ideal(**{"dac.bits": 8, "dac.signed": False, "dac.bit_serial": True})
    key_w, key_x = jax.random.split(jax.random.key(1))
    w = jax.random.uniform(key_w, (256, 256), minval=-1, maxval=1)
    x = jax.random.uniform(key_x, (256, 256))
    actual = estimate(cfg, Workload(256, 256), w=w, x=x)
    stats = estimate(cfg, Workload(256, 256, input_mean_abs=0.5, weight_mean_abs=0.5))
    # uniform inputs: every bit plane has density 1/2; uniform weights: mean |w| / max|w| = 1/2 (5 sigma ~ 2 %)
    assert float(stats.array) == pytest.approx(float(actual.array), rel=0.03)
    assert float(stats.dac) == pytest.approx(float(actual.dac), rel=0.03)


def test_rows_per_read_cost_more_conversions_and_time():
    cfg = jc.presets.get("reram-neurram")
    full = estimate(cfg, Workload(256, 256))
    k64 = estimate(cfg, Workload(256, 256), HardwareConfig(rows_per_read=64))
    assert float(k64.conversions) == 4 * float(full.conversions)
    assert float(k64.array) == pytest.approx(float(full.array), rel=1e-6)  # each row still driven once
    assert float(k64.adc) == pytest.approx(4 * float(full.adc), rel=1e-6)


def test_network_sums_layers():
    cfg = jc.presets.get("reram-neurram")
    a, b = Workload(256, 128, mvms=3), Workload(128, 10)
    ra, rb, rn = estimate(cfg, a), estimate(cfg, b), estimate(cfg, [a, b])
    assert float(rn.energy) == pytest.approx(3 * float(ra.total) + float(rb.total), rel=1e-5)
    assert float(rn.ops) == 3 * 2 * 256 * 128 + 2 * 128 * 10
    assert float(rn.area) == pytest.approx(float(ra.area) + float(rb.area), rel=1e-5)


# ----------------------------------------------------------------------------------------- published macros


_ROWS = macros.validate()
_OUT_OF_BAND_HELD_OUT = {"Khwa ISSCC 2022", "NeuRRAM, 8b in / 10b out"}  # below the band; the gaps: each row's notes


@pytest.mark.parametrize("row", [r for r in _ROWS if r["status"] != "held-out"], ids=lambda r: r["name"])
def test_fitted_macros_within_one_band(row):
    # one band for all (0.5x-2x of the published TOPS/W), one hardware parameter set per node
    assert row["band"] == (0.5, 2.0)
    assert row["within"], f"{row['name']}: jaxcim {row['jaxcim']:.3g}, {row['ratio']:.2f}x of {row['published']}"


@pytest.mark.parametrize("row", [pytest.param(r, marks=pytest.mark.xfail(
    r["name"] in _OUT_OF_BAND_HELD_OUT, strict=True, reason="held-out macro outside 0.5-2x (reported)"))
    for r in _ROWS if r["status"] == "held-out"], ids=lambda r: r["name"])
def test_held_out_macros_within_one_band(row):
    assert row["within"], f"{row['name']}: jaxcim {row['jaxcim']:.3g} ({row['ratio']:.2f}x of the published figure)"


def test_held_out_are_the_named_ones_and_a_third():
    held = {r["name"] for r in _ROWS if r["status"] == "held-out"}
    assert held == set(macros.HELD_OUT) | set(macros.ADDED_AFTER_FIT)
    sources = {r["source"].split(",")[0] for r in _ROWS if r["status"] != "not verified"}
    assert len(held) >= len(sources) / 3
    assert len({r["name"] for r in macros.validate(include_unverified=True)}) >= 8


def test_at_least_eight_verified_papers_over_nodes_and_technologies():
    # issue 17: >= 8 published macros with a verified figure, ReRAM and PCM, binary and multi-bit inputs, several nodes
    ms = [m for m in macros.macros() if m.status in (macros.FIT, macros.HELD)]
    papers = {",".join(m.source.split(",")[:2]) for m in ms}
    assert len(papers) >= 8, sorted(papers)
    assert {m.technology for m in ms} == {"ReRAM", "PCM"}
    assert len({m.node for m in ms}) >= 5
    assert {m.cfg.dac.bits == 1 for m in ms} == {True, False}
    assert all(m.published_tops_per_w or m.published_range for m in ms)
    held = {",".join(m.source.split(",")[:2]) for m in ms if m.status == macros.HELD}
    assert len(held) >= len(papers) / 3 - 1e-9


def test_held_out_gaps_sit_in_the_conversion_terms():
    rows = {r["name"]: r for r in _ROWS}
    khwa = rows["Khwa ISSCC 2022"]
    # Yoon: the eight computed bit lines of a 256-column array are the only ones converted (1-bit inputs, all
    # rows at once: 8 conversions per MVM); converting all 256 had put the row at 0.22x (benchmarks/README.md)
    m = next(m for m in macros.macros() if m.name == "Yoon ISSCC 2021")
    assert counts(m.cfg, m.hw, m.workload)["conversions"] == 8
    # Khwa: 4 slices x 8 bit-serial cycles x 16 row groups = 512 conversions per output, and the per-conversion
    # items (readout, ADC, shift-and-add) hold nearly all of the energy
    m = next(m for m in macros.macros() if m.name == "Khwa ISSCC 2022")
    c = counts(m.cfg, m.hw, m.workload)
    assert c["conversions"] == 4 * 8 * 16 * 256
    assert khwa["shares"]["sense"] + khwa["shares"]["adc"] + khwa["shares"]["digital"] > 0.9


def test_neurram_gap_sits_in_the_cell_joule_term():
    rows = {r["name"]: r for r in _ROWS}
    low, high = rows["NeuRRAM, 1b in / 3b out"], rows["NeuRRAM, 8b in / 10b out"]
    assert low["within"] and not high["within"]
    assert high["dominant"] == "array" and high["within_without_dominant"]
    # 2 phases x (2**4 - 1) pulse slots at half of full scale on average vs one slot: 15x the cell energy per MVM
    m = {m.name: m for m in macros.macros()}
    c_low, c_high = (counts(m[n].cfg, m[n].hw, m[n].workload) for n in (low["name"], high["name"]))
    assert (c_low["cycles"], c_high["cycles"]) == (1, 2)
    assert m[high["name"]].hw.t_read == pytest.approx(15 * m[low["name"]].hw.t_read)


def test_neurosim_difference_is_the_cell_joule_term():
    row = next(r for r in _ROWS if r["name"].startswith("NeuroSim"))
    # in NeuroSim's convention (bit-line/word-line charging, no cell V^2 G t) within the band ...
    assert 0.5 <= row["ratio_no_cell_joule"] <= 2.0
    # ... and the whole remaining gap is the cell Joule term, which NeuroSim leaves out
    assert row["ratio_with_cell_joule"] < 0.1 and row["shares"]["array"] > 0.9


def test_hermes_throughput_within_the_band():
    # 63.1 / 16.1 TOPS over 64 cores (Le Gallo et al. 2023); jaxcim: one 256x256 MVM per core in the 127 ns PWM window
    # of 8-bit inputs on a 1 GHz clock (assumed, not fitted) plus the CCO conversion
    for r in (r for r in _ROWS if r["name"].startswith("IBM HERMES")):
        assert r["tops_within"], f"{r['name']}: {r['jaxcim_tops']:.3g} TOPS vs {r['published_tops']}"
        assert r["jaxcim_tops"] == pytest.approx(64 * 2 * 256 * 256 / r["latency_mvm"] / 1e12, rel=1e-6)


def test_hermes_phases_scale_as_published():
    # four-phase reads cost 4x the one-phase energy: 9.76 / 2.48 = 3.94 TOPS/W (Le Gallo et al. 2023)
    one, four = (next(r for r in _ROWS if r["name"].startswith("IBM HERMES, 8b " + p)) for p in ("one", "four"))
    assert one["jaxcim"] / four["jaxcim"] == pytest.approx(9.76 / 2.48, rel=0.05)


# ----------------------------------------------------------------------------------------- JAX transforms


def test_jit_vmap_grad():
    cfg = _ideal(**{"mapping.rows": 8, "mapping.cols": 8})
    w = jax.random.normal(jax.random.key(0), (8, 8))
    x = jax.random.uniform(jax.random.key(1), (4, 8))
    wl = Workload(8, 8)
    st = jc.program(cfg, w, key=jax.random.key(2))
    f = lambda s: estimate(cfg, wl, state=s, x=x).total
    assert float(jax.jit(f)(st)) == pytest.approx(float(f(st)), rel=1e-6)
    states = jax.vmap(lambda k: jc.program(cfg, w, key=k))(jax.random.split(jax.random.key(3), 3))
    batched = jax.vmap(f)(states)
    loop = [float(f(jax.tree.map(lambda a, i=i: a[i], states))) for i in range(3)]
    np.testing.assert_allclose(np.asarray(batched), loop, rtol=1e-6)
    # dE/dG_ij = V^2 u_i^2 t_read (mean over the batch), analytically
    g = jax.grad(lambda s: estimate(cfg, wl, state=s, x=x).array, allow_int=True)(st)
    u = x / jnp.max(jnp.abs(x), axis=1, keepdims=True)
    expect = 0.2**2 * jnp.mean(u**2, axis=0) * 10e-9
    np.testing.assert_allclose(np.asarray(g.g_pos[0, 0, 0, :, 0]), np.asarray(expect), rtol=1e-5)
    # grad w.r.t. weights and a hardware leaf
    gw = jax.grad(lambda ww: estimate(cfg, wl, w=ww, x=x).total)(w)
    assert gw.shape == w.shape and bool(jnp.all(jnp.isfinite(gw)))
    gt = jax.grad(lambda t: estimate(cfg, wl, HardwareConfig(t_read=t)).array)(10e-9)
    assert float(gt) == pytest.approx(float(estimate(cfg, wl).array) / 10e-9, rel=1e-5)


# ----------------------------------------------------------------------------------------- bad input


def test_bad_input():
    cfg = jc.presets.get("reram-neurram")
    with pytest.raises(ValueError, match="hardware.rows_per_read"):
        estimate(cfg, Workload(), HardwareConfig(rows_per_read=512))
    with pytest.raises(TypeError, match="HardwareConfig"):
        estimate(cfg, Workload(), hw=cfg)
    with pytest.raises(TypeError, match="CrossbarConfig"):
        estimate(Workload(), Workload())
    with pytest.raises(ValueError, match="workload.in_features"):
        estimate(cfg, Workload(256, 256), x=jnp.ones((2, 10)))
    with pytest.raises(ValueError, match="workload.input_density"):
        Workload(input_density=1.5)
    with pytest.raises(ValueError, match="hardware.adc_model"):
        HardwareConfig(adc_model="pipeline")
    with pytest.raises(ValueError, match="hardware.t_read"):
        HardwareConfig(t_read=-1.0)
    with pytest.raises(ValueError, match="input_bits_per_cycle"):
        estimate(cfg, Workload(), HardwareConfig(input_bits_per_cycle=9))
    with pytest.raises(KeyError, match="valid keys"):
        HardwareConfig().replace(t_reed=1.0)


# ----------------------------------------------------------------------------------------- Pareto and CLI


def test_pareto_front_by_hand():
    mask = pareto.pareto_front([10, 20, 30, 15, 30], [0.1, 0.2, 0.3, 0.3, 0.25])
    assert mask.tolist() == [True, True, False, False, True]


def test_sweep_small():
    cfg = _ideal(**{"mapping.rows": 16, "mapping.cols": 8, "dac.bits": 8})
    w = jax.random.normal(jax.random.key(0), (16, 8))
    x = jax.random.uniform(jax.random.key(1), (8, 16), minval=-1, maxval=1)
    res = pareto.sweep(cfg, HardwareConfig(), {"adc.bits": [3, 10]}, w, x, key=jax.random.key(2), instances=2)
    assert [r["adc.bits"] for r in res] == [3, 10]
    # ideal device, full-scale ADC range: quantization error scales as 2**-bits, 7 bits apart
    assert res[1]["error"] < res[0]["error"] / 10
    assert res[0]["tops_per_w"] > res[1]["tops_per_w"]


STUDY = """
[crossbar]
preset = "reram-neurram"
[crossbar.mapping]
rows = 32
cols = 32
[hardware]
preset = "generic-22nm-reram"
rows_per_read = 16
[workload]
in_features = 32
out_features = 16
[pareto]
"adc.bits" = [4, 8]
instances = 2
batch = 4
"""


def test_cli_handlers(tmp_path, capsys):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    p = argparse.ArgumentParser()
    cli_energy.add_energy_arguments(p)
    assert cli_energy.energy_command(p.parse_args([str(path), "--json", str(tmp_path / "e.json")])) == 0
    out = capsys.readouterr().out
    assert "TOPS/W" in out and (tmp_path / "e.json").exists()
    p = argparse.ArgumentParser()
    cli_energy.add_pareto_arguments(p)
    assert cli_energy.pareto_command(p.parse_args([str(path)])) == 0
    assert "front" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text("[crossbar]\n[workload]\nin_features = 0\nout_features = 1\n")
    p = argparse.ArgumentParser()
    cli_energy.add_energy_arguments(p)
    assert cli_energy.energy_command(p.parse_args([str(bad)])) == 2
    assert "workload.in_features" in capsys.readouterr().err


def test_energy_cli_accepts_embedded_studies(capsys):
    p = argparse.ArgumentParser()
    cli_energy.add_energy_arguments(p)
    for name in ("energy", "mvm", "classifier", "pareto"):  # every shipped study has an energy account
        assert cli_energy.energy_command(p.parse_args([name])) == 0, capsys.readouterr().err
        assert "TOPS/W" in capsys.readouterr().out
    assert cli_energy.energy_command(p.parse_args([])) == 0  # default: the embedded energy study
    assert "22 nm" in capsys.readouterr().out
    assert cli_energy.energy_command(p.parse_args(["no-such-study"])) == 2
    assert "embedded studies" in capsys.readouterr().err


NET_STUDY = """
seed = 0
[crossbar]
preset = "reram-neurram"
[hardware]
node_nm = 22
[model]
features = [64, 8, 10]
[train]
epochs = 4
[pareto]
instances = 3
times = [1.0, 31557600.0]
array = [64]
"adc.bits" = [3, 8]
"hw.input_encoding" = ["amplitude", "pwm"]
"dac.v_read" = [0.1, 0.2]
"""


def test_pareto_network_cli_tiny_grid(tmp_path, capsys):
    path = tmp_path / "net.toml"
    path.write_text(NET_STUDY)
    p = argparse.ArgumentParser()
    cli_energy.add_pareto_arguments(p)
    out_json = tmp_path / "p.json"
    assert cli_energy.pareto_command(p.parse_args([str(path), "--json", str(out_json)])) == 0, \
        capsys.readouterr().err
    captured = capsys.readouterr()
    text = captured.out
    # 8 configurations, 2 accuracy evaluations (3 and 8 bits): encoding and read voltage share them
    assert "accuracy evaluations: 2" in captured.err and "accuracy evaluations: 3" not in captured.err
    assert "digital accuracy" in text and ("best at >= 200" in text or "no configuration reaches" in text)
    import json

    res = json.loads(out_json.read_text())
    assert len(res) == 8 and all(len(r["loss"]) == 2 and len(r["ci95"]) == 2 for r in res)
    low = {(r["adc.bits"], r["hw.input_encoding"]): r for r in res if r["dac.v_read"] == 0.1}
    by = {(r["adc.bits"], r["hw.input_encoding"]): r for r in res if r["dac.v_read"] == 0.2}
    # the input encoding and (ideal circuit, calibrated ADC) the read voltage change energy only: one accuracy
    # evaluation (same chips) serves them all, and the lower read voltage is more efficient
    assert by[3, "amplitude"]["accuracy"] == by[3, "pwm"]["accuracy"] == low[3, "pwm"]["accuracy"]
    assert low[8, "pwm"]["tops_per_w"] > by[8, "pwm"]["tops_per_w"]
    assert by[8, "pwm"]["tops_per_w"] != by[8, "amplitude"]["tops_per_w"]
    # a 3-bit readout costs accuracy and saves energy against 8 bits (same chips, same times)
    assert by[3, "amplitude"]["loss"][0] > by[8, "amplitude"]["loss"][0]
    assert by[3, "amplitude"]["tops_per_w"] > by[8, "amplitude"]["tops_per_w"]
    # loss = digital accuracy - mean accuracy over chips, in points
    r = by[8, "amplitude"]
    assert r["loss"][0] == pytest.approx(r["digital_accuracy"] - r["accuracy"][0], abs=1e-9)
    assert pareto.label(r, ["array", "adc.bits", "hw.input_encoding"]) == "64x64 8b amp"
    assert pareto.best_at_target(res, target=1e9) is None
    assert pareto.best_at_target(res, target=0.0)["loss"][-1] == min(x["loss"][-1] for x in res)


def test_efficiency_gradients_are_analytic_elasticities():
    cfg = jc.presets.get("reram-neurram")
    hw = jc.energy.node_hardware(22e-9)
    wl = Workload(256, 256)
    g = pareto.efficiency_gradients(cfg, hw, wl)
    r = estimate(cfg, wl, hw)
    share = lambda *items: sum(float(getattr(r, k)) for k in items) / float(r.total)  # noqa: E731
    # cell Joule and bit-line energies ~ V_read**2; the cells' also ~ G and ~ t_read
    assert g["dac.v_read"] == pytest.approx(-2 * share("array", "lines"), rel=1e-3)
    # g_max moves the cell conductances (g_min fixed): d log E_array / d log g_max = g_max / (g_max - g_min) share
    assert -share("array") * 1.1 < g["device.g_max"] < 0
    assert g["hw.t_read"] == pytest.approx(-share("array"), rel=1e-3)


# ----------------------------------------------------------------------------------------- knob refinement

REFINE_CFG = dict(**{"mapping.rows": 32, "mapping.cols": 32, "dac.bits": 8, "adc.bits": 4,
                     "adc.range_mode": "calibrated", "adc.offset_sigma": 0.3})


def _refine_problem():
    cfg = _ideal(**REFINE_CFG)
    w = jax.random.normal(jax.random.key(0), (32, 32))
    x = jax.random.uniform(jax.random.key(1), (16, 32), minval=-1, maxval=1)
    return cfg, jc.energy.node_hardware(22e-9), w, x


def test_refine_moves_knobs_along_the_elasticities_and_lowers_the_objective():
    cfg, hw, w, x = _refine_problem()
    knobs = ("dac.v_read", "device.g_max", "adc.margin")

    def log_tpw(lv):  # the efficiency elasticities, straight from estimate
        c = cfg.replace(**{"dac.v_read": jnp.exp(lv[0]), "device.g_max": jnp.exp(lv[1])})
        return jnp.log(estimate(c, Workload(32, 32), hw, w=w, x=x).tops_per_w)

    lv0 = jnp.log(jnp.array([0.2, 40e-6]))
    value, elasticity = jax.jit(jax.value_and_grad(log_tpw))(lv0)
    elasticity = np.asarray(elasticity)
    target = 1.3 * float(jnp.exp(value))
    res = pareto.refine(cfg, hw, w, x, key=jax.random.key(2), knobs=knobs, steps=8, n_instances=4, target=target)
    # Ideal cells with g_min = 0 on a linear circuit with a calibrated ADC: every current and the ADC range scale
    # with v_read and g_max, so the error does not depend on them (analytically) and the gradient is the
    # efficiency penalty's alone: d/dlog(knob) of weight / (2 tau) * gap**2 = weight * gap / tau * (-elasticity)
    gap = np.log(target) - np.log(res.tops_per_w_start)
    penalty = 10.0 * gap / jc.energy.knobs.TAU
    assert res.gradient_start["dac.v_read"] == pytest.approx(-penalty * elasticity[0], rel=1e-3)
    assert res.gradient_start["device.g_max"] == pytest.approx(-penalty * elasticity[1], rel=1e-3)
    assert elasticity[0] < 0 and elasticity[1] < 0
    # lower read voltage and conductances raise TOPS/W: the descent lowers both towards the target
    assert res.values["dac.v_read"] < 0.2 and res.values["device.g_max"] < 40e-6
    assert res.tops_per_w > res.tops_per_w_start and res.improved
    assert res.objective < res.objective_start and len(res.history) == 8
    assert res.error <= res.error_start * 1.001  # efficiency bought without accuracy (v_read, g_max are free)
    # the same chips through the plain (non-differentiated) sweep code give the refined numbers
    row = pareto.sweep(res.cfg, hw, {"adc.bits": [4]}, w, x, key=jax.random.key(2), instances=4)[0]
    assert row["error"] == pytest.approx(res.error, rel=1e-4)
    assert row["tops_per_w"] == pytest.approx(res.tops_per_w, rel=1e-4)
    # same key, same result (the compilation is shared)
    again = pareto.refine(cfg, hw, w, x, key=jax.random.key(2), knobs=knobs, steps=8, n_instances=4, target=target)
    assert again.values == res.values and again.history == res.history


def test_sweep_refines_the_front_within_the_grid_and_device_bounds():
    cfg, hw, w, x = _refine_problem()
    rows = pareto.sweep(cfg, hw, {"adc.bits": [4], "dac.v_read": [0.15, 0.2]}, w, x, key=jax.random.key(2),
                        instances=4, refine=3)
    grid, refined = rows[:2], rows[2:]
    front = pareto.pareto_front([r["tops_per_w"] for r in grid], [r["error"] for r in grid])
    assert [r["refined_from"] for r in refined] == np.flatnonzero(front).tolist()
    for r in refined:
        assert r["refined"] and r["knobs_start"]["dac.v_read"] == grid[r["refined_from"]]["dac.v_read"]
        assert 0.15 <= r["dac.v_read"] <= 0.2  # the grid's read-voltage range
        assert 20e-6 <= r["device.g_max"] <= 40e-6  # at most the device's top conductance
        assert 0.5 <= r["adc.margin"] <= 2.0
        assert r["refine_objective"][1] <= r["refine_objective"][0]
    assert pareto.label(refined[0], ["adc.bits"]) == "4b refined"


def test_refine_bad_input_fails_early_naming_the_field(tmp_path, capsys):
    path = tmp_path / "study.toml"
    path.write_text(STUDY)
    p = argparse.ArgumentParser()
    cli_energy.add_pareto_arguments(p)
    assert cli_energy.pareto_command(p.parse_args([str(path), "--refine", "-1"])) == 2
    assert "--refine" in capsys.readouterr().err
    cfg, hw, w, x = _refine_problem()
    with pytest.raises(ValueError, match="'dac.v_reed'"):
        pareto.refine(cfg, hw, w, x, key=jax.random.key(0), knobs=("dac.v_reed",))
    with pytest.raises(ValueError, match="adc.range_mode = 'fixed'"):
        pareto.refine(cfg, hw, w, x, key=jax.random.key(0), knobs=("adc.i_max",))
    with pytest.raises(ValueError, match="bounds"):
        pareto.refine(cfg, hw, w, x, key=jax.random.key(0), knobs=("dac.v_read",), bounds={"device.g_max": (1, 2)})
    with pytest.raises(ValueError, match="steps"):
        pareto.refine(cfg, hw, w, x, key=jax.random.key(0), steps=-1)
    with pytest.raises(ValueError, match="'device.gmax'"):  # before the grid is evaluated
        pareto.sweep(cfg, hw, {"adc.bits": [4]}, w, x, key=jax.random.key(0), refine=2, knobs=("device.gmax",))
    with pytest.raises(ValueError, match="refine must be"):
        pareto.sweep(cfg, hw, {"adc.bits": [4]}, w, x, key=jax.random.key(0), refine=True)


def test_layer_inputs_are_the_dense_layers_digital_inputs():
    from flax import nnx

    model = jc.nn.models.MLP((6, 5, 3), rngs=nnx.Rngs(params=0))
    call = nnx.Linear.__call__
    x = jax.random.normal(jax.random.key(0), (4, 6))
    u0, u1 = pareto.layer_inputs(model, x)
    assert nnx.Linear.__call__ is call  # restored
    np.testing.assert_array_equal(u0, x)
    np.testing.assert_allclose(u1, jax.nn.relu(model.layers[0](x)), rtol=1e-6)


def test_pareto_plot_labels_do_not_overlap():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.text import Text

    from jaxcim.energy import pareto

    names = ["array", "adc.bits"]
    # a front of six points, three of them within 3 % of each other in TOPS/W and loss (as in the shipped study)
    pts = [(236, 1.85), (318, 1.86), (325, 1.92), (645, 1.93), (745, 4.0), (858, 4.74)]
    off_front = [(70, 2.6), (300, 6.5), (560, 5.5)]
    results = [dict(array=64, **{"adc.bits": b}, tops_per_w=t, loss=[0.0, l], ci95=[0.1, 0.6], times=[1.0, 3.15e7])
               for b, (t, l) in enumerate(pts + off_front)]
    ax = pareto.plot_network(results, names)
    renderer = ax.figure.canvas.get_renderer()
    boxes = []
    for t in ax.texts:
        t.update_positions(renderer)
        boxes.append(Text.get_window_extent(t, renderer))
    assert len(boxes) == len(pts)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(ax.bbox.contains(b.x0, b.y0) and ax.bbox.contains(b.x1, b.y1) for b in boxes)


def test_as_good_and_more_efficient_uses_the_interval_of_the_difference():
    from jaxcim.energy import pareto

    def row(t, loss, ci):
        return dict(tops_per_w=t, loss=loss, ci95=[ci, ci])

    best = row(200, [1.0, 2.0], 0.3)
    inside, outside, less_efficient, equal = (row(300, [1.1, 2.4], 0.3), row(400, [1.0, 2.5], 0.3),
                                               row(150, [1.0, 2.0], 0.3), row(500, [1.0, 2.0], 0.3))
    # 95 % interval of a difference of two independent means: sqrt(0.3**2 + 0.3**2) = 0.424
    got = pareto.as_good_and_more_efficient([best, inside, outside, less_efficient, equal], best)
    assert got == [equal, inside]
