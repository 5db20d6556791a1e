"""Argument checks shared by the public functions: bad input fails early, naming the argument or field.

Checks look at concrete values only (shapes always); inside ``jit``/``vmap`` the values are tracers and only
shapes and dtypes are checked. A concrete device array is checked where it lives (not copied to the host).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcim.config import SECTIONS, CrossbarConfig, concrete


def is_tracer(a: Any) -> bool:
    """Whether ``a`` is an abstract value of a transformation (jit, vmap, grad)."""
    return isinstance(a, jax.core.Tracer)


def all_true(pred, a) -> bool:
    """Whether ``pred(xp, a)`` holds for every element of a concrete array, evaluated where the array lives
    (``xp`` = jax.numpy for a device array, which is then not copied to the host; numpy otherwise)."""
    if isinstance(a, jax.Array):
        with jax.ensure_compile_time_eval():  # concrete, also when called while tracing an outer function
            return bool(jnp.all(pred(jnp, a)))
    return bool(np.all(pred(np, np.asarray(a))))


def _max_abs(a) -> float:
    """Largest magnitude of a concrete array, computed in float64 on the host (XLA's CPU backend flushes
    subnormal numbers to zero, which would hide them)."""
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64)))) if np.size(a) else 0.0


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """``value`` as an int, or TypeError (not an integer) / ValueError (outside [lo, hi]) naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        upper = "" if hi is None else f" and <= {hi}"
        raise ValueError(f"{name} must be >= {lo}{upper}, got {value}")
    return int(value)


def check_number(name: str, value: Any, lo: float = 0, *, integer: bool = False, lo_open: bool = False,
                 hi: float | None = None, say_integer: bool = True) -> int | float:
    """A finite number >= ``lo`` (> ``lo`` with ``lo_open``) and <= ``hi``, as int (``integer``) or float.

    Args:
      name: the name in the message (a study key, ``[hwa] epochs``).
      say_integer: name the integer requirement in the range message (``must be an integer >= 0``).

    Raises:
      TypeError: not a number (booleans are not numbers). ValueError: not finite, out of range, or (``integer``)
        not a whole number; the message names ``name``.
    """
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
    finite = not isinstance(value, float | np.floating) or math.isfinite(value)  # (isfinite overflows on huge ints)
    if integer and finite and isinstance(value, float | np.floating) and not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not finite or value < lo or (lo_open and value == lo):
        what = f"{kind} " if integer and say_integer else ""
        raise ValueError(f"{name} must be {what}{'>' if lo_open else '>='} {lo:g}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi} ({hi:.3g}), got {value!r}")
    return int(value) if integer else float(value)


def check_int_list(name: str, value: Any, lo: int = 1, hi: int = 2**31 - 1) -> list[int]:
    """A non-empty list of integers in [lo, hi] (`check_number` for each)."""
    if not isinstance(value, list | tuple) or not value:
        raise TypeError(f"{name} must be a non-empty list of integers, got {type(value).__name__} {value!r}")
    return [check_number(name, v, lo, integer=True, hi=hi) for v in value]


