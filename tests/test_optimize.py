"""Learned weight mapping: identity limit, target formula, optimization gain on held-out data, files, CLI."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxcim as jc
from jaxcim import cli, optimize
from jaxcim import study as study_mod
from jaxcim.optimize import LearnedMapping, init_mapping, load_mapping, optimize_mapping, save_mapping


def _data(n_in=32, n_out=16, batch=32, seed=0):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n_in, n_out)) * 0.1).astype(np.float32)
    x = rng.uniform(-1, 1, (batch, n_in)).astype(np.float32)
    return w, x


def _small(preset, **changes):
    return jc.presets.get(preset).replace(**{"mapping.rows": 32, "mapping.cols": 16, **changes})


@pytest.mark.parametrize("preset,changes", [
    ("reram-neurram", {}),
    ("pcm-ibm", {}),
    ("reram-neurram", {"mapping.scheme": "offset", "mapping.cols": 9, "mapping.scale": "column"}),
    ("reram-neurram", {"mapping.weight_bits": 4, "mapping.slices": 2}),
])
def test_identity_mapping_reproduces_the_plain_mapping(preset, changes):
    w, x = _data()
    cfg = _small(preset, **changes)
    learn = ("col_range", "curve", "digital", "adc_range") + (("split",) if cfg.mapping.scheme == "differential"
                                                             else ())
    key = jax.random.key(7)
    y0 = jc.simulate(cfg, w, x, key=key, t=3600.0)
    y1 = jc.simulate(cfg, w, x, key=key, t=3600.0, mapping=init_mapping(cfg, w, learn))
    # Two different programs: bit-equal when LLVM optimizes them (-O2, the default), within 2 ulp when the suite
    # compiles at -O0 (tests/conftest.py), where fused multiply-adds are formed differently in the two.
    np.testing.assert_allclose(np.asarray(y1), np.asarray(y0), rtol=1e-6, atol=0)


def test_learned_targets_follow_the_documented_formula():
    w, _ = _data()
    cfg = _small("reram-neurram")
    rng = np.random.default_rng(1)
    m = init_mapping(cfg, w, ("col_range", "split", "curve", "predistort"))
    m = m.replace(col_range=jnp.asarray(rng.uniform(0.5, 2.0, 16), jnp.float32),
                  common_mode=jnp.asarray(rng.uniform(0, 0.2, m.common_mode.shape), jnp.float32),
                  curve=jnp.asarray(rng.uniform(-0.1, 0.1, m.curve.shape), jnp.float32),
                  predistort=jnp.asarray(rng.uniform(-0.05, 0.05, m.predistort.shape), jnp.float32))
    g_pos, g_neg, coeffs, w_scale = m.conductance_targets(cfg, w)
    # numpy reference in float64
    s = np.abs(w).max()
    u = w / s * np.asarray(m.col_range, float)
    f = np.interp(np.abs(u), np.linspace(0, 1, optimize.CURVE_KNOTS), np.asarray(m.curve[0], float))
    u = u + np.sign(u) * f + np.asarray(m.predistort[0], float)
    c = np.asarray(m.common_mode[0], float)
    span = cfg.device.g_max - cfg.device.g_min
    ref_pos = cfg.device.g_min + span * np.minimum(np.maximum(u, 0) + c, 1)
    ref_neg = cfg.device.g_min + span * np.minimum(np.maximum(-u, 0) + c, 1)
    np.testing.assert_allclose(g_pos[0, 0, 0], ref_pos, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(g_neg[0, 0, 0], ref_neg, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(w_scale, s / np.asarray(m.col_range), rtol=1e-6)
    assert np.any(ref_pos == cfg.device.g_max)  # col_range > 1 clips the largest weights


def test_mapping_is_a_pytree_under_jit_vmap_and_grad():
    w, x = _data()
    # ideal ADC: with 8 bits, float reassociation under vmap may flip one rounding (one LSB) in a thousand outputs
    cfg = _small("reram-neurram", **{"adc.bits": 0})
    m = init_mapping(cfg, w)
    keys = jax.random.split(jax.random.key(0), 3)
    sim = lambda m, k: jc.simulate(cfg, w, x, key=k, mapping=m)
    y_loop = np.stack([np.asarray(sim(m, k)) for k in keys])
    y_vmap = jax.jit(jax.vmap(sim, in_axes=(None, 0)))(m, keys)
    # float32: G+ - G- cancels a 1 uS common mode (ulp(40 uS) ~ 4e-12 S), as in test_core
    np.testing.assert_allclose(y_vmap, y_loop, rtol=0, atol=1e-4 * np.abs(y_loop).max())
    np.testing.assert_array_equal(np.asarray(sim(m, keys[0])), np.asarray(sim(m, keys[0])))  # same key, same y
    g = jax.grad(lambda m: jnp.sum(sim(m, keys[0]) ** 2))(m)
    assert all(np.all(np.isfinite(np.asarray(a))) for a in jax.tree.leaves(g))
    assert float(jnp.sum(jnp.abs(g.col_range))) > 0 and float(jnp.sum(jnp.abs(g.curve))) > 0


def _plain_errors(cfg, w, x_train, x_test, key, n, t):
    """Relative MVM errors of the plain mapping, computed with jc.program/jc.read only (independent path)."""
    errs = []
    for k in jax.random.split(key, n):
        kp, kr = jax.random.split(k)
        st = jc.program(cfg, w, key=kp, x_calib=x_train)
        y = np.asarray(jc.read(cfg, st, x_test, key=jax.random.fold_in(kr, 0), t=t), float)
        ref = x_test.astype(float) @ w.astype(float)
        errs.append(np.linalg.norm(y - ref, axis=1) / np.linalg.norm(ref, axis=1))
    return np.concatenate(errs)


@pytest.mark.slow
def test_optimized_mapping_beats_plain_mapping_on_held_out_pcm_after_one_day():
    w, x = _data(32, 16, batch=64)
    cfg = _small("pcm-ibm")
    t = 86400.0
    res = optimize_mapping(cfg, w, x, key=jax.random.key(1), steps=60, n_instances=8, times=(t,),
                           optimizer=optax.adam(2e-2), n_eval=24)
    assert res.loss_history.shape == (60,)
    assert res.errors_after.shape == (24, 1, 16)
    # the "before" statistics agree with an independent evaluation of the plain mapping (same held-out keys)
    k_eval = jax.random.split(jax.random.key(1))[1]
    plain = _plain_errors(cfg, w, x[:48], x[48:], k_eval, 24, t)
    np.testing.assert_allclose(res.before["mean"], plain.mean(), rtol=1e-4)
    # held-out improvement, well beyond the statistical error of the two means (paired, same instances)
    diff = (res.errors_before - res.errors_after).ravel()
    assert diff.mean() > 5 * diff.std(ddof=1) / np.sqrt(diff.size)
    assert res.after["mean"] < 0.9 * res.before["mean"]
    assert res.after["p95"] < res.before["p95"]
    y = jc.simulate(cfg, w, x[48:], key=jax.random.key(9), t=t, mapping=res.mapping)  # usable by simulate
    assert y.shape == (16, 16)


def test_conductance_penalty_lowers_mean_conductance():
    w, x = _data(32, 16, batch=32)
    cfg = _small("reram-neurram")
    kw = dict(key=jax.random.key(2), steps=15, n_instances=2, times=(1.0,), n_eval=0, learn=("col_range", "split"),
              optimizer=optax.adam(5e-2))
    free = optimize_mapping(cfg, w, x, **kw)
    cheap = optimize_mapping(cfg, w, x, penalty=optimize.conductance_penalty(10.0), **kw)

    def mean_g(m):
        t_pos, t_neg, _, _ = m.conductance_targets(cfg, w)
        return float(jnp.mean(t_pos) + jnp.mean(t_neg))

    assert mean_g(cheap.mapping) < 0.8 * mean_g(free.mapping)
    assert free.before == {} and free.errors_before.shape == (0, 1, 8)


def test_save_and_load_roundtrip_is_atomic(tmp_path):
    w, _ = _data()
    cfg = _small("pcm-ibm")
    m = init_mapping(cfg, w, ("col_range", "digital", "curve"))
    m = m.replace(col_range=m.col_range * 0.5)
    npz, meta = save_mapping(tmp_path / "sub" / "m.npz", m, metadata={"note": "x"})
    assert npz.name == "m.npz" and meta.name == "m.json"
    assert sorted(p.name for p in npz.parent.iterdir()) == ["m.json", "m.npz"]  # no temporary files left
    info = json.loads(meta.read_text())
    assert info["format"] == optimize.FORMAT and info["fields"]["col_range"] == [16]
    back = load_mapping(tmp_path / "sub" / "m")
    assert back.common_mode is None and back.predistort is None
    for a, b in zip(jax.tree.leaves(m), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    meta.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a jaxcim mapping"):
        load_mapping(npz)
    with pytest.raises(FileNotFoundError, match="mapping file not found"):
        load_mapping(tmp_path / "missing")


def test_bad_input_fails_early_with_a_clear_message():
    w, x = _data()
    cfg = _small("reram-neurram")
    k = jax.random.key(0)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        optimize_mapping(cfg, w, x, key=k, steps=0)
    with pytest.raises(TypeError, match="n_instances must be an integer"):
        optimize_mapping(cfg, w, x, key=k, n_instances=2.5)
    with pytest.raises(ValueError, match="learn has unknown parts"):
        optimize_mapping(cfg, w, x, key=k, learn=("gain",))
    with pytest.raises(ValueError, match="times must be"):
        optimize_mapping(cfg, w, x, key=k, times=(-1.0,))
    with pytest.raises(ValueError, match="x_calib has 8 features"):
        optimize_mapping(cfg, w, x[:, :8], key=k)
    with pytest.raises(TypeError, match="optimizer must be an optax"):
        optimize_mapping(cfg, w, x, key=k, optimizer="adam")
    with pytest.raises(TypeError, match="key is required"):
        optimize_mapping(cfg, w, x, key=None)
    with pytest.raises(ValueError, match="learn='split' needs mapping.scheme"):
        init_mapping(cfg.replace(**{"mapping.scheme": "offset"}), w, ("split",))
    with pytest.raises(ValueError, match=r"mapping.col_range has shape \(16,\)"):
        jc.simulate(cfg, w[:, :8], x, key=k, mapping=init_mapping(cfg, w))
    with pytest.raises(TypeError, match="mapping must be a jaxcim.optimize.LearnedMapping"):
        jc.program(cfg, w, key=k, mapping={"col_range": 1.0})


@pytest.mark.extended  # the README's optimize -> run --mapping lines, through the CLI (1-2 min)
def test_cli_optimize_writes_a_mapping_that_run_and_simulate_use(tmp_path, capsys):
    w, x = _data(32, 16, batch=16)
    np.save(tmp_path / "w.npy", w)
    study = tmp_path / "study.toml"
    study.write_text("""
