"""Random draws used by every stochastic model in jaxcim.

All normal and uniform draws of device noise go through this module, so the sampler can be changed in
one place. Draws are keyed: the same key gives the same numbers, whatever the batching (``vmap``), chunking
or sharding of a study, because every number is a pure function of (key, position in the array).

The sampler is a counter-based hash generator: one ``jax.random.bits`` call per draw turns the key into
32-bit seed words (so keys keep JAX's threefry quality and independence), and each array element is the
keyed hash of its flat index::

    b = mix(mix(i ^ s0) + s1),   mix = "lowbias32" (xorshift-multiply, Wellons 2018; an invertible hash)

Normals (float32) come in pairs by the Box-Muller transform (Box & Muller 1958) of two such words with
independent seeds, ``b1`` and ``b2``: radius ``r = sqrt(-2 log u)`` with ``u`` the 24-bit uniform
``((b1 >> 8) + 1/2) / 2**24`` (so |z| <= 5.89, further than ``jax.random.normal``'s 5.3 in float32), angle
``2 pi v`` with ``v`` from 24 bits of ``b2`` (2 bits pick the quadrant, sine and cosine of the rest are
Cephes' single-precision minimax polynomials on [-pi/4, pi/4], Moshier 1989). `normal_pair` returns both
``r cos`` and ``r sin``; `normal` returns ``r cos``, the first of the pair. A pair costs one logarithm and
one square root, where the inverse error function costs a logarithm, a square root and a degree-9
polynomial per normal. On a 2-core CPU (AVX-512), 1.8 M normals kept in memory take ~1.4 ms as pairs,
~2.7 ms one at a time, ~3.7 ms with ``sqrt(2) erfinv(2u - 1)`` of one hash (this module's earlier sampler,
also what ``jax.random.normal`` does to threefry bits) and ~11 ms with ``jax.random.normal``, whose
threefry2x32 (20 rounds per pair of words) dominated Monte Carlo runs. Float64 draws use 52-bit uniforms and ``ndtri``
(|z| <= 8.3), one normal per 52-bit uniform.

``tests/test_rng.py`` checks moments, tails, a Kolmogorov-Smirnov test against ``scipy.stats.norm``, the
independence of the two normals of a pair, correlations between neighbouring elements and between keys, and
invariance under vmap/jit.

References:
  C. Wellons, "Prospecting for hash functions" (2018), lowbias32 constants 0x7feb352d, 0x846ca68b;
  J. Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011 (counter-based generators);
  G. E. P. Box, M. E. Muller, "A note on the generation of random normal deviates", Ann. Math. Statist. 29,
  610 (1958);
  S. L. Moshier, "Methods and Programs for Mathematical Functions" (1989), Cephes ``sinf.c``/``cosf.c``
  (coefficients of sin and cos on [-pi/4, pi/4], relative error ~1e-7 in float32).
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


def _words(key: jax.Array, shape: tuple[int, ...], count: int) -> list[jax.Array]:
    """``count`` uint32 words per element with independent seeds, each a pure function of (key, flat index)."""
    shape = _check(shape)
    seed = jax.random.bits(key, (2 * count,), jnp.uint32)
    idx = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    return [_mix(_mix(idx ^ seed[2 * j]) + seed[2 * j + 1]) for j in range(count)]


def bits(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniformly distributed uint32 words of ``shape``, a pure function of (key, flat index)."""
    return _words(key, shape, 1)[0]


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


_SIN = tuple(np.float32(c) for c in (-1.6666654611e-1, 8.3321608736e-3, -1.9515295891e-4))
_COS = tuple(np.float32(c) for c in (4.166664568298827e-2, -1.388731625493765e-3, 2.443315711809948e-5))


