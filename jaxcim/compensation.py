"""Drift compensation: what a chip does at read time to undo the common drift of its conductances.

A compensation is a small hashable object (a static part of `jaxcim.CrossbarConfig`, ``drift_compensation=``)
implementing `DriftCompensation`; `jaxcim.read` calls it with the chip's all-ones probe read (the sum of every
output of an all-ones input, the same probe right after programming and at the read time) and never asks which
compensation it has. ``drift_compensation = true`` in a TOML file (or ``True`` in Python) is
`GlobalDriftCompensation`; ``false`` (or ``None``) is none.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np


@runtime_checkable
class DriftCompensation(Protocol):
    """A drift compensation applied to a read's outputs.

    Attributes:
      name: how the compensation is written in a TOML file (``true`` for the global one).
    """

    name: str

    def compensate(self, y: jax.Array, probe0: jax.Array, probe_t: jax.Array) -> jax.Array:
        """The compensated outputs from the outputs ``y`` (batch, out) read at time t, the all-ones probe read
        right after programming ``probe0`` and at time t ``probe_t`` (A)."""


@dataclasses.dataclass(frozen=True)
class GlobalDriftCompensation:
    """Global drift compensation: outputs scaled by ``probe0 / probe_t``, one factor for the whole chip.

    References:
      V. Joshi et al., "Accurate deep neural network inference using computational phase-change memory",
      Nat. Commun. 11, 2473 (2020), Methods "Global drift compensation"; IBM aihwkit
      ``GlobalDriftCompensation`` (aihwkit/inference/compensation/drift.py).
    """

    name: str = dataclasses.field(default="global", init=False)

    def compensate(self, y: jax.Array, probe0: jax.Array, probe_t: jax.Array) -> jax.Array:
        return y * probe0 / probe_t


def as_drift_compensation(value: Any) -> DriftCompensation | None:
    """``True`` -> `GlobalDriftCompensation`, ``False``/``None`` -> None, a `DriftCompensation` -> itself;
    anything else is a TypeError naming the field."""
    if value is None or isinstance(value, DriftCompensation):
        return value
    if isinstance(value, bool | np.bool_):
        return GlobalDriftCompensation() if value else None
    raise TypeError(f"drift_compensation must be true or false (a boolean), got {type(value).__name__} {value!r}, "
                    "or a drift compensation object (jaxcim.compensation.DriftCompensation)")


def to_plain(value: DriftCompensation | None) -> bool | str:
    """How a compensation is written in TOML/JSON: ``false`` for none, ``true`` for the global one, else its
    name."""
    if value is None:
        return False
    return True if isinstance(value, GlobalDriftCompensation) else value.name


__all__ = ["DriftCompensation", "GlobalDriftCompensation", "as_drift_compensation", "to_plain"]
