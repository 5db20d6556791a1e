"""`jaxcim run --distributed` with real processes on 127.0.0.1 (CPU devices, gloo collectives): the mvm and the
classifier studies over 2 processes x 2 devices give bit for bit the per-instance results of one process on 4
devices; a SIGKILL of one process mid-run ends the other with a clear error in bounded time, and ``--resume`` with
both processes ends with the uninterrupted numbers (the mvm test shows both at once: every chunk of its result
was computed by two processes, before the kill or after the resume).

Every process is started by the test in a session of its own, bounded in time, and its whole process group is
killed when the test ends, however it ends.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from helpers import xla_flags

ROOT = Path(__file__).resolve().parents[1]
N_MVM = 64
MVM = f"""study = "mvm"
name = "two-processes"
instances = {N_MVM}
chunk_size = 4             # 16 chunks of 4 instances over 4 devices: a kill lands mid-run
times = [1.0, 86400.0]
batch = 4
seed = 3
in_features = 40           # 2 x 3 arrays of 24 x 8
out_features = 20
[crossbar]
preset = "reram-neurram"
[crossbar.mapping]
rows = 24
cols = 8
"""
CLASSIFIER = """study = "classifier"
name = "two-processes"
instances = 4
seed = 2
times = [1.0, 86400.0]
[crossbar]
preset = "reram-neurram"
[crossbar.mapping]
rows = 32                  # the 64 x 10 layer spans 2 x 3 arrays
cols = 8
[model]
features = [64, 10]        # one dense layer: the smallest programs to compile
[train]
epochs = 1                 # every process trains the same model (one device each: the same program)
[hwa]
epochs = 0                 # no hardware-aware copy: one model to evaluate
"""
TIMEOUT_S = 240
"""Wall-clock bound of each group of processes, s."""
ERROR_WITHIN_S = 60
"""A process whose partner was killed ends within this many seconds (the coordination service's heartbeat
timeout is 30 s; a collective notices the closed connection at once)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], devices: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "XLA_FLAGS": xla_flags(devices), "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    with open(log, "w") as f:  # a file, not a pipe: a process never blocks on output nobody reads
        return subprocess.Popen([sys.executable, "-m", "jaxcim.cli", "run", *args, "--quiet"], env=env, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _one(study: Path, out: Path, *extra: str) -> subprocess.Popen:
    return _start([str(study), "--out", str(out), *extra], 4, out.with_suffix(".log"))


def _two(study: Path, out: Path, *extra: str) -> list[subprocess.Popen]:
    port = _free_port()
    return [_start([str(study), "--out", str(out), "--distributed", "--coordinator", f"127.0.0.1:{port}",
                    "--num-processes", "2", "--process-id", str(i), "--init-timeout", "120", *extra], 2,
                   out.with_suffix(f".{i}.log")) for i in range(2)]


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _wait(procs: list[subprocess.Popen], timeout: float = TIMEOUT_S) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(deadline - time.monotonic(), 0.1))
    finally:
        _kill(procs)  # on a timeout: nothing outlives the test
    return [p.returncode for p in procs]


def _logs(tmp: Path) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()[-3000:]}" for f in sorted(tmp.glob("*.log")))


def _instances(out: Path) -> dict[str, np.ndarray]:
    with np.load(out / "instances.npz") as f:
        return {k: f[k] for k in f.files}


def _statistics(out: Path):
    res = json.loads((out / "results.json").read_text())
    return res["statistics"], res.get("models")


def _kill_process_1_after_first_chunk(procs: list[subprocess.Popen], out: Path) -> float:
    """SIGKILL process 1 once process 0 has checkpointed the first chunk; the seconds process 0 then took to
    end."""
    try:
        first = out / "checkpoint" / "chunk_0000000000_0000000004.npz"
        deadline = time.monotonic() + TIMEOUT_S
        while not first.exists():
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), _logs(out.parent)
            time.sleep(0.01)
        os.kill(procs[1].pid, signal.SIGSTOP)  # freeze process 1 first: process 0 cannot finish without it
        assert not (out / "results.json").exists(), "the run finished before the kill"
        os.kill(procs[1].pid, signal.SIGKILL)
        t_kill = time.monotonic()
        procs[0].wait(timeout=ERROR_WITHIN_S)
        return time.monotonic() - t_kill
    finally:
        _kill(procs)


def test_mvm_study_over_two_processes_killed_and_resumed_is_one_process(tmp_path):
    """One process on 4 devices, and at the same time two processes on 2 devices each that lose process 1 to a
    SIGKILL after the first checkpointed chunk: process 0 ends at once with a clear error; both started again with
    ``--resume`` run the remaining chunks and end with the single-process numbers bit for bit."""
    study = tmp_path / "study.toml"
    study.write_text(MVM)
    out = tmp_path / "two"
    ref, *procs = [_one(study, tmp_path / "one"), *_two(study, out)]
    try:
        waited = _kill_process_1_after_first_chunk(procs, out)
    except BaseException:
        _kill([ref])
        raise
    log = out.with_suffix(".0.log").read_text()
    assert procs[0].returncode == 1 and waited < ERROR_WITHIN_S, log[-3000:]
    assert "error: process 0 of 2: another process of this run stopped" in log, log[-3000:]
    assert not (out / "results.json").exists()

    assert _wait([ref, *_two(study, out, "--resume")]) == [0, 0, 0], _logs(tmp_path)
    log = out.with_suffix(".0.log").read_text()
    done = int(log.split("resuming after ")[1].split()[0])
    assert 0 < done < N_MVM, log
    want, got = _instances(tmp_path / "one"), _instances(out)
    assert set(want) == set(got) and want["rel_error"].shape == (N_MVM, 2)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert _statistics(out) == _statistics(tmp_path / "one")
    assert np.std(got["rel_error"][:, 0]) > 0  # instances differ: a real Monte Carlo


def test_classifier_study_over_two_processes_is_one_process(tmp_path):
    """Each process trains the same model; the chips' accuracies are the single-process ones, chip by chip."""
    study = tmp_path / "classifier.toml"
    study.write_text(CLASSIFIER)
    procs = [_one(study, tmp_path / "one"), *_two(study, tmp_path / "two")]
    assert _wait(procs) == [0, 0, 0], _logs(tmp_path)
    want, got = _statistics(tmp_path / "one"), _statistics(tmp_path / "two")
    assert got == want
    accs = np.asarray([m["accuracies"] for m in got[1].values()])
    assert accs.shape == (1, 4, 2) and np.std(accs[:, :, 1]) > 0
