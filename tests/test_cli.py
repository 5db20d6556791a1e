"""The jaxcim console script: studies, outputs, user errors (one line, exit 2), sweep, kill + resume."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from helpers import classifier_study

import jaxcim
from jaxcim import cli, study
from jaxcim import montecarlo as mc

STUDY = """
name = "small"
instances = {instances}
times = [1.0, 3600.0]
batch = 8
seed = 3
in_features = 48
out_features = 20
chunk_size = 8
[crossbar]
preset = "pcm-ibm"
[crossbar.mapping]
rows = 64
cols = 32
"""


def _study(tmp_path, instances=24, extra=""):
    p = tmp_path / "study.toml"
    p.write_text(extra + STUDY.format(instances=instances))
    return p


def _expected(path, n):
    """Per-instance errors computed directly with the library (same study data, same chunk size)."""
    s, cfg = study.load_study(path)
    w, x, key = study.mvm_data(s, cfg.dac.signed)
    ys = np.asarray(mc.monte_carlo(cfg, w, x, key=key, n=n, times=s["times"], chunk_size=8)).astype(np.float64)
    ref = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
    return np.linalg.norm(ys - ref, axis=(-2, -1)) / np.linalg.norm(ref)


def test_run_writes_results_table_and_per_instance_stats(tmp_path, capsys):
    path = _study(tmp_path)
    out = tmp_path / "out"
    assert cli.main(["run", str(path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "p95" in captured.out and "1 h" in captured.out and "results in" in captured.out
    assert "instances 24/24" in captured.err  # not a terminal: plain progress lines
    res = json.loads((out / "results.json").read_text())
    assert res["crossbar"]["device"]["model"] == "pcm-ibm"
    assert res["study"]["instances"] == 24 and res["versions"]["jax"] == jax.__version__
    z = np.load(out / "instances.npz")
    assert z["rel_error"].shape == (24, 2) and z["col_rel_error"].shape == (24, 2, 20)
    np.testing.assert_allclose(z["rel_error"], _expected(path, 24), rtol=2e-4)
    stats = res["statistics"]
    assert [r["t"] for r in stats] == [1.0, 3600.0]
    np.testing.assert_allclose([r["p95"] for r in stats], np.percentile(z["rel_error"], 95, axis=0), rtol=1e-5)
    assert 0 < res["baseline_rel_error_noise_free"] < stats[0]["p5"]
    assert (out / "error_histogram.png").stat().st_size > 1000


def test_run_without_matplotlib_still_succeeds(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet"]) == 0
    assert 'pip install "jaxcim[plots]"' in capsys.readouterr().out  # quoted: zsh expands [...]
    assert (out / "results.json").is_file() and not (out / "error_histogram.png").exists()


def test_embedded_studies():
    """`jaxcim run` defaults to the digits classifier on 256x256 NeuRRAM ReRAM; `jaxcim run mvm` is the 256x256
    MVM error study (differential pairs, 8-bit DAC/ADC, a few hundred instances, several drift times)."""
    assert {"classifier", "mvm"} <= set(study.embedded_studies())
    s, cfg = study.load_study()
    assert s["study"] == "classifier" and cfg.name == "reram-neurram" and cfg.mapping.rows == 256
    assert s["instances"] >= 256 and len(s["times"]) == 4
    s, cfg = study.load_study("mvm")
    assert cfg.name == "reram-neurram" and cfg.adc.bits == 8 and cfg.dac.bits == 8
    assert cfg.mapping.scheme == "differential"
    assert (s["in_features"], s["out_features"]) == (256, 256) and 100 <= s["instances"] <= 1000
    assert s["times"][0] >= 1.0 and len(s["times"]) > 1


def _classifier_study(tmp_path, head: str):
    """A small classifier study file (64x64 arrays, a 64-16-10 MLP, a few epochs) with ``head`` keys on top."""
    p = tmp_path / "c.toml"
    p.write_text(classifier_study(head))
    return p


def _run_and_kill(args, chunks, count=3):
    """Start ``python -m jaxcim.cli *args`` and SIGKILL it once ``chunks`` holds ``count`` chunk files."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "jaxcim.cli", *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(list(chunks.glob("chunk_*.npz"))) < count:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_classifier_study_through_the_cli(tmp_path, capsys):
    p = _classifier_study(tmp_path, "instances = 4")
    out = tmp_path / "out"
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "hwa-trained" in printed and "1 d" in printed
    res = json.loads((out / "results.json").read_text())
    assert np.asarray(res["models"]["digital-trained"]["accuracies"]).shape == (4, 2)
    assert _results(out)["metric"]["better"] == "higher" and res["timings"]["train_s"] > 0
    assert [(r["series"], r["t"]) for r in res["statistics"]][:2] == [("digital-trained", 1.0),
                                                                      ("digital-trained", 86400.0)]
    np.testing.assert_allclose(res["statistics"][0]["mean"], np.mean(res["models"]["digital-trained"]["accuracies"],
                                                                      axis=0)[0])
    assert (out / "accuracy_vs_time.png").stat().st_size > 1000
    assert cli.main(["run", str(p), "--out", str(out), "--batch", "3"]) == 2
    assert "--batch does not apply to a 'classifier' study" in capsys.readouterr().err