def check_times(value: Any, name: str = "times") -> list[float]:
    """Read times after programming: a number or a non-empty list of finite numbers >= 0 s, as floats."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{name} must be a non-empty list of seconds, got {value!r}")
    return [check_number(name, t, 0.0) for t in value]


def check_array(name: str, a, ndim: tuple[int, ...]) -> jax.Array:
    """A real, finite, non-empty array with ``ndim`` dimensions (one of), as a float array of at least 32 bits.

    Integer arrays become the default float dtype. float16/bfloat16 arrays become float32: conductances
    (~1e-6 S) and currents (~1e-6 A) are below float16's smallest normal number (6.1e-5).
    """
    if isinstance(a, CrossbarConfig) or type(a).__name__ == "CrossbarState":
        raise TypeError(f"{name} must be an array, got {type(a).__name__} (check the argument order)")
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        try:
            a = np.asarray(a)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from None
    if a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {a.shape}")
    if not jnp.issubdtype(a.dtype, jnp.floating) and not jnp.issubdtype(a.dtype, jnp.integer):
        raise TypeError(f"{name} must be a real float array, got dtype {a.dtype}")
    if 0 in a.shape:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    if not is_tracer(a) and not all_true(lambda xp, a: xp.isfinite(a), a):
        raise ValueError(f"{name} contains NaN or inf values")
    if jnp.issubdtype(a.dtype, jnp.integer):
        a = jnp.asarray(a, dtype=jnp.result_type(float))
    elif jnp.dtype(a.dtype).itemsize < 4:
        a = jnp.asarray(a, dtype=jnp.float32)
    return a


def check_weights(name: str, w: jax.Array) -> jax.Array:
    """`check_array` for a weight matrix, plus: its largest magnitude is 0 or at least tiny / eps of its dtype
    (1e-31 in float32), so that the weights and the outputs, resolved to the dtype's precision, are normal
    numbers. Below that, subnormal intermediate values lose digits and the outputs come out wrong (at max|w|
    = 3e-38, 0.66x the exact x @ w); XLA's CPU backend flushes subnormals to zero.
    """
    w = check_array(name, w, (2,))
    if not is_tracer(w):
        fi = jnp.finfo(w.dtype)
        amax, least = _max_abs(w), float(fi.tiny) / float(fi.eps)
        if 0.0 < amax < least:
            raise ValueError(f"{name}: the largest |weight| is {amax:.3g}, below {least:.3g}, where {w.dtype} "
                             f"loses precision; scale the weights up (outputs scale with them)")
    return w


def check_cfg(cfg) -> None:
    """TypeError unless ``cfg`` is a `CrossbarConfig`."""
    if not isinstance(cfg, CrossbarConfig):
        raise TypeError(f"cfg must be a jaxcim CrossbarConfig (e.g. jc.presets.get('ideal')), "
                        f"got {type(cfg).__name__}")


def check_representable(cfg: CrossbarConfig, dtype) -> None:
    """ValueError naming the field if a concrete config number, or the full-scale current of an array
    (rows x v_read x g_max), overflows or underflows ``dtype`` (float32 unless x64 is enabled)."""
    fi = jnp.finfo(dtype)
    for section in SECTIONS:
        sec = getattr(cfg, section)
        for f in dataclasses.fields(sec):
            if not f.metadata.get("pytree_node", True):
                continue
            arr = concrete(getattr(sec, f.name))
            if arr is None:
                continue
            mag = np.abs(arr[arr != 0]) if arr.ndim else (np.abs(arr[None]) if arr != 0 else np.zeros(0))
            if mag.size and (mag.max() > float(fi.max) or mag.min() < float(fi.tiny)):
                raise ValueError(f"{section}.{f.name} = {getattr(sec, f.name)!r} is not representable in "
                                 f"{jnp.dtype(dtype).name} (normal magnitudes {float(fi.tiny):.3g} .. "
                                 f"{float(fi.max):.3g}); values are in SI units (siemens, volts, ohms)")
    g_max, v_read = concrete(cfg.device.g_max), concrete(cfg.dac.v_read)
    if g_max is not None and v_read is not None:
        i_full = float(np.max(g_max)) * float(np.max(v_read)) * cfg.mapping.rows
        if not float(fi.tiny) * 1e6 <= i_full <= float(fi.max) / 1e6:
            raise ValueError(f"an array's full-scale current mapping.rows x dac.v_read x device.g_max = "
                             f"{i_full:.3g} A is outside what {jnp.dtype(dtype).name} computes accurately "
                             f"({float(fi.tiny) * 1e6:.3g} .. {float(fi.max) / 1e6:.3g} A)")


def check_product(x: jax.Array, w: jax.Array) -> None:
    """ValueError if x @ w could overflow its dtype (max|x| * max|w| * in_features > the largest number)."""
    if is_tracer(x) or is_tracer(w):
        return
    bound = _max_abs(x) * _max_abs(w) * w.shape[0]
    fmax = float(jnp.finfo(jnp.result_type(x.dtype, w.dtype)).max)
    if not math.isfinite(bound) or bound > fmax:
        raise ValueError(f"x @ w can reach {bound:.3g}, beyond the largest {jnp.result_type(x.dtype, w.dtype)} "
                         f"number ({fmax:.3g}): scale the inputs or the weights down")


def check_key(key) -> None:
    """TypeError if no key was given."""
    if key is None:
        raise TypeError("key is required: a jax.random.key(seed) for this device instance")


def check_t(t) -> None:
    """ValueError unless the read time(s) ``t`` are finite and >= 0 seconds."""
    if not is_tracer(t):
        arr = np.asarray(t, dtype=float)
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"t (seconds since programming) must be finite and >= 0, got {t!r}")


def check_inputs(cfg: CrossbarConfig, x, in_features: int, name: str = "x") -> jax.Array:
    """Input vectors (batch, in_features) or (in_features,) as `check_array`; non-negative for unsigned DACs."""
    x = check_array(name, x, (1, 2))
    if x.shape[-1] != in_features:
        raise ValueError(f"{name} has {x.shape[-1]} features in its last axis but the weights have "
                         f"in_features = {in_features}")
    if not cfg.dac.signed and not is_tracer(x) and not all_true(lambda xp, a: a >= 0, x):
        raise ValueError(f"{name} has negative values but dac.signed = false")
    return x
