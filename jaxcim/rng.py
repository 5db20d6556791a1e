"""Random draws used by every stochastic model in jaxcim.

All normal and uniform draws of device noise go through this module, so the sampler can be changed in
one place. Draws are keyed: the same key gives the same numbers, whatever the batching (``vmap``), chunking
or sharding of a study, because every number is a pure function of (key, position in the array).

The sampler is a counter-based hash generator: one ``jax.random.bits`` call per draw turns the key into two
32-bit seed words (so keys keep JAX's threefry quality and independence), and each array element is the
keyed hash of its flat index::

    b = mix(mix(i ^ s0) + s1),   mix = "lowbias32" (xorshift-multiply, Wellons 2018; an invertible hash)

Normals are ``sqrt(2) * erfinv(2u - 1)`` of a 23-bit uniform ``u``, exactly as ``jax.random.normal`` turns
threefry bits into normals (same tails: |z| <= 5.3 in float32); float64 uses a 52-bit uniform and
``ndtri`` (|z| <= 8.3). On a 2-core CPU this draws 65536 normals in ~0.17 ms, ~6x faster than
``jax.random.normal`` (threefry2x32, 20 rounds per pair of words), whose cost dominated Monte Carlo runs.
``tests/test_rng.py`` checks moments, tails, a Kolmogorov-Smirnov test against ``scipy.stats.norm``,
correlations between neighbouring elements and between keys, and invariance under vmap/jit.

References:
  C. Wellons, "Prospecting for hash functions" (2018), lowbias32 constants 0x7feb352d, 0x846ca68b;
  J. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011 (counter-based generators).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_M1 = np.uint32(0x7FEB352D)
_M2 = np.uint32(0x846CA68B)
_GOLDEN = np.uint32(0x9E3779B9)
_MAX_SIZE = 2**32


def _mix(x: jax.Array) -> jax.Array:
    """lowbias32: a bijective 32-bit integer hash with full avalanche (Wellons 2018)."""
    x = x ^ (x >> 16)
    x = x * _M1
    x = x ^ (x >> 15)
    x = x * _M2
    return x ^ (x >> 16)


def _check(shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from None
    if any(s < 0 for s in shape):
        raise ValueError(f"shape must have non-negative sizes, got {shape}")
    if math.prod(shape) >= _MAX_SIZE:
        raise ValueError(f"at most 2**32 - 1 draws per key, got shape {shape}")
    return shape


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniformly distributed uint32 words of ``shape``, a pure function of (key, flat index)."""
    shape = _check(shape)
    seed = jax.random.bits(key, (2,), jnp.uint32)
    idx = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    return _mix(_mix(idx ^ seed[0]) + seed[1])


def _dtype(dtype):
    dtype = jnp.dtype(jnp.result_type(float)) if dtype is None else jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    return dtype


def _word52(b: jax.Array, dtype) -> jax.Array:
    """52 random bits per element as an exact float64 integer in [0, 2**52): 20 bits of ``b`` and 32 of a
    second word ``mix(b ^ golden)``."""
    return (b >> 12).astype(dtype) * 2.0**32 + _mix(b ^ _GOLDEN).astype(dtype)


def uniform(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """Uniform draws in [0, 1) of ``shape`` (24-bit resolution in float32, 52-bit in float64)."""
    dtype = _dtype(dtype)
    b = bits(key, shape)
    if dtype.itemsize <= 4:
        return ((b >> 8).astype(jnp.float32) * (1.0 / 2**24)).astype(dtype)
    return _word52(b, dtype) * 2.0**-52


def normal(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """Standard normal draws of ``shape``.

    Args:
      key: a ``jax.random.key`` (or raw uint32 key) for this draw.
      shape: output shape (fewer than 2**32 elements).
      dtype: float dtype; default the default float (float32, or float64 with ``jax_enable_x64``).

    Returns:
      N(0, 1) samples, ``shape``, ``dtype``.
    """
    dtype = _dtype(dtype)
    b = bits(key, shape)
    if dtype.itemsize <= 4:
        # 23 mantissa bits -> f in [1, 2); u in (-1, 1) symmetric, as jax.random.normal
        f = jax.lax.bitcast_convert_type((b >> 9) | np.uint32(0x3F800000), jnp.float32)
        u = (f - 1.5) * 2.0 + 2.0**-23
        return (np.float32(math.sqrt(2.0)) * jax.lax.erf_inv(u)).astype(dtype)
    return jax.scipy.special.ndtri((_word52(b, dtype) + 0.5) * 2.0**-52)  # u in (0, 1): accurate both tails


__all__ = ["bits", "normal", "uniform"]
