"""Random draws used by every stochastic model in jaxcim.

All normal and uniform draws of device noise go through this module, so the sampler can be changed in
one place. Draws are keyed (``jax.random``): the same key gives the same numbers, whatever the batching.
"""

from __future__ import annotations

import jax


def normal(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """Standard normal draws of ``shape``."""
    return jax.random.normal(key, shape, dtype) if dtype is not None else jax.random.normal(key, shape)


def uniform(key: jax.Array, shape: tuple[int, ...], dtype=None) -> jax.Array:
    """Uniform draws in [0, 1) of ``shape``."""
    return jax.random.uniform(key, shape, dtype) if dtype is not None else jax.random.uniform(key, shape)