def _sin_cos_turn(b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(sin, cos) of the angle 2 pi v, float32, with v uniform in [0, 1) from the top 24 bits of ``b``.

    The top 2 bits pick the quadrant q; the next 22 give x in (-pi/4, pi/4) (cell midpoints), and the
    angle is q pi/2 + x, so no range reduction is needed.
    """
    q = b >> 30
    x = (((b >> 8) & np.uint32(0x3FFFFF)).astype(jnp.float32) + np.float32(0.5)) * np.float32(2.0**-22)
    x = (x - np.float32(0.5)) * np.float32(math.pi / 2)
    z = x * x
    sin = x + x * z * (_SIN[0] + z * (_SIN[1] + z * _SIN[2]))
    cos = 1.0 - 0.5 * z + z * z * (_COS[0] + z * (_COS[1] + z * _COS[2]))
    odd = (q & 1) == 1
    sin, cos = jnp.where(odd, cos, sin), jnp.where(odd, sin, cos)  # + pi/2: (sin, cos) -> (cos, -sin)
    return jnp.where(q >= 2, -sin, sin), jnp.where((q == 1) | (q == 2), -cos, cos)


def _radius(b: jax.Array) -> jax.Array:
    """Box-Muller radius sqrt(-2 log u), float32, u = (top 24 bits of ``b`` + 1/2) / 2**24 in (0, 1)."""
    u = ((b >> 8).astype(jnp.float32) + np.float32(0.5)) * np.float32(2.0**-24)
    return jnp.sqrt(np.float32(-2.0) * jnp.log(u))


def _ndtri(b: jax.Array, dtype) -> jax.Array:
    return jax.scipy.special.ndtri((_word52(b, dtype) + 0.5) * 2.0**-52)  # u in (0, 1): accurate both tails


def normal_pair(key: jax.Array, shape: tuple[int, ...], dtype=None) -> tuple[jax.Array, jax.Array]:
    """Two independent arrays of standard normal draws of ``shape``, at little more than the cost of one.

    Draw the noise of two same-shaped arrays (the G+ and G- cells of differential pairs) with one call: in
    float32 the pair shares one logarithm and square root (Box-Muller). The first array equals
    ``normal(key, shape, dtype)``.

    Args:
      key: a ``jax.random.key`` (or raw uint32 key) for this draw.
      shape: shape of each array (fewer than 2**32 elements).
      dtype: float dtype; default the default float (float32, or float64 with ``jax_enable_x64``).

    Returns:
      (z1, z2): N(0, 1) samples, each ``shape``, ``dtype``, independent of each other.
    """
    dtype = _dtype(dtype)
    b1, b2 = _words(key, shape, 2)
    if dtype.itemsize <= 4:
        r = _radius(b1)
        sin, cos = _sin_cos_turn(b2)
        return (r * cos).astype(dtype), (r * sin).astype(dtype)
    return _ndtri(b1, dtype), _ndtri(b2, dtype)


def normal(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """Standard normal draws of ``shape`` (the first array of `normal_pair`; use that for two arrays).

    Args:
      key: a ``jax.random.key`` (or raw uint32 key) for this draw.
      shape: output shape (fewer than 2**32 elements).
      dtype: float dtype; default the default float (float32, or float64 with ``jax_enable_x64``).

    Returns:
      N(0, 1) samples, ``shape``, ``dtype``.
    """
    return normal_pair(key, shape, dtype)[0]  # compiled, the unused second array is never computed


def normals(key: jax.Array, shapes, dtype=None) -> tuple[jax.Array, ...]:
    """Independent standard normal arrays, one of each shape in ``shapes``.

    Consecutive same-shaped arrays are drawn as pairs (`normal_pair`): G+ and G- cells drawn together cost
    little more than one array. With one shape, the array equals ``normal(key, shape, dtype)``.
    """
    shapes = [_check(s) for s in shapes]
    groups, i = [], 0
    while i < len(shapes):
        size = 2 if i + 1 < len(shapes) and shapes[i] == shapes[i + 1] else 1
        groups.append((i, size))
        i += size
    keys = [key] if len(groups) == 1 else list(jax.random.split(key, len(groups)))
    out = []
    for k, (i, size) in zip(keys, groups, strict=True):
        out.extend(normal_pair(k, shapes[i], dtype) if size == 2 else (normal(k, shapes[i], dtype),))
    return tuple(out)


__all__ = ["bits", "normal", "normal_pair", "normals", "uniform"]
