"""Configs: presets, TOML round trip, validation messages naming the field."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcim as jc


def test_preset_names_and_unknown_preset_lists_valid():
    assert jc.presets.names() == ["ideal", "pcm-ibm", "reram-neurram"]
    with pytest.raises(ValueError, match="valid presets: ideal, pcm-ibm, reram-neurram"):
        jc.presets.get("rram")


def test_presets_carry_published_ranges():
    assert jc.presets.get("pcm-ibm").device.g_max == 25e-6
    assert jc.presets.get("reram-neurram").device.g_max == 40e-6
    assert jc.presets.get("reram-neurram").mapping.rows == 256


def test_replace_dotted_and_errors():
    cfg = jc.presets.get("reram-neurram")
    new = cfg.replace(**{"adc.bits": 6, "device.g_max": 30e-6})
    assert new.adc.bits == 6 and new.device.g_max == 30e-6 and cfg.adc.bits == 8
    with pytest.raises(KeyError, match="valid keys in \\[adc\\]"):
        cfg.replace(**{"adc.bitz": 6})


@pytest.mark.parametrize(("changes", "exc", "fragment"), [
    ({"device.g_min": 50e-6}, ValueError, "device.g_min must be < device.g_max"),
    ({"device.g_min": -1e-6}, ValueError, "device.g_min must be in"),
    ({"device.g_max": float("nan")}, ValueError, "device.g_max must be finite"),
    ({"adc.bits": -1}, ValueError, "adc.bits must be an integer >= 0"),
    ({"adc.bits": 1}, ValueError, "adc.bits must be 0"),
    ({"dac.bits": 2.5}, TypeError, "dac.bits must be an integer"),
    ({"device.model": "mram"}, ValueError, "device.model must be one of"),
    ({"device.stuck_off_rate": 1.5}, ValueError, "device.stuck_off_rate must be in"),
    ({"circuit.r_row": -2.0}, ValueError, "circuit.r_row must be in"),
    ({"mapping.slices": 3, "mapping.weight_bits": 8}, ValueError, "multiple of"),
    ({"device.levels": 1}, ValueError, "device.levels must be an integer >= 2"),
])
def test_bad_values_name_the_field(changes, exc, fragment):
    with pytest.raises(exc, match=fragment):
        jc.presets.get("reram-neurram").replace(**changes)


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"device.g_max": "40e-6"}, "device.g_max must be a number, got str '40e-6'"),
    ({"device.g_max": [40e-6]}, "device.g_max must be a number, got list"),
    ({"device.g_max": (40e-6,)}, "device.g_max must be a number, got tuple"),
    ({"device.g_max": {"v": 40e-6}}, "device.g_max must be a number, got dict"),
    ({"device.g_max": True}, "device.g_max must be a number, got bool"),
    ({"device.g_max": 1j}, "device.g_max must be a number, got complex"),
    ({"device.g_max": np.array(["4e-5"])}, "device.g_max must be a number, got array of <U4"),
    ({"device.g_max": np.array([1 + 0j])}, "device.g_max must be a number, got array of complex128"),
    ({"adc.margin": "1"}, "adc.margin must be a number"),
    ({"programming.tolerance": "x"}, "programming.tolerance must be a number"),
    ({"dac.signed": "false"}, "dac.signed must be true or false (a boolean), got str 'false'"),
    ({"dac.signed": 0}, "dac.signed must be true or false"),
    ({"dac.bit_serial": "yes"}, "dac.bit_serial must be true or false"),
    ({"circuit.nonlinear": 1.0}, "circuit.nonlinear must be true or false"),
    ({"drift_compensation": "no"}, "drift_compensation must be true or false (a boolean), got str 'no'"),
    ({"name": 3}, "name must be a string"),
    ({"device.levels": 0.0}, "device.levels must be an integer"),
    ({"device.model": "custom", "device.sigma_poly": ("x",)}, "device.sigma_poly must be a tuple of numbers"),
])
def test_wrong_types_are_type_errors_naming_the_field(changes, fragment):
    with pytest.raises(TypeError) as e:
        jc.presets.get("reram-neurram").replace(**changes)
    assert fragment in str(e.value)


def test_wrong_types_in_constructors_and_toml(tmp_path):
    with pytest.raises(TypeError, match="device.g_max must be a number"):
        jc.DeviceConfig(g_max="40e-6")
    with pytest.raises(TypeError, match="drift_compensation must be true or false"):
        jc.CrossbarConfig(drift_compensation="no")
    with pytest.raises(TypeError, match="dac.signed must be true or false"):
        jc.DACConfig(signed="false")
    p = tmp_path / "c.toml"
    p.write_text('[device]\ng_max = "40e-6"\n')
    with pytest.raises(TypeError, match="device.g_max must be a number"):
        jc.load_config(p)
    # real numbers of any kind, and booleans as booleans, still work
    cfg = jc.presets.get("reram-neurram").replace(**{"device.g_max": np.float32(3e-5), "adc.margin": np.int64(2),
                                                     "dac.signed": False, "drift_compensation": np.True_})
    assert not cfg.dac.signed and cfg.drift_compensation and cfg.adc.margin == 2
    assert jc.presets.get("reram-neurram").replace(**{"device.g_max": jnp.asarray([3e-5, 4e-5])}).device.g_max.shape


def test_toml_round_trip_and_unknown_key(tmp_path):
    p = tmp_path / "study.toml"
    p.write_text(textwrap.dedent("""
        preset = "reram-neurram"
        [adc]
        bits = 6
        [device]
        stuck_off_rate = 0.01
        [circuit]
        kind = "ir_drop"
        r_row = 2.0
    """))
    cfg = jc.load_config(p)
    assert cfg.adc.bits == 6 and cfg.device.stuck_off_rate == 0.01 and cfg.circuit.kind == "ir_drop"
    assert cfg.device.model == "reram-wan2022" and cfg.dac.bits == 8
    assert jc.config.from_dict(cfg.to_dict()) == cfg
    p.write_text("[adc]\nbitz = 3\n")
    with pytest.raises(KeyError, match="valid keys in \\[adc\\]: bits"):
        jc.load_config(p)
    p.write_text("[adcc]\nbits = 3\n")
    with pytest.raises(KeyError, match="unknown config key 'adcc'"):
        jc.load_config(p)
    p.write_text("[adc\nbits = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        jc.load_config(p)
    with pytest.raises(FileNotFoundError):
        jc.load_config(tmp_path / "missing.toml")


def test_config_is_a_pytree_with_leaves_and_static_fields():
    cfg = jc.presets.get("reram-neurram")
    leaves = jax.tree.leaves(cfg)
    assert 40e-6 in leaves and 8 not in [v for v in leaves if isinstance(v, int)]
    # leaves can be vmapped: a sweep over g_max in one compiled call
    f = jax.vmap(lambda g: cfg.replace(**{"device.g_max": g}).device.g_max * 2)
    assert f(jnp.asarray([1.0, 2.0])).tolist() == [2.0, 4.0]


def test_load_config_reads_the_crossbar_of_study_files(tmp_path):
    """A study file keeps its crossbar under [crossbar]: load_config reads that table (the shipped studies too)."""
    for name in jc.studies.embedded_studies():
        cfg = jc.load_config(jc.studies.embedded_study_path(name))
        assert cfg.name == "reram-neurram" and cfg.mapping.rows == 256
    p = tmp_path / "study.toml"
    p.write_text('study = "mvm"\ninstances = 4\n[crossbar]\npreset = "pcm-ibm"\n[crossbar.adc]\nbits = 5\n')
    cfg = jc.load_config(p)
    assert cfg.name == "pcm-ibm" and cfg.adc.bits == 5 and cfg == jc.load_config(p, section="crossbar")
    p.write_text('study = "mvm"\n')  # no [crossbar]: the top level is the config, and "study" is not a config key
    with pytest.raises(KeyError, match="unknown config key 'study'"):
        jc.load_config(p)


def test_presets_of_your_own_register_by_name():
    jc.presets.register("test-ideal-64", lambda: jc.presets.get("ideal").replace(
        **{"mapping.rows": 64, "name": "test-ideal-64"}))
    try:
        assert "test-ideal-64" in jc.presets.names()
        assert jc.config.from_dict({"preset": "test-ideal-64"}).mapping.rows == 64
    finally:
        jc.config.PRESETS.pop("test-ideal-64")
    with pytest.raises(TypeError, match="preset name must be a string"):
        jc.presets.get(3)
