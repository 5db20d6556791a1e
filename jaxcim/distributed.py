"""Runs over several processes and hosts: JAX's multi-controller runtime, set up for jaxcim.

Every process runs the same program; after `initialize`, ``jax.devices()`` lists the devices of every process,
and jaxcim's studies (`jaxcim.monte_carlo`, `jaxcim.monte_carlo_stats`, `jaxcim.nn.evaluate`,
`jaxcim.optimize_mapping`) shard their instances over all of them (`jaxcim.engine`): each process computes its
share of every chunk and receives the whole result, identical to a single-process run with the same key.

Two processes on one machine (CPU devices, gloo collectives):

    JAXCIM_COORDINATOR=127.0.0.1:12345 JAXCIM_NUM_PROCESSES=2 JAXCIM_PROCESS_ID=0 python study.py &
    JAXCIM_COORDINATOR=127.0.0.1:12345 JAXCIM_NUM_PROCESSES=2 JAXCIM_PROCESS_ID=1 python study.py

with ``jaxcim.distributed.initialize()`` called first in ``study.py``. Under SLURM or Open MPI, with none of
these given, JAX detects the cluster (``jax.distributed.initialize()``'s auto-detection).

When one process fails, the others must not wait for it: JAX ends every process at exit with a shutdown barrier
that waits for all of them, and a process whose partner has stopped computing waits in its next collective.
So after `initialize` an uncaught exception ends its process at once, without that barrier (`exit_now`); the
others then fail in their next collective (gloo: "Connection closed by peer"), and a process that dies silently
(SIGKILL, a lost host) is declared dead by the coordination service after ``heartbeat_timeout_s``.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

ENV_COORDINATOR = "JAXCIM_COORDINATOR"
"""Environment variable: the coordinator's ``host:port`` (process 0 listens there)."""
ENV_NUM_PROCESSES = "JAXCIM_NUM_PROCESSES"
"""Environment variable: the number of processes."""
ENV_PROCESS_ID = "JAXCIM_PROCESS_ID"
"""Environment variable: this process's id, 0 .. number of processes - 1."""


def _from_env(name: str, value, kind):
    if value is not None:
        return value
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not {'an integer' if kind is int else 'valid'}") from None


def _check_address(address: str) -> tuple[str, int]:
    if not isinstance(address, str):
        raise TypeError(f"coordinator_address must be a 'host:port' string, got {type(address).__name__}")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"coordinator_address must be 'host:port' with a port in 1..65535, got {address!r}")
    return host.strip("[]"), int(port)