@pytest.mark.parametrize("content, args, match", [
    (None, ["run", "missing.toml"], "study file not found"),
    (None, ["run", "mvm", "--mapping", "nope"], "mapping file not found"),
    ("", ["run", "{p}", "--mapping", "{p}"], "mapping"),
    ("instances = [", ["run", "{p}"], "not valid TOML"),
    ("instancez = 3\n", ["run", "{p}"], "unknown key 'instancez'; valid keys: crossbar, study, name, instances"),
    ("instances = 0\n", ["run", "{p}"], "instances must be >= 1"),
    ("[crossbar]\npreset = 'nope'\n", ["run", "{p}"], "unknown preset 'nope'"),
    ("[crossbar.adc]\nbits = 1\n", ["run", "{p}"], "adc.bits"),
    ("weights = 'w.npy'\n", ["run", "{p}"], "weights file not found"),
    ("study = 'qq'\n", ["run", "{p}"], "unknown study type 'qq'"),
    ("study = 'classifier'\n[train]\nepochz = 3\n", ["run", "{p}"], "unknown key(s) ['epochz'] in [train]"),
    ("study = 'classifier'\n[hwa]\nepochs = -1\n", ["run", "{p}"], "[hwa] epochs must be an integer >= 0"),
    ("", ["run", "{p}", "--instances", "-5"], "instances must be >= 1"),
    ("", ["run", "{p}", "--out", "{p}"], "not writable"),
    ("", ["sweep", "--study", "{p}", "adc.bitz=4:6"], "unknown key 'adc.bitz'"),
    ("", ["sweep", "--study", "{p}", "adc.bits=1:2"], "adc.bits"),
    ("", ["sweep", "--study", "{p}", "adc.bits"], "expected NAME=VALUES"),
    # type mistakes: one error line naming the field, not a traceback
    ("[crossbar.device]\ng_max = '40e-6'\n", ["run", "{p}"], "device.g_max must be a number, got str '40e-6'"),
    ("[crossbar.device]\ng_max = [1, 2]\n", ["run", "{p}"], "device.g_max must be a number, got tuple"),
    ("[crossbar.device]\ng_max = {a = 1}\n", ["run", "{p}"], "device.g_max must be a number, got dict"),
    ("[crossbar.device]\ng_max = true\n", ["run", "{p}"], "device.g_max must be a number, got bool"),
    ("[crossbar]\ndrift_compensation = 'no'\n", ["run", "{p}"], "drift_compensation must be true or false"),
    ("[crossbar.dac]\nsigned = 'false'\n", ["run", "{p}"], "dac.signed must be true or false (a boolean), got str"),
    ("[crossbar.circuit]\nnonlinear = 1\n", ["run", "{p}"], "circuit.nonlinear must be true or false"),
    ("[crossbar]\nname = 3\n", ["run", "{p}"], "name must be a string"),
    ("seed = 100000000000000000000000\n", ["run", "{p}"], "seed must be <= 4294967295"),
    ("seed = 1e30\n", ["run", "{p}"], "seed must be <= 4294967295"),
    ("", ["run", "{p}", "--seed", "18446744073709551616"], "seed must be <= 4294967295"),
    ("", ["run", "{p}", "--instances", "5000000000"], "instances must be <= 2147483648"),
    ("batch = 1e20\n", ["run", "{p}"], "batch must be <= 2147483647"),
    ("memory_budget = nan\n", ["run", "{p}"], "memory_budget must be >= 0, got nan"),
    ("", ["run", "{p}", "--memory-budget", "nan"], "memory_budget must be >= 0, got nan"),
    ("study = 'classifier'\nmemory_budget = nan\n", ["run", "{p}"], "memory_budget must be an integer >= 0"),
    ("study = 'classifier'\n", ["run", "{p}", "--instances", "5000000000"], "instances must be <= 2147483648"),
    ("study = 'classifier'\nseed = 18446744073709551616\n", ["run", "{p}"], "seed must be <= 4294967295"),
    ("study = 'classifier'\n[hwa]\nclip_sigma = 'x'\n", ["run", "{p}"], "[hwa] clip_sigma must be a number"),
    ("study = 'classifier'\n[hwa]\nprog_noise_scale = [1]\n", ["run", "{p}"], "[hwa] prog_noise_scale must be"),
    ("study = 'classifier'\n[model]\nfeatures = [64, '10']\n", ["run", "{p}"], "[model] features must be an int"),
    ("study = 'classifier'\n[crossbar.dac]\nsigned = 'false'\n", ["run", "{p}"], "dac.signed must be true or false"),
    ("", ["run", "{p}", "--out", ""], "the output folder name is empty"),
    ("", ["sweep", "--study", "{p}", "device.prog_noise_scale=0:1e12"], "at most 10,000 grid points"),
])
def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys, content, args, match):
    p = tmp_path / "s.toml"
    if content is not None:
        p.write_text(content)
    args = [a.format(p=p) for a in args]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert match in err


