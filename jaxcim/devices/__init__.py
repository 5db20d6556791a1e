"""Device models: what a cell does when programmed, as time passes, and when read.

Each function takes the `DeviceConfig` and conductance arrays (S) and dispatches on ``dev.model``
(a static field, so the dispatch happens at trace time). Models:

- ``ideal``: no noise, no drift.
- ``reram-wan2022``: NeuRRAM ReRAM (`jaxcim.devices.reram`).
- ``pcm-ibm``: IBM PCM-like model (`jaxcim.devices.pcm`).
- ``custom``: polynomial sigma(G) and mean error (`jaxcim.devices.custom`), e.g. from `fit_custom`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcim import rng
from jaxcim.config import DeviceConfig
from jaxcim.devices import custom, pcm, reram
from jaxcim.devices.custom import fit_custom, poly

__all__ = [
    "at_time", "custom", "fit_custom", "pcm", "programming_mean", "programming_sigma", "quantize_levels",
    "read_sigma", "reram", "sample_time_params",
]


def programming_sigma(dev: DeviceConfig, g_target: jax.Array) -> jax.Array:
    """Standard deviation of one write around ``g_target`` (S), scaled by ``dev.prog_noise_scale``."""
    if dev.model == "ideal":
        return jnp.zeros_like(g_target)
    if dev.model == "reram-wan2022":
        sigma = reram.programming_sigma(g_target, 1.0, dev.g_max)
    elif dev.model == "pcm-ibm":
        sigma = pcm.programming_sigma(g_target, dev.g_max)
    else:
        sigma = jnp.maximum(poly(dev.sigma_poly, g_target / dev.g_max), 0.0) * dev.g_max
    return sigma * dev.prog_noise_scale


def programming_mean(dev: DeviceConfig, g_target: jax.Array) -> jax.Array:
    """Systematic write error mean(G_prog - G_target), S (non-zero only for fitted custom devices)."""
    if dev.model == "custom" and dev.mean_poly:
        return poly(dev.mean_poly, g_target / dev.g_max) * dev.g_max
    return jnp.zeros_like(g_target)


def sample_time_params(dev: DeviceConfig, key: jax.Array, g_target):
    """Per-cell random parameters of the time evolution, drawn once when the cell is programmed.

    PCM: the drift exponent nu ~ N(mu(G), s(G)) floored at 0. ReRAM: the standard-normal draw of the
    relaxation increment. Ideal and custom devices: None. ``g_target`` (S) may be a tuple of arrays (G+ and
    G- targets), drawn together as in `jaxcim.rng.normals`; the result then has the same structure.
    """
    if dev.model not in ("pcm-ibm", "reram-wan2022"):
        return None
    single = not isinstance(g_target, tuple)
    targets = (g_target,) if single else g_target
    z = rng.normals(key, [t.shape for t in targets], targets[0].dtype)
    if dev.model == "pcm-ibm":
        def nu(t, z):
            mu, s = pcm.drift_nu_stats(t, dev.g_max)
            return jnp.maximum(mu + s * z, 0.0)

        z = tuple(nu(t, z) for t, z in zip(targets, z, strict=True))
    return z[0] if single else z


def at_time(dev: DeviceConfig, g_prog: jax.Array, g_target: jax.Array, params, t) -> jax.Array:
    """Conductance ``t`` seconds after programming (drift for PCM, relaxation for ReRAM), S."""
    if dev.model == "pcm-ibm":
        return pcm.drift(g_prog, params * dev.drift_scale, t)
    if dev.model == "reram-wan2022":
        g = g_prog + dev.drift_scale * reram.relaxation_sigma(g_target, t, dev.g_max) * params
        return jnp.maximum(g, 0.0)
    return g_prog


def read_sigma(dev: DeviceConfig, g: jax.Array, g_target: jax.Array, t) -> jax.Array:
    """Standard deviation of one read of conductances ``g`` at time ``t`` after programming, S."""
    if dev.model == "ideal":
        return jnp.zeros_like(g)
    if dev.model == "pcm-ibm":
        sigma = pcm.read_noise_sigma(g, g_target, t, dev.g_max)
    else:
        sigma = jnp.abs(g) * dev.read_noise_rel
    return sigma * dev.read_noise_scale


def quantize_levels(dev: DeviceConfig, g: jax.Array) -> jax.Array:
    """Round targets to the nearest of ``dev.levels`` evenly spaced levels (straight-through gradient)."""
    if not dev.levels:
        return g
    from jaxcim.converters import ste_round

    span = dev.g_max - dev.g_min
    n = dev.levels - 1
    return dev.g_min + ste_round((g - dev.g_min) / span * n) / n * span
