"""jaxcim.io: atomic writes, the output-folder lock, fingerprinted checkpoint files, safe cleanup."""

import fcntl
import json
import os
import signal

import numpy as np
import pytest
from helpers import hold_lock

from jaxcim import io
from jaxcim.study import StudyError


def test_atomic_writes(tmp_path):
    io.atomic_write_json(tmp_path / "a.json", {"x": np.float32(1.5), "y": np.arange(2)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5, "y": [0, 1]}
    io.atomic_write_npz(tmp_path / "a.npz", z=np.ones(3))
    assert np.load(tmp_path / "a.npz")["z"].tolist() == [1, 1, 1]
    with pytest.raises(TypeError):
        io.atomic_write_json(tmp_path / "b.json", {"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.npz"]  # no temporary file left


def test_lock_is_exclusive_reentrant_and_released(tmp_path):
    out = tmp_path / "out"
    with io.lock_output(out) as path:
        assert path.name == io.LOCK_NAME and path.read_text().strip() == str(os.getpid())
        with io.lock_output(out):  # reentrant in one process
            pass
        fd = os.open(path, os.O_RDWR)  # another open file (another process's view): locked
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    fd = os.open(out / io.LOCK_NAME, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released
    os.close(fd)


def test_lock_held_by_another_process_then_killed(tmp_path):
    proc = hold_lock(tmp_path / io.LOCK_NAME)
    try:
        with pytest.raises(StudyError, match=rf"in use by another jaxcim run \(pid {proc.pid}\)"):
            with io.lock_output(tmp_path):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (tmp_path / io.LOCK_NAME).exists()  # the file stays, the lock does not
    with io.lock_output(tmp_path):
        pass


def test_empty_output_name_is_refused(tmp_path):
    with pytest.raises(StudyError, match="output folder name is empty"):
        io.prepare_output("")
    (tmp_path / "f").write_text("x")
    with pytest.raises(StudyError, match="not writable"):
        io.prepare_output(tmp_path / "f" / "g")


def test_check_writable_file(tmp_path):
    assert io.check_writable_file(tmp_path / "new" / "m.npz") == tmp_path / "new" / "m.npz"
    assert list((tmp_path / "new").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    with pytest.raises(StudyError, match="cannot be written"):
        io.check_writable_file(tmp_path / "file" / "m.npz", "mapping file")
    with pytest.raises(StudyError, match="is a folder"):
        io.check_writable_file(tmp_path / "new")


def test_fingerprinted_npz(tmp_path):
    p = tmp_path / io.chunk_name(8, 16)
    assert p.name == "chunk_0000000008_0000000016.npz"
    io.write_npz(p, "fp-a", {"e": np.zeros((8, 2), np.float32)})
    expect = {"e": ((8, 2), np.float32)}
    assert io.read_npz(p, "fp-a", expect)["e"].shape == (8, 2)
    with pytest.raises(io.CheckpointError, match="another study"):
        io.read_npz(p, "fp-b", expect)
    with pytest.raises(io.CheckpointError, match=r"expected float32\[16, 2\]"):
        io.read_npz(p, "fp-a", {"e": ((16, 2), np.float32)})
    with pytest.raises(io.CheckpointError, match="holds arrays"):
        io.read_npz(p, "fp-a", {"e": ((8, 2), None), "f": ((8,), None)})
    data = p.read_bytes()
    for damaged in (data[: len(data) // 2], b"", b"garbage" * 10):
        p.write_bytes(damaged)
        with pytest.raises(io.CheckpointError, match="unreadable"):
            io.read_npz(p, "fp-a", expect)
    np.savez(p, e=np.zeros((8, 2), np.float32))  # an unstamped file (older jaxcim, or not jaxcim's)
    with pytest.raises(io.CheckpointError, match="no study fingerprint"):
        io.read_npz(p, "fp-a", expect)
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(io.CheckpointError, match="not an .npz"):
        io.read_npz(tmp_path / "x.npy", "fp-a")
    with pytest.raises(ValueError, match="reserved"):
        io.write_npz(p, "fp", {io.FINGERPRINT_KEY: np.zeros(1)})


def test_list_chunks_and_names(tmp_path):
    for name in ("chunk_0000000008_0000000016.npz", "chunk_0000000000_0000000008.npz",
                 "chunk_0000000000_0000000004.npz", "chunk_1_2.npz", "chunk_0000000009_0000000009.npz", "x.npz"):
        (tmp_path / name).write_bytes(b"")
    assert [(a, b) for a, b, _ in io.list_chunks(tmp_path)] == [(0, 8), (0, 4), (8, 16)]
    assert io.list_chunks(tmp_path / "missing") == []
    for name in ("state.json", "models.npz", "chunks.json", "chunk_0000000000_0000000008.npz",
                 ".state.json.tmp123", ".chunk_0000000000_0000000008.npz.tmp9"):
        assert io.is_checkpoint_file(name), name
    for name in ("mine.txt", "chunk_1_2.npz", ".mine.txt.tmp1", "state.json.bak", "results.json", io.LOCK_NAME):
        assert not io.is_checkpoint_file(name), name


def test_clean_checkpoint_deletes_only_jaxcim_files(tmp_path):
    ckpt = tmp_path / "checkpoint"
    (ckpt / "digital-trained").mkdir(parents=True)
    (ckpt / "notes").mkdir()
    for f in ("state.json", "models.npz", ".state.json.tmp77", "chunk_0000000000_0000000008.npz", "mine.txt",
              "digital-trained/chunks.json", "digital-trained/chunk_0000000000_0000000008.npz",
              "digital-trained/keep.csv", "notes/chunk_0000000000_0000000008.npz"):
        (ckpt / f).write_text("x")
    kept = io.clean_checkpoint(ckpt, ["digital-trained"])
    assert sorted(p.name for p in kept) == ["keep.csv", "mine.txt", "notes"]
    left = sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*"))
    assert left == ["digital-trained", "digital-trained/keep.csv", "mine.txt", "notes",
                    "notes/chunk_0000000000_0000000008.npz"]  # a user's folder is not searched
    (ckpt / "mine.txt").unlink()
    (ckpt / "digital-trained" / "keep.csv").unlink()
    for p in (ckpt / "notes").iterdir():
        p.unlink()
    (ckpt / "notes").rmdir()
    (ckpt / "state.json").write_text("{}")
    assert io.clean_checkpoint(ckpt, ["digital-trained"]) == [] and not ckpt.exists()  # empty folders go
    assert io.clean_checkpoint(ckpt) == []


@pytest.mark.parametrize("text, reason", [
    ("{not json", "not readable as JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('"x"', "expected a JSON object, got str"),
    ("{}", "no 'fingerprint'"),
    ('{"fingerprint": "f"}', "no 'chunk_size'"),
    ('{"fingerprint": "f", "chunk_size": "8"}', "bad 'chunk_size': '8'"),
    ('{"fingerprint": "f", "chunk_size": 0}', "bad 'chunk_size': 0"),
    ('{"fingerprint": "f", "chunk_size": true}', "bad 'chunk_size': True"),
    ('{"fingerprint": 3, "chunk_size": 8}', "bad 'fingerprint': 3"),
])
def test_read_state_damaged(tmp_path, text, reason):
    p = tmp_path / "state.json"
    p.write_text(text)
    with pytest.raises(StudyError, match="damaged") as e:
        io.read_state(p, {"fingerprint": io.is_str, "chunk_size": io.is_positive_int})
    assert reason in str(e.value) and "run without --resume" in str(e.value)


def test_read_state_ok_and_missing(tmp_path):
    p = tmp_path / "state.json"
    assert io.read_state(p, {"a": io.is_str}) is None
    p.write_text('{"fingerprint": "f", "trained": true, "train_s": 1.5, "extra": 1}')
    fields = {"fingerprint": io.is_str, "trained": io.is_bool, "train_s": io.is_finite_nonnegative}
    assert io.read_state(p, fields)["train_s"] == 1.5