@pytest.mark.parametrize("array, match", [
    (np.ones((4, 3), np.complex64), "must be a finite 2-d real numeric array"),
    (np.ones((4, 3), bool), "must be a finite 2-d real numeric array"),
    (np.array([[1.0, np.nan]]), "must be a finite 2-d real numeric array"),
    (np.ones(3), "must be a finite 2-d real numeric array"),
    ({"w": np.ones((4, 3))}, "a .npz archive; weights must be one array saved with np.save"),
])
def test_bad_weights_files_are_one_error_line(tmp_path, capsys, array, match):
    w = tmp_path / "w.npy"
    if isinstance(array, dict):
        with open(w, "wb") as f:  # a .npz archive under a .npy name
            np.savez(f, **array)
    else:
        np.save(w, array)
    p = tmp_path / "s.toml"
    p.write_text("weights = 'w.npy'\n")
    assert cli.main(["run", str(p), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: weights file {w}: ") and err.count("\n") == 1 and match in err
    assert not (tmp_path / "out").exists()


def test_bad_option_value_exits_2():
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--times", "1,x"])
    assert e.value.code == 2


def test_resume_with_a_different_config_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet"]) == 0
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--resume", "--seed", "4"]) == 2
    assert "different configuration" in capsys.readouterr().err


def test_parse_values():
    assert cli.parse_values("4:7") == [4, 5, 6, 7]
    assert cli.parse_values("0:1:0.5") == [0.0, 0.5, 1.0]
    assert cli.parse_values("1,3600,3.15e7") == [1, 3600, 3.15e7]
    assert cli.parse_values("pcm-ibm,true") == ["pcm-ibm", True]


@pytest.mark.slow
def test_sweep_adc_bits_and_times(tmp_path, capsys):
    path = _study(tmp_path, 8)
    out = tmp_path / "sw"
    args = ["sweep", "--study", str(path), "adc.bits=4,8", "device.prog_noise_scale=0", "device.read_noise_scale=0",
            "t=1,86400",
            "--out", str(out)]
    assert cli.main(args) == 0
    rows = json.loads((out / "sweep.json").read_text())["rows"]
    assert len(rows) == 4 and {r["adc.bits"] for r in rows} == {4, 8}
    err = {(r["adc.bits"], r["t"]): r["mean"] for r in rows}
    # without programming/read noise the converters dominate: quantization error ~ 2**-bits
    assert err[(8, 1.0)] < 0.25 * err[(4, 1.0)]
    captured = capsys.readouterr()
    assert "adc.bits" in captured.out
    assert "configurations 2/2 (100%)" in captured.err and "ETA" in captured.err  # progress of the grid
    assert (out / "sweep.png").is_file()


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_results(tmp_path):
    n = 1600
    path = _study(tmp_path, n)
    out = tmp_path / "out"
    ckpt = out / "checkpoint"
    _run_and_kill(["run", str(path), "--out", str(out)], ckpt)
    done = sorted(ckpt.glob("chunk_*.npz"))
    assert 0 < len(done) < n // 8 and not (out / "results.json").exists()
    assert cli.main(["run", str(path), "--out", str(out), "--resume", "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert 0 < res["timings"]["resumed_from"] < n
    z = np.load(out / "instances.npz")
    s, cfg = study.load_study(path)
    w, x, key = study.mvm_data(s, cfg.dac.signed)
    direct = mc.monte_carlo_stats(cfg, w, x, key=key, n=n, times=s["times"], chunk_size=8, columns="instances")
    np.testing.assert_array_equal(z["rel_error"], np.asarray(direct["rel_error"]))  # bit for bit
    np.testing.assert_array_equal(z["col_rel_error"], np.asarray(direct["col_rel_error"]))


@pytest.mark.slow
def test_classifier_kill_and_resume_gives_the_uninterrupted_results(tmp_path):
    """SIGKILL a classifier study after some chunks of chips: --resume loads the trained models and the finished
    chunks, and every chip's accuracy equals an uninterrupted run's."""
    p = _classifier_study(tmp_path, "instances = 240\nchunk_size = 8")
    out, ref = tmp_path / "out", tmp_path / "ref"
    chunks = out / "checkpoint" / "digital-trained"
    _run_and_kill(["run", str(p), "--out", str(out)], chunks)
    assert (out / "checkpoint" / "models.npz").is_file() and not (out / "results.json").exists()
    assert 0 < len(list(chunks.glob("chunk_*.npz"))) < 240 // 8
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 0
    assert cli.main(["run", str(p), "--out", str(ref), "--quiet"]) == 0
    res, full = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    for name in ("digital-trained", "hwa-trained"):
        assert res["models"][name]["digital_accuracy"] == full["models"][name]["digital_accuracy"]
        np.testing.assert_array_equal(res["models"][name]["accuracies"], full["models"][name]["accuracies"])
    # a different study in the same folder is refused; a missing checkpoint starts from the beginning
    p.write_text(p.read_text().replace("epochs = 3", "epochs = 4"))
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 2
    assert cli.main(["run", str(p), "--out", str(tmp_path / "new"), "--resume", "--quiet"]) == 0


# ----------------------------------------------------------------------------------------- outputs, options


SCHEMA_KEYS = {"schema", "study", "crossbar", "fingerprint", "versions", "device", "timings", "metric", "statistics",
               "files", "plots"}
"""The keys of results.json common to every study type (jaxcim.studies.results)."""


def _results(out):
    res = json.loads((out / "results.json").read_text())
    assert SCHEMA_KEYS - {"plots"} <= set(res) and res["schema"] == "jaxcim.results/1"
    assert {"series", "t", "mean", "p5", "p50", "p95"} <= set(res["statistics"][0])
    return res


def test_version_and_help_name_the_real_default(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"jaxcim {jaxcim.__version__}"
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "classifier (the default" in text and "--coordinator HOST:PORT" in text
    assert study.load_study()[0]["study"] == "classifier"


def test_one_schema_and_another_studys_folder_is_refused_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"study": {"study": "classifier", "name": "digits"}}))
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds the results of study 'digits' (classifier)" in err and "--force" in err
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet", "--force"]) == 0
    res = _results(out)
    assert res["study"]["study"] == "mvm" and [r["series"] for r in res["statistics"]] == ["analog", "analog"]
    assert res["timings"]["instances_run"] == 8 and res["metric"]["better"] == "lower"
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet"]) == 0  # the same study again


def test_netcdf_holds_the_instances_with_the_config_as_attributes(tmp_path):
    xr = pytest.importorskip("xarray")
    out = tmp_path / "out"
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet", "--netcdf"]) == 0
    z = np.load(out / "instances.npz")
    with xr.open_dataset(out / "results.nc") as ds:
        assert ds["col_rel_error"].dims == ("instance", "time", "column") and ds.sizes["column"] == 20
        np.testing.assert_array_equal(ds["rel_error"].values, z["rel_error"])
        assert ds["time"].values.tolist() == [1.0, 3600.0]
        assert json.loads(ds.attrs["crossbar"])["device"]["model"] == "pcm-ibm"
        assert json.loads(ds.attrs["study"])["instances"] == 8


@pytest.mark.parametrize("args, env, match", [
    (["--coordinator", "127.0.0.1:1234"], {}, "missing: --num-processes (JAXCIM_NUM_PROCESSES), --process-id"),
    (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], {}, "must be HOST:PORT"),
    (["--coordinator", "h:1", "--num-processes", "2", "--process-id", "2"], {}, "--process-id must be in [0, 1]"),
    ([], {"JAXCIM_COORDINATOR": "h:1", "JAXCIM_NUM_PROCESSES": "two", "JAXCIM_PROCESS_ID": "0"}, "must be an integer"),
    (["--init-timeout", "0.3"], {"JAXCIM_COORDINATOR": "127.0.0.1:1", "JAXCIM_NUM_PROCESSES": "2",
                                 "JAXCIM_PROCESS_ID": "1"}, "coordinator 127.0.0.1:1 did not answer within 0.3 s"),
])
def test_bad_distributed_options_are_one_error_line(tmp_path, capsys, monkeypatch, args, env, match):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(tmp_path / "o"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err, err


def test_distributed_options_reach_initialize_and_only_process_0_writes(tmp_path, monkeypatch):
    import jaxcim.distributed

    calls = []
    monkeypatch.setattr(jaxcim.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    monkeypatch.setenv("JAXCIM_PROCESS_ID", "1")
    monkeypatch.setenv("JAXCIM_NUM_PROCESSES", "2")
    monkeypatch.setattr(jaxcim.distributed, "is_primary", lambda: False)
    out = tmp_path / "out"
    assert cli.main(["run", str(_study(tmp_path, 8)), "--out", str(out), "--quiet", "--coordinator",
                     "10.0.0.1:7000", "--init-timeout", "30"]) == 0
    assert calls == [((), {"coordinator_address": "10.0.0.1:7000", "num_processes": 2, "process_id": 1,
                           "timeout_s": 30.0})]
    assert not list(out.glob("*.json")) and not list(out.glob("*.npz")) and not list(out.glob("*.png"))
    assert not list(out.glob("checkpoint/*.npz"))


def test_sweep_defaults_to_the_mvm_study_and_explains_a_classifier(tmp_path, capsys, monkeypatch):
    from jaxcim.studies import sweep

    seen = []
    monkeypatch.setattr(sweep, "run_sweep", lambda s, cfg, grid, out, **k: seen.append((s, grid)))
    assert cli.main(["sweep", "adc.bits=4:10", "device.prog_noise_scale=0.5,1,2", "t=1,3600,86400"]) == 0
    (s, grid), = seen
    assert s["name"] == "neurram-256x256" and s["times"] == [1.0, 3600.0, 86400.0] and len(grid["adc.bits"]) == 7
    assert cli.main(["sweep", "--study", "classifier", "adc.bits=4,6"]) == 2
    assert "give an mvm study with --study" in capsys.readouterr().err


def test_optimize_writes_into_the_output_folder_never_the_package(tmp_path):
    from jaxcim.studies import optimize as opt

    opts = {"name": "neurram-256x256"}
    assert opt.output_stem(opts, None, tmp_path / "maps") == tmp_path / "maps" / "neurram-256x256_mapping"
    assert opt.output_stem(opts, str(tmp_path / "m"), "unused") == tmp_path / "m"
    with pytest.raises(study.StudyError, match="jaxcim's own studies folder"):
        opt.output_stem(opts, str(study.embedded_study_path("mvm").with_name("learned")), "x")
    assert "output" not in opt.load_optimize_study("mvm")[3]  # the shipped study writes into --out
