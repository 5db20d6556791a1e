"""Several processes (hosts) in one run: JAX's multi-controller runtime.

Every process runs the same program; `initialize` joins them, after which ``jax.devices()`` lists the devices
of all processes and a mesh spans them. Studies write their files from the primary process only (`is_primary`).
"""

from __future__ import annotations

import jax

DEFAULT_TIMEOUT_S = 300.0
"""How long `initialize` waits for every process to join before it fails, s."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join this process to a multi-process JAX run (`jax.distributed.initialize`).

    Args:
      coordinator_address: ``HOST:PORT`` of process 0's coordinator service.
      num_processes: the number of processes.
      process_id: this process's index, 0 .. num_processes - 1.
      timeout_s: how long to wait for every process to join, s.

    With all three None, JAX detects the cluster (SLURM, Open MPI, Cloud TPU).
    """
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=max(1, int(timeout_s)))


def is_primary() -> bool:
    """Whether this is process 0, the one that writes a study's files."""
    return jax.process_index() == 0


def process_count() -> int:
    """The number of processes of the run (1 without `initialize`)."""
    return jax.process_count()


__all__ = ["DEFAULT_TIMEOUT_S", "initialize", "is_primary", "process_count"]
