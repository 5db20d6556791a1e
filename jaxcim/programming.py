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


def write(cfg: CrossbarConfig, g_target, key: jax.Array):
    """Program cells to ``g_target`` with the configured method; returns (G, info).

    Args:
      cfg: crossbar config (device and programming sections are used).
      g_target: target conductances, S, any shape; or a tuple of such arrays programmed together, e.g.
        ``(G+ targets, G- targets)``: same-shaped arrays share each write's normal draw as a pair
        (`jaxcim.rng.normal_pair`), which costs little more than one array's.
      key: key of this programming (write noise, range spread, stuck faults).

    Returns:
      (G, info): programmed conductances, S, same structure as ``g_target``; `ProgramInfo` pooled over all
      cells.
    """
    single = not isinstance(g_target, tuple)
    targets = (g_target,) if single else g_target
    g, info = _write(cfg, targets, key)
    return (g[0] if single else g), info


def _write(cfg: CrossbarConfig, targets: tuple[jax.Array, ...], key: jax.Array):
    dev, prog = cfg.device, cfg.programming
    k_spread, k_write, k_stuck = jax.random.split(key, 3)
    shapes = [t.shape for t in targets]
    dtype = targets[0].dtype

    def each(f, *trees):
        return tuple(f(*a) for a in zip(*trees, strict=True))

    targets = each(lambda t: devices.quantize_levels(dev, t), targets)
    if not is_static_zero(dev.range_spread):
        def spread(t, z):
            top = jnp.maximum(dev.g_min + (dev.g_max - dev.g_min) * (1.0 + dev.range_spread * z), dev.g_min)
            return jnp.where(t > top, top, t)  # a target at the top keeps its full gradient

        targets = each(spread, targets, rng.normals(k_spread, shapes, dtype))
    mean = each(lambda t: devices.programming_mean(dev, t), targets)
    sigma = each(lambda t: devices.programming_sigma(dev, t), targets)
    sg_t, sg_mean, sg_sigma = (jax.tree.map(jax.lax.stop_gradient, a) for a in (targets, mean, sigma))

    def one_write(k):
        return each(lambda t, m, s, z: t + m + s * z, sg_t, sg_mean, sg_sigma, rng.normals(k, shapes, dtype))

    if is_static_zero(dev.stuck_off_rate) and is_static_zero(dev.stuck_on_rate):
        stuck_off = stuck_on = stuck = each(lambda t: jnp.zeros(t.shape, bool), targets)
    else:
        u = tuple(rng.uniform(jax.random.fold_in(k_stuck, j), t.shape, dtype) for j, t in enumerate(targets))
        stuck_off = each(lambda u: u < dev.stuck_off_rate, u)
        stuck_on = each(lambda u: u >= 1.0 - dev.stuck_on_rate, u)
        stuck = each(jnp.logical_or, stuck_off, stuck_on)
    tol = prog.tolerance * (dev.g_max - dev.g_min)
    n_cells = sum(t.size for t in targets)

    def total(arrays):
        return sum(jnp.sum(a) for a in arrays)

    if prog.method == "open_loop" or prog.max_iterations == 0:
        g = one_write(jax.random.fold_in(k_write, 0))
        pulses = jnp.ones((), dtype)
        iterations = jnp.zeros((), jnp.int32)
    else:
        def body(i, carry):
            g, n_pulses, n_iter = carry
            bad = each(lambda g, t, s: (jnp.abs(g - t) > tol) & ~s, g, sg_t, stuck)
            g = each(jnp.where, bad, one_write(jax.random.fold_in(k_write, i + 1)), g)
            n_pulses = each(jnp.add, n_pulses, bad)
            return g, n_pulses, n_iter + jnp.any(jnp.stack([jnp.any(b) for b in bad])).astype(jnp.int32)

        g0 = one_write(jax.random.fold_in(k_write, 0))
        g, n_pulses, iterations = jax.lax.fori_loop(
            0, prog.max_iterations, body, (g0, each(jnp.ones_like, g0), jnp.zeros((), jnp.int32)))
        pulses = total(n_pulses) / n_cells

    def finish(g, t, m, s, sg_t, sg_m, sg_s, off, on):
        # Reparameterized value: same number, gradient of one write with normalized error e.
        e = jax.lax.stop_gradient(jnp.where(sg_s > 0, (g - sg_t - sg_m) / jnp.where(sg_s > 0, sg_s, 1.0), 0.0))
        g = t + m + s * e
        g = jnp.where(g < 0.0, 0.0, g)  # a conductance cannot be negative (g = 0 keeps its gradient)
        return jnp.where(off, dev.g_min, jnp.where(on, dev.g_max, g))

    g = each(finish, g, targets, mean, sigma, sg_t, sg_mean, sg_sigma, stuck_off, stuck_on)
    not_stuck = jnp.maximum(n_cells - total(stuck), 1)
    unconverged = total(each(lambda g, t, s: (jnp.abs(g - t) > tol) & ~s, g, targets, stuck)) / not_stuck
    info = ProgramInfo(
        pulses=jax.lax.stop_gradient(pulses),
        iterations=iterations,
        unconverged=jax.lax.stop_gradient(unconverged.astype(dtype)),
        stuck=(total(stuck) / n_cells).astype(dtype),
    )
    return g, info
