"""jaxcim run / sweep / optimize keep output folders safe: one run per folder (lock), fingerprinted chunks, no
deletion of foreign files, damaged checkpoints recomputed or refused in one line, outputs and grids checked
before any work starts."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import classifier_study, hold_lock

from jaxcim import cli, io, study

STUDY = """
name = "safety"
instances = 24
times = [1.0, 3600.0]
batch = 8
seed = {seed}
in_features = 48
out_features = 20
chunk_size = 8
[crossbar]
preset = "pcm-ibm"
[crossbar.mapping]
rows = 64
cols = 32
"""

CLASSIFIER = classifier_study("instances = 16\nchunk_size = 8")


def _mvm_study(folder, seed=3):
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "study.toml"
    p.write_text(STUDY.format(seed=seed))
    return p


def _errors(err: str) -> list[str]:
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def mvm_runs(tmp_path_factory):
    """Two finished mvm studies (seeds 3 and 4): {seed: (study file, output folder)}."""
    base = tmp_path_factory.mktemp("mvm")
    runs = {}
    for seed in (3, 4):
        p = _mvm_study(base / f"s{seed}", seed)
        out = base / f"out{seed}"
        assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0
        runs[seed] = (p, out)
    return runs


def _killed_copy(run, tmp_path):
    """A copy of a finished run as a run killed after its first two chunks (of 3)."""
    p, out = run
    new = tmp_path / "out"
    shutil.copytree(out, new)
    for f in ("results.json", "instances.npz"):
        (new / f).unlink()
    (new / "checkpoint" / io.chunk_name(16, 24)).unlink()
    return p, out, new


def _same_results(new, ref):
    z, zr = np.load(new / "instances.npz"), np.load(ref / "instances.npz")
    for k in zr.files:
        np.testing.assert_array_equal(z[k], zr[k])  # bit for bit
    res = json.loads((new / "results.json").read_text())
    np.testing.assert_allclose([r["p95"] for r in res["statistics"]], np.percentile(z["rel_error"], 95, axis=0),
                               rtol=1e-5)  # results.json agrees with instances.npz
    return res


def _short(path, axis=0):
    """Rewrite a chunk file with 5 of its rows (instances along ``axis``; the fingerprint kept, if any)."""
    with np.load(path) as z:
        arrays = {k: (np.take(z[k], range(5), axis=axis) if z[k].ndim > axis else z[k]) for k in z.files}
    np.savez(path, **arrays)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "short", "foreign", "unstamped"])
def test_resume_recomputes_damaged_or_foreign_chunks(mvm_runs, tmp_path, capsys, damage):
    p, ref, out = _killed_copy(mvm_runs[3], tmp_path)
    chunk = out / "checkpoint" / io.chunk_name(8, 16)
    if damage == "truncated":
        chunk.write_bytes(chunk.read_bytes()[:300])
    elif damage == "empty":
        chunk.write_bytes(b"")
    elif damage == "garbage":
        chunk.write_bytes(os.urandom(2000))
    elif damage == "short":
        _short(chunk)
    elif damage == "foreign":  # the same chunk of another study (seed 4) run into the same folder
        shutil.copy(mvm_runs[4][1] / "checkpoint" / chunk.name, chunk)
    else:  # a chunk without a fingerprint (an older jaxcim)
        with np.load(chunk) as z:
            np.savez(chunk, **{k: z[k] for k in z.files if k != io.FINGERPRINT_KEY})
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 0
    assert f"checkpoint {chunk.name}:" in capsys.readouterr().err
    res = _same_results(out, ref)
    assert res["timings"]["resumed_from"] == 8 and res["timings"]["instances_run"] == 16
    assert sorted(p.name for p in (out / "checkpoint").glob("chunk_*")) == [
        io.chunk_name(0, 8), io.chunk_name(8, 16), io.chunk_name(16, 24)]


def test_resume_with_every_chunk_intact_runs_only_the_rest(mvm_runs, tmp_path):
    p, ref, out = _killed_copy(mvm_runs[3], tmp_path)
    with np.load(out / "checkpoint" / io.chunk_name(0, 8)) as z:
        assert str(z[io.FINGERPRINT_KEY]) == json.loads((ref / "results.json").read_text())["fingerprint"]
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 0
    assert _same_results(out, ref)["timings"]["resumed_from"] == 16


@pytest.mark.parametrize("text", ["{broken", "[]", '"state"', "{}", '{"fingerprint": "FP"}',
                                  '{"fingerprint": "FP", "chunk_size": "8"}',
                                  '{"fingerprint": "FP", "chunk_size": -8}'])
def test_damaged_state_json_is_one_error_line(mvm_runs, tmp_path, capsys, text):
    p, ref, out = _killed_copy(mvm_runs[3], tmp_path)
    fp = json.loads((ref / "results.json").read_text())["fingerprint"]
    (out / "checkpoint" / "state.json").write_text(text.replace("FP", fp))
    before = sorted(f.name for f in (out / "checkpoint").iterdir())
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 2
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "state.json is damaged" in errors[0] and "without --resume" in errors[0]
    assert sorted(f.name for f in (out / "checkpoint").iterdir()) == before  # nothing deleted
    assert not (out / "results.json").exists()


def test_a_locked_output_folder_is_refused_and_a_killed_holder_leaves_no_lock(mvm_runs, tmp_path, capsys):
    p = mvm_runs[3][0]
    out = tmp_path / "out"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "state.json").write_text("{}")  # the other run's files
    holder = hold_lock(out / io.LOCK_NAME)
    try:
        for args in (["run", str(p), "--quiet"], ["run", str(p), "--resume"],
                     ["sweep", "--study", str(p), "adc.bits=6"]):
            assert cli.main([*args, "--out", str(out)]) == 2
            errors = _errors(capsys.readouterr().err)
            assert errors == [f"error: output folder {out} is in use by another jaxcim run (pid {holder.pid}); "
                              "wait for it to finish, or choose another --out folder"]
        assert (out / "checkpoint" / "state.json").read_text() == "{}" and not (out / "results.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0  # SIGKILLed: no stale lock
    _same_results(out, mvm_runs[3][1])


def test_a_fresh_run_deletes_only_jaxcim_files(mvm_runs, tmp_path):
    p, ref = mvm_runs[3]
    out = tmp_path / "out"
    ckpt = out / "checkpoint"
    (ckpt / "notes").mkdir(parents=True)
    for f in ("mine.txt", "notes/chunk_0000000000_0000000008.npz", "state.json", ".state.json.tmp99",
              "chunk_0000000096_0000000104.npz", "chunk_0000000008_0000000016.npz"):
        (ckpt / f).write_text("old")
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0
    _same_results(out, ref)
    assert (ckpt / "mine.txt").read_text() == "old"
    assert (ckpt / "notes" / "chunk_0000000000_0000000008.npz").read_text() == "old"
    assert not (ckpt / "chunk_0000000096_0000000104.npz").exists() and not (ckpt / ".state.json.tmp99").exists()


def test_a_bad_study_deletes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    ckpt = out / "checkpoint"
    (ckpt / "digital-trained").mkdir(parents=True)
    files = ["mine.txt", "state.json", "models.npz", "digital-trained/chunk_0000000000_0000000008.npz"]
    for f in files:
        (ckpt / f).write_text("keep")
    np.save(tmp_path / "w.npy", np.ones((48, 20), np.complex64))
    np.savez(tmp_path / "w.npz", w=np.ones((48, 20)))
    cases = [
        (CLASSIFIER.replace("epochs = 1", 'epochs = 1\nclip_sigma = "x"'), "[hwa] clip_sigma must be a number"),
        (CLASSIFIER.replace("[64, 16, 10]", '"abc"'), "[model] features must be a non-empty list"),
        ('weights = "w.npy"\n' + STUDY.format(seed=3), "weights file"),
        ('weights = "w.npz"\n' + STUDY.format(seed=3), "a .npz archive"),
        ("[crossbar]\npreset = 'pcm-ibm'\n[crossbar.device]\ng_max = '40e-6'\n", "device.g_max must be a number"),
    ]
    for text, match in cases:
        p = tmp_path / "bad.toml"
        p.write_text(text)
        assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 2
        errors = _errors(capsys.readouterr().err)
        assert len(errors) == 1 and match in errors[0], errors
        assert all((ckpt / f).read_text() == "keep" for f in files)


def test_empty_out_is_refused_and_deletes_nothing(mvm_runs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text("mine")
    for args in (["run", str(mvm_runs[3][0])], ["sweep", "--study", str(mvm_runs[3][0]), "adc.bits=6"]):
        assert cli.main([*args, "--out", ""]) == 2
        err = capsys.readouterr().err
        assert _errors(err) == ["error: the output folder name is empty; give a folder (--out DIR, '.' for the "
                                "current folder)"] and err.count("\n") == 1
    assert (tmp_path / "checkpoint" / "state.json").read_text() == "mine"


# ----------------------------------------------------------------------------------------- classifier


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("classifier")
    p = base / "c.toml"
    p.write_text(CLASSIFIER)
    out = base / "out"
    assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 0
    return p, out


def _accuracies(out):
    res = json.loads((out / "results.json").read_text())
    return {name: m["accuracies"] for name, m in res["models"].items()}


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["chunks", "models"])
def test_classifier_resume_recomputes_damaged_checkpoint_files(classifier_run, tmp_path, capsys, damage):
    p, ref = classifier_run
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    (out / "results.json").unlink()
    ckpt = out / "checkpoint"
    d, h = ckpt / "digital-trained", ckpt / "hwa-trained"
    if damage == "chunks":
        (d / io.chunk_name(0, 8)).write_bytes((d / io.chunk_name(0, 8)).read_bytes()[:200])  # truncated
        _short(d / io.chunk_name(8, 16), axis=1)  # fewer chips than its name says
        (d / "chunks.json").write_text("[not an object")
        shutil.copy(d / io.chunk_name(0, 8), h / io.chunk_name(0, 8))  # damaged, and of the other model
        (h / io.chunk_name(8, 16)).write_bytes(b"")
    else:
        (ckpt / "models.npz").write_bytes((ckpt / "models.npz").read_bytes()[:1000])
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if damage == "models":
        assert "models.npz" in err and "training again" in err
    assert _accuracies(out) == _accuracies(ref)
    for m in ("digital-trained", "hwa-trained"):
        assert sorted(f.name for f in (ckpt / m).iterdir()) == ["chunk_0000000000_0000000008.npz",
                                                                 "chunk_0000000008_0000000016.npz", "chunks.json"]


@pytest.mark.parametrize("text", ["oops", "[]", '{"fingerprint": "FP"}', '{"fingerprint": "FP", "trained": "yes", '
                                  '"train_s": 1.0}'])
def test_classifier_damaged_state_json_is_one_error_line(classifier_run, tmp_path, capsys, text):
    p, ref = classifier_run
    out = tmp_path / "out"
    shutil.copytree(ref, out)
    fp = json.loads((ref / "checkpoint" / "state.json").read_text())["fingerprint"]
    (out / "checkpoint" / "state.json").write_text(text.replace("FP", fp))
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 2
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1 and "state.json is damaged" in errors[0]
    assert (out / "checkpoint" / "models.npz").is_file()


# ----------------------------------------------------------------------------------------- optimize, sweep


def test_optimize_with_an_unwritable_output_fails_before_training(mvm_runs, tmp_path, capsys, monkeypatch):
    import jaxcim.optimize

    def no_training(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(jaxcim.optimize, "optimize_mapping", no_training)
    (tmp_path / "file").write_text("x")
    p = mvm_runs[3][0]
    for output in (tmp_path / "file" / "mapping", tmp_path / "folder.npz"):
        (tmp_path / "folder.npz").mkdir(exist_ok=True)
        assert cli.main(["optimize", str(p), "-o", str(output), "--no-progress"]) == 2
        errors = _errors(capsys.readouterr().err)
        assert len(errors) == 1 and "mapping file" in errors[0], errors
    assert cli.main(["optimize", str(p), "-o", str(tmp_path / "m"), "--seed", str(2**64)]) == 2
    assert "seed must be an integer in [0, 4294967295]" in capsys.readouterr().err


@pytest.mark.parametrize("settings, match", [
    (["device.prog_noise_scale=0:1e12"],
     "range '0:1e12' has 1,000,000,000,001 values; a sweep takes at most 10,000 grid points"),
    (["adc.bits=0:20000"], "has 20,001 values"),
    (["device.g_max=1e-5:2e-5:1e-300"], "a sweep takes at most 10,000 grid points"),
    (["adc.bits=2:101", "device.prog_noise_scale=0:1:0.01"], "the sweep grid has 10,100 points (100 x 101)"),
    (["adc.bits=4,6", "t=0:5000"], "the sweep grid has 10,002 points"),
    (["device.g_max=nan:1"], "finite numbers"),
    (["device.g_max=0:inf"], "finite numbers"),
    (["dac.signed=0,1"], "dac.signed must be true or false"),
    (["device.g_max=true"], "device.g_max must be a number"),
])
def test_sweep_grids_are_checked_before_anything_runs(tmp_path, capsys, settings, match):
    p = _mvm_study(tmp_path)
    t0 = time.perf_counter()
    assert cli.main(["sweep", "--study", str(p), *settings, "--out", str(tmp_path / "sw")]) == 2
    assert time.perf_counter() - t0 < 30
    err = capsys.readouterr().err
    assert _errors(err) == [err.strip()] and match in err, err
    assert not (tmp_path / "sw").exists()


def test_parse_values_caps_ranges():
    assert len(cli.parse_values("1:10000")) == 10_000
    with pytest.raises(study.StudyError, match="at most 10,000"):
        cli.parse_values("1:10001")
    with pytest.raises(study.StudyError, match="at most 10,000"):
        cli.parse_values("0:1e12")


# ----------------------------------------------------------------------------------------- a real second run


@pytest.mark.slow
def test_a_second_run_into_a_running_folder_is_refused_and_resume_after_kill_matches(tmp_path, capsys):
    p = tmp_path / "study.toml"
    p.write_text(STUDY.format(seed=3).replace("instances = 24", "instances = 1600"))
    out = tmp_path / "out"
    ckpt = out / "checkpoint"
    proc = subprocess.Popen([sys.executable, "-m", "jaxcim.cli", "run", str(p), "--out", str(out)],
                            env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and len(list(ckpt.glob("chunk_*.npz"))) < 2:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before the second one started; make it longer"
        assert cli.main(["run", str(p), "--out", str(out), "--quiet"]) == 2
        errors = _errors(capsys.readouterr().err)
        assert errors == [f"error: output folder {out} is in use by another jaxcim run (pid {proc.pid}); "
                          "wait for it to finish, or choose another --out folder"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 0 < len(list(ckpt.glob("chunk_*.npz"))) < 200 and not (out / "results.json").exists()
    assert cli.main(["run", str(p), "--out", str(out), "--resume", "--quiet"]) == 0
    ref = tmp_path / "ref"
    assert cli.main(["run", str(p), "--out", str(ref), "--quiet"]) == 0
    res = _same_results(out, ref)
    assert 0 < res["timings"]["resumed_from"] < 1600
