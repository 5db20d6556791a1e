"""Checks of one config field (`owner.name` in every message): the primitives the config sections and the device
models validate their fields with. A leaf module: it imports nothing from jaxcim, so every model can use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np


def concrete(value: Any) -> float | np.ndarray | None:
    """The value as numpy if it is concrete (not a tracer or placeholder), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | np.ndarray | np.generic):
        return np.asarray(value, dtype=float)
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer):
        try:
            return np.asarray(value, dtype=float)
        except Exception:  # noqa: BLE001 - deleted or non-addressable buffers: skip the check
            return None
    return None


def is_static_zero(value: Any) -> bool:
    """True if ``value`` is a concrete zero (a Python/numpy number, not a tracer): the model can skip work."""
    arr = concrete(value)
    return arr is not None and not np.any(arr)


def field_name(owner: str, name: str) -> str:
    return f"{owner}.{name}" if owner else name


_NOT_NUMBERS = (str, bytes, bool, complex, list, tuple, dict, Mapping, set, frozenset)


def check_number_type(owner: str, name: str, value: Any) -> None:
    """Raise TypeError naming ``owner.name`` if ``value`` cannot be a numeric leaf: a string, bool, complex number,
    list, tuple, dict or set, or an array of strings, objects or complex numbers. Tracers, arrays of real numbers
    and placeholders that JAX puts in pytrees (None, objects) pass."""
    bad = isinstance(value, _NOT_NUMBERS) or isinstance(value, np.complexfloating)
    dtype = getattr(value, "dtype", None)
    if not bad and isinstance(value, np.ndarray | np.generic | jax.Array):
        bad = np.dtype(dtype).kind not in "biuf"
    if bad:
        kind = f"array of {dtype}" if dtype is not None and not isinstance(value, np.generic) else type(value).__name__
        raise TypeError(f"{field_name(owner, name)} must be a number, got {kind} {value!r}")


def check_bool(owner: str, name: str, value: Any) -> None:
    """Raise TypeError naming ``owner.name`` unless ``value`` is a real boolean (``"false"``, 0, 1 are not)."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{field_name(owner, name)} must be true or false (a boolean), got {type(value).__name__} "
                        f"{value!r}")


def check_range(
    owner: str, name: str, value: Any, lo: float | None = None, hi: float | None = None,
    *, lo_open: bool = False, hi_open: bool = False,
) -> None:
    """Raise ValueError naming ``owner.name`` if a concrete value is NaN or outside [lo, hi]; TypeError if it is
    not a number (`check_number_type`: strings, lists, tables, bools)."""
    check_number_type(owner, name, value)
    arr = concrete(value)
    if arr is None:
        return
    field = field_name(owner, name)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{field} must be finite, got {value!r}")
    lo_bad = lo is not None and (np.any(arr <= lo) if lo_open else np.any(arr < lo))
    hi_bad = hi is not None and (np.any(arr >= hi) if hi_open else np.any(arr > hi))
    if lo_bad or hi_bad:
        left = "(" if lo_open else "["
        right = ")" if hi_open else "]"
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf" if hi is None else f"{hi:g}"
        raise ValueError(f"{field} must be in {left}{lo_s}, {hi_s}{right}, got {value!r}")


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner}.{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")


def check_int(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{owner}.{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        upper = "" if hi is None else f" and <= {hi}"
        raise ValueError(f"{owner}.{name} must be an integer >= {lo}{upper}, got {value}")


__all__ = ["check_bool", "check_choice", "check_int", "check_number_type", "check_range", "concrete", "field_name",
           "is_static_zero"]