weights = "w.npy"
batch = 16
seed = 3
instances = 4
times = [1.0]
[crossbar]
preset = "reram-neurram"
[crossbar.mapping]
rows = 32
cols = 16
[optimize]
steps = 3
n_instances = 2
n_eval = 2
times = [1.0]
output = "out/learned"
""")
    assert cli.main(["optimize", str(study), "--no-progress", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3 and summary["weights"] == [32, 16]
    m = load_mapping(tmp_path / "out" / "learned.npz")
    assert isinstance(m, LearnedMapping)
    cfg = jc.load_config(study, section="crossbar")
    assert jc.simulate(cfg, w, x, key=jax.random.key(0), mapping=m).shape == (16, 16)
    # the same study file runs with the learned mapping: same weights, same instances as the library call
    out = tmp_path / "run"
    assert cli.main(["run", str(study), "--mapping", str(tmp_path / "out" / "learned"), "--out", str(out),
                     "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["learned_mapping"] is True
    s, cfg = study_mod.load_study(study)
    w2, x2, key = study_mod.mvm_data(s, True)
    np.testing.assert_array_equal(np.asarray(w2), w)
    direct = jc.monte_carlo_stats(cfg, w2, x2, key=key, n=4, times=[1.0], mapping=m,
                                  chunk_size=res["timings"]["chunk_size"])
    np.testing.assert_allclose(np.load(out / "instances.npz")["rel_error"], np.asarray(direct["rel_error"]),
                               rtol=1e-6)
    study.write_text(study.read_text().replace("steps = 3", "stepz = 3"))
    assert cli.main(["optimize", str(study), "--no-progress"]) == 2
    assert "unknown key(s) ['stepz'] in [optimize]" in capsys.readouterr().err
