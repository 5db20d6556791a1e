"""Several processes (jax.distributed on 127.0.0.1, CPU devices, gloo collectives): a library Monte Carlo and a
network evaluation sharded over 2 processes x 2 devices, and the Monte Carlo over 4 processes x 1 device, are bit
for bit the single-process run on 4 devices with the same key; an unreachable coordinator is a clear error in
bounded time.

The file is also the worker: ``python tests/test_multiprocess.py PORT PROCESS_ID N_PROCESSES OUT`` joins an
N-process run and (process 0) saves its results to OUT.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import xla_flags

N_DEVICES = 4
"""Devices in every run: 2 processes x 2 devices, 4 x 1, and the reference, one process on 4."""
MC = dict(n=10, times=(1.0, 3600.0), chunk_size=8)  # two chunks of 8 over 4 devices, the last one padded
EVAL = dict(n_instances=6, times=(1.0, 86400.0), chunk_size=4)
TIMEOUT_S = 150


def _problem():
    """The studies both runs compute: weights spanning several arrays both ways, a small classifier."""
    import jax
    from flax import nnx

    import jaxcim as jc

    r = np.random.default_rng(0)
    w = (r.standard_normal((40, 20)) / 6).astype(np.float32)
    x = r.uniform(-1, 1, (6, 40)).astype(np.float32)
    cfg = jc.presets.get("pcm-ibm").replace(**{"mapping.rows": 16, "mapping.cols": 8})
    model = nnx.Sequential(nnx.Linear(12, 10, rngs=nnx.Rngs(0)), nnx.relu, nnx.Linear(10, 4, rngs=nnx.Rngs(1)))
    xs = r.uniform(-1, 1, (24, 12)).astype(np.float32)
    labels = np.asarray(jax.numpy.argmax(model(xs), -1), np.int32)
    return cfg, w, x, model, (xs, labels)


def _studies(mesh=None, evaluate=True):
    import jax

    import jaxcim as jc

    cfg, w, x, model, data = _problem()
    ys = jc.monte_carlo(cfg, w, x, key=jax.random.key(5), mesh=mesh, **MC)
    if not evaluate:
        return {"mc": np.asarray(ys)}
    acc = jc.nn.evaluate(model, cfg.replace(**{"mapping.rows": 8}), data, key=jax.random.key(6), mesh=mesh, **EVAL)
    return {"mc": np.asarray(ys), "evaluate": acc.accuracies}


def _worker(port: int, pid: int, n_processes: int, out: str) -> None:
    from jaxcim import distributed

    distributed.initialize(f"127.0.0.1:{port}", n_processes, pid, timeout_s=60.0)
    import jax

    assert distributed.process_count() == n_processes and len(jax.devices()) == N_DEVICES
    distributed.check_same([7, 2**32 - 1], "two constants")  # the same in every process: nothing to say
    try:
        distributed.check_same([pid], "the process id")
        raise AssertionError("check_same let different values through")
    except RuntimeError as e:
        assert str(e).startswith("the processes disagree on the process id: process 0: [0], process 1: [1]"), e
    res = _studies(evaluate=n_processes == 2)  # 4 processes: the Monte Carlo only (2 CPU cores in CI)
    if distributed.is_primary():
        np.savez(out, **res)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("n_processes", [2, 4])
def test_processes_equal_one_process_bit_for_bit(tmp_path, n_processes):
    import jax

    from jaxcim import engine

    out = tmp_path / "mp.npz"
    env = {**os.environ, "XLA_FLAGS": xla_flags(N_DEVICES // n_processes),
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), *sys.path])}
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, str(port), str(i), str(n_processes), str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
             for i in range(n_processes)]
    try:
        # the single-process reference on 4 of this process's devices runs while the workers start
        ref = _studies(engine.default_mesh(jax.devices()[:N_DEVICES]), evaluate=n_processes == 2)
        deadline = time.monotonic() + TIMEOUT_S
        logs = [p.communicate(timeout=max(deadline - time.monotonic(), 1))[0] for p in procs]
    finally:
        for p in procs:  # on failure or timeout: no process (nor its children) outlives the test
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [p.returncode for p in procs] == [0] * n_processes, "\n".join(logs)[-4000:]
    got = np.load(out)
    assert got["mc"].shape == (MC["n"], 2, 6, 20)
    if n_processes == 2:
        assert got["evaluate"].shape == (EVAL["n_instances"], 2)
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    assert np.std(got["mc"][:, 0], axis=0).mean() > 0  # instances differ: a real Monte Carlo


def test_unreachable_coordinator_is_a_clear_error_in_bounded_time(monkeypatch):
    from jaxcim import distributed

    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match=r"coordinator 127\.0\.0\.1:\d+ did not answer within 1 s"):
        distributed.initialize(f"127.0.0.1:{_free_port()}", 2, 1, timeout_s=1.0)
    assert time.monotonic() - t0 < 10
    with pytest.raises(ValueError, match="coordinator_address must be 'host:port'"):
        distributed.initialize("localhost", 2, 1)
    with pytest.raises(ValueError, match="process_id must be in 0 .. num_processes - 1 = 1, got 2"):
        distributed.initialize("127.0.0.1:1234", 2, 2)
    monkeypatch.setenv(distributed.ENV_COORDINATOR, "127.0.0.1:1234")
    monkeypatch.delenv(distributed.ENV_NUM_PROCESSES, raising=False)
    monkeypatch.setenv(distributed.ENV_PROCESS_ID, "1")
    with pytest.raises(ValueError, match=r"missing num_processes \(or JAXCIM_NUM_PROCESSES\)"):
        distributed.initialize()
    assert distributed.process_count() == 1 and distributed.is_primary()  # nothing was initialized


if __name__ == "__main__":
    _worker(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
