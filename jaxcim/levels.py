"""Multi-level cells: how many cells are read in the wrong level, over time and temperature.

A cell storing one of L levels is programmed to the level's nominal conductance (L levels evenly spaced in
[g_min, g_max], as `jaxcim.devices.quantize_levels` places them), ages (drift, relaxation, retention at the device's
temperature) and is read once; the read is decoded to the nearest nominal level (thresholds half way between
levels). Levels closer together (more levels in the same range) fail first, and each level fails at the pace of its
own spread and retention (per-level polynomials of `jaxcim.devices.ReRAMRetention`, the state-dependent spreads of
every model).

References:
  The level error rate of multi-level ReRAM as the overlap of the level distributions across the read thresholds:
  e.g. Milo et al., "Multilevel HfO2-based RRAM devices for low-power neuromorphic networks", APL Mater. 7,
  081120 (2019) (Gaussian tails of neighbouring levels).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from jaxcim import devices, programming
from jaxcim.config import CrossbarConfig, check_int
from jaxcim.devices.base import DeviceModel


def level_error_rate(
    device: Any, levels: int, t, temperature=None, *, key: jax.Array, cells_per_level: int = 4096,
    per_level: bool = False,
) -> jax.Array:
    """Fraction of multi-level cells read in the wrong level, t seconds after programming (Monte Carlo).

    Args:
      device: a `DeviceModel`, or a `CrossbarConfig` whose device and programming method (open loop or write-verify)
        are used; a bare device is programmed open loop.
      levels: levels per cell (>= 2), evenly spaced in [g_min, g_max]. Static.
      t: time since programming, s (scalar; vmap for several).
      temperature: temperature since programming, K; None: the device's ``temperature``. Scalar; vmappable.
      key: key of the cells (programming, time-evolution draws and the read): the same key gives the same cells at
        every t and temperature, so a curve over time is smooth.
      cells_per_level: cells simulated per level. Static.
      per_level: return the rate of each level (levels,) instead of the mean over levels. Static.

    Returns:
      the error rate (dimensionless, in [0, 1]), () or (levels,).
    """
    check_int("level_error_rate", "levels", levels, 2)
    check_int("level_error_rate", "cells_per_level", cells_per_level, 1)
    if isinstance(device, DeviceModel):
        cfg = CrossbarConfig(device=device)  # open-loop programming
    elif isinstance(getattr(device, "device", None), DeviceModel):
        cfg = device
    else:
        raise TypeError(f"device must be a jaxcim DeviceModel or CrossbarConfig, got {type(device).__name__}")
    if temperature is not None:
        cfg = cfg.replace(device=cfg.device.replace(temperature=temperature))
    return _error_rate(cfg, levels, cells_per_level, per_level, jnp.asarray(t, jnp.result_type(float)), key)


@partial(jax.jit, static_argnums=(1, 2, 3))
def _error_rate(cfg, levels: int, cells: int, per_level: bool, t, key):
    dev = cfg.device.replace(levels=0)  # the targets are the nominal levels already
    cfg = cfg.replace(device=dev)
    k_write, k_time, k_read = jax.random.split(key, 3)
    span = dev.g_max - dev.g_min
    index = jnp.repeat(jnp.arange(levels), cells)
    targets = dev.g_min + span * index.astype(t.dtype) / (levels - 1)
    g_prog, _ = programming.write(cfg, targets, k_write)
    params = devices.sample_time_params(dev, k_time, targets)
    g = devices.at_time(dev, g_prog, targets, params, t)
    if dev.noisy_reads:
        g = devices.read(dev, g, g_prog, targets, t, jax.random.normal(k_read, g.shape, g.dtype))
    read_level = jnp.clip(jnp.round((g - dev.g_min) / span * (levels - 1)), 0, levels - 1)
    wrong = (read_level != index).astype(t.dtype).reshape(levels, cells)
    return wrong.mean(axis=1) if per_level else wrong.mean()
