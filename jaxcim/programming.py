"""Programming: target conductances -> programmed conductances.

One write lands at ``G_target + mean(G_target) + sigma(G_target) * eps`` (eps ~ N(0, 1)), the device
model giving mean and sigma. Open-loop programming writes once. Write-verify reads every cell back and
re-writes, with fresh noise, those whose error exceeds ``tolerance * (g_max - g_min)``, for at most
``max_iterations`` rounds (a static count, so the loop is a fixed-size ``lax.fori_loop``).

Gradients are reparameterized: the programmed value is written ``G_target + mean + sigma(G_target) * e``
where ``e`` is the (stop-gradient) normalized final error, so d G / d G_target carries d sigma / d G_target
and write-verify has the same gradient as one write whose error happened to be ``e`` (a custom gradient:
the loop itself is never differentiated).

Also applied here: multi-level quantization of targets, device-to-device range spread (a cell's
conductance range scaled by 1 + range_spread * N(0, 1), targets above its top saturate there), and
stuck-at-g_min / stuck-at-g_max faults (those cells ignore programming).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxcim import devices, rng
from jaxcim.config import CrossbarConfig, is_static_zero


@struct.dataclass
class ProgramInfo:
    """What programming did (per array of cells).

    Attributes:
      pulses: mean write pulses per cell (1 for open loop).
      iterations: verify rounds that re-wrote at least one cell.
      unconverged: fraction of (non-stuck) cells still outside the tolerance at the end.
      stuck: fraction of cells stuck at g_min or g_max.
    """

    pulses: jax.Array
    iterations: jax.Array
    unconverged: jax.Array
    stuck: jax.Array


def write(cfg: CrossbarConfig, g_target: jax.Array, key: jax.Array) -> tuple[jax.Array, ProgramInfo]:
    """Program cells to ``g_target`` (S, any shape) with the configured method; returns (G, info)."""
    dev, prog = cfg.device, cfg.programming
    k_spread, k_write, k_stuck = jax.random.split(key, 3)
    g_target = devices.quantize_levels(dev, g_target)
    if not is_static_zero(dev.range_spread):
        top = dev.g_min + (dev.g_max - dev.g_min) * (
            1.0 + dev.range_spread * rng.normal(k_spread, g_target.shape, g_target.dtype))
        top = jnp.maximum(top, dev.g_min)
        g_target = jnp.where(g_target > top, top, g_target)  # a target at the top keeps its full gradient
    mean = devices.programming_mean(dev, g_target)
    sigma = devices.programming_sigma(dev, g_target)
    sg_t, sg_mean, sg_sigma = (jax.lax.stop_gradient(a) for a in (g_target, mean, sigma))

    def one_write(k):
        return sg_t + sg_mean + sg_sigma * rng.normal(k, g_target.shape, g_target.dtype)

    if is_static_zero(dev.stuck_off_rate) and is_static_zero(dev.stuck_on_rate):
        stuck_off = stuck_on = stuck = jnp.zeros(g_target.shape, bool)
    else:
        u = rng.uniform(k_stuck, g_target.shape, g_target.dtype)
        stuck_off = u < dev.stuck_off_rate
        stuck_on = u >= 1.0 - dev.stuck_on_rate
        stuck = stuck_off | stuck_on
    tol = prog.tolerance * (dev.g_max - dev.g_min)

    if prog.method == "open_loop" or prog.max_iterations == 0:
        g = one_write(jax.random.fold_in(k_write, 0))
        pulses = jnp.ones((), g_target.dtype)
        iterations = jnp.zeros((), jnp.int32)
    else:
        def body(i, carry):
            g, n_pulses, n_iter = carry
            bad = (jnp.abs(g - sg_t) > tol) & ~stuck
            g = jnp.where(bad, one_write(jax.random.fold_in(k_write, i + 1)), g)
            return g, n_pulses + bad, n_iter + jnp.any(bad).astype(jnp.int32)

        g0 = one_write(jax.random.fold_in(k_write, 0))
        g, n_pulses, iterations = jax.lax.fori_loop(
            0, prog.max_iterations, body, (g0, jnp.ones_like(g0), jnp.zeros((), jnp.int32)))
        pulses = jnp.mean(n_pulses)

    # Reparameterized value: same number, gradient of one write with normalized error e.
    e = jax.lax.stop_gradient(jnp.where(sg_sigma > 0, (g - sg_t - sg_mean) / jnp.where(
        sg_sigma > 0, sg_sigma, 1.0), 0.0))
    g = g_target + mean + sigma * e
    g = jnp.where(g < 0.0, 0.0, g)  # a conductance cannot be negative (g = 0 keeps its gradient)
    g = jnp.where(stuck_off, dev.g_min, jnp.where(stuck_on, dev.g_max, g))
    not_stuck = jnp.maximum(jnp.sum(~stuck), 1)
    unconverged = jnp.sum((jnp.abs(g - g_target) > tol) & ~stuck) / not_stuck
    info = ProgramInfo(
        pulses=jax.lax.stop_gradient(pulses),
        iterations=iterations,
        unconverged=jax.lax.stop_gradient(unconverged.astype(g.dtype)),
        stuck=jnp.mean(stuck.astype(g.dtype)),
    )
    return g, info