def _check_count(num_processes, process_id) -> None:
    for name, v in (("num_processes", num_processes), ("process_id", process_id)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and (process_id < 0 or (num_processes is not None and process_id >= num_processes)):
        raise ValueError(f"process_id must be in 0 .. num_processes - 1 = {num_processes - 1}, got {process_id}")


def _wait_for_coordinator(host: str, port: int, timeout_s: float) -> float:
    """Seconds left of ``timeout_s`` once the coordinator accepts a connection; ConnectionError when it does not
    within ``timeout_s`` (JAX's own client aborts the process instead of raising)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(min(left, 2.0), 0.05)):
                return max(left, 1.0)
        except OSError as e:
            if time.monotonic() + 0.2 >= deadline:
                raise ConnectionError(
                    f"jaxcim.distributed: the coordinator {host}:{port} did not answer within {timeout_s:g} s "
                    f"({type(e).__name__}: {e}); start process 0 there first, or check the address "
                    f"({ENV_COORDINATOR}) and the firewall") from None
            time.sleep(0.2)


HEARTBEAT_TIMEOUT_S = 30.0
"""Seconds without a heartbeat after which the coordination service declares a process dead and stops the others
(JAX's default is 100 s; a killed process is usually noticed sooner, by the next collective)."""
SHUTDOWN_TIMEOUT_S = 300.0
"""Seconds a finished process waits at exit for the others to finish (process 0 writes the results last)."""


def _check_seconds(name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {v!r}")


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: float = 60.0,
               heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S, shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
               exit_on_error: bool = True) -> None:
    """Join this process to a multi-process run (call it first, before any other JAX work).

    Each argument left None is read from jaxcim's environment variables (`ENV_COORDINATOR`,
    `ENV_NUM_PROCESSES`, `ENV_PROCESS_ID`); when none of the three is given either way, JAX detects the cluster
    (SLURM, Open MPI, TPU pods). CPU collectives use gloo, so CPU-only processes can exchange results.

    Args:
      coordinator_address: ``host:port`` of process 0's coordinator service.
      num_processes: the number of processes.
      process_id: this process's id, 0 .. num_processes - 1.
      timeout_s: how long to wait for the coordinator (processes other than 0) and for every process to
        register, s.
      heartbeat_timeout_s: a process silent this long is declared dead and the others stop, s
        (`HEARTBEAT_TIMEOUT_S`).
      shutdown_timeout_s: how long a finished process waits at exit for the others, s (`SHUTDOWN_TIMEOUT_S`).
      exit_on_error: an uncaught exception ends the process at once (`exit_now`, after printing the traceback)
        instead of leaving it in JAX's exit barrier while the others wait for it in their next collective.

    Raises:
      ValueError / TypeError: a malformed address, count or id, naming it.
      ConnectionError: the coordinator did not answer within ``timeout_s``.
    """
    coordinator_address = _from_env(ENV_COORDINATOR, coordinator_address, str)
    num_processes = _from_env(ENV_NUM_PROCESSES, num_processes, int)
    process_id = _from_env(ENV_PROCESS_ID, process_id, int)
    for name, v in (("timeout_s", timeout_s), ("heartbeat_timeout_s", heartbeat_timeout_s),
                    ("shutdown_timeout_s", shutdown_timeout_s)):
        _check_seconds(name, v)
    _check_count(num_processes, process_id)
    given = (coordinator_address, num_processes, process_id)
    if any(v is not None for v in given) and any(v is None for v in given):
        missing = [f"{arg} (or {env})" for arg, env, v in zip(
            ("coordinator_address", "num_processes", "process_id"),
            (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID), given, strict=True) if v is None]
        raise ValueError(f"jaxcim.distributed.initialize: missing {', '.join(missing)}; give all three, or none "
                         "to let JAX detect the cluster (SLURM, Open MPI)")
    left = timeout_s
    if coordinator_address is not None:
        host, port = _check_address(coordinator_address)
        if process_id != 0:
            left = _wait_for_coordinator(host, port, timeout_s)
        elif num_processes > 1:
            print(f"jaxcim.distributed: coordinator at {coordinator_address}, waiting up to {timeout_s:g} s for "
                  f"{num_processes} processes", file=sys.stderr, flush=True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                   initialization_timeout=_whole_seconds(left),
                                   heartbeat_timeout_seconds=_whole_seconds(heartbeat_timeout_s),
                                   shutdown_timeout_seconds=_whole_seconds(shutdown_timeout_s))
    except ValueError as e:  # no cluster detected, or JAX's own argument checks
        raise ValueError(f"jaxcim.distributed.initialize: {e} (give coordinator_address, num_processes and "
                         f"process_id, or set {ENV_COORDINATOR}, {ENV_NUM_PROCESSES}, {ENV_PROCESS_ID})") from None
    if exit_on_error and jax.process_count() > 1:
        _exit_on_uncaught_exception()


def _whole_seconds(s: float) -> int:
    return max(int(s + 0.999), 1)


def _exit_on_uncaught_exception() -> None:
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        exit_now(1)

    sys.excepthook = hook


def exit_now(status: int) -> None:
    """End this process now with ``status``, output flushed, skipping JAX's exit barrier (which waits for every
    process of the run to finish: a process that failed would otherwise wait for the others, and they for it)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def peer_lost(error: BaseException) -> bool:
    """Whether ``error`` (raised by a collective) says that another process of the run has stopped."""
    text = str(error)
    return any(s in text for s in ("Connection closed by peer", "Connection reset by peer", "Gloo", "heartbeat",
                                   "coordination service", "Broken pipe"))


def check_same(values: Sequence[int], what: str) -> None:
    """Raise RuntimeError in every process unless every process passes the same integers ``values`` (the same
    number of them in each), e.g. the instances each found done in a checkpoint before resuming (a folder that
    the processes do not all see alike would make them run different chunks). One process: nothing to check."""
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    mine = np.asarray([divmod(int(v), 1 << 16) for v in values], np.int32).reshape(-1)
    seen = np.asarray(multihost_utils.process_allgather(mine))
    if (seen != seen[0]).any():
        per = [(r[0::2].astype(np.int64) << 16) + r[1::2] for r in seen]
        raise RuntimeError(f"the processes disagree on {what}: " + ", ".join(
            f"process {i}: {v.tolist()}" for i, v in enumerate(per)))


def is_primary() -> bool:
    """Whether this is process 0, the one that writes results, plots and checkpoints (True in a single process)."""
    return jax.process_index() == 0


def process_count() -> int:
    """The number of processes in the run (1 without `initialize`)."""
    return jax.process_count()


__all__ = ["ENV_COORDINATOR", "ENV_NUM_PROCESSES", "ENV_PROCESS_ID", "HEARTBEAT_TIMEOUT_S", "SHUTDOWN_TIMEOUT_S",
           "check_same", "exit_now", "initialize", "is_primary", "peer_lost", "process_count"]
