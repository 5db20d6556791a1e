"""Device models: what a cell does when programmed, as time passes, and when read.

Every model is a `DeviceModel` (`jaxcim.devices.base`: the protocol), one file each:

- ``ideal`` (`Ideal`): no noise, no drift.
- ``reram-wan2022`` (`ReRAMWan2022`): NeuRRAM ReRAM (`jaxcim.devices.reram`).
- ``pcm-ibm`` (`PCMLike`): IBM PCM-like model (`jaxcim.devices.pcm`).
- ``reram-retention`` (`ReRAMRetention`): NeuRRAM ReRAM with retention to years and Arrhenius temperature
  acceleration (`jaxcim.devices.retention`).
- ``custom`` (`Polynomial`): polynomial sigma(G) and mean error (`jaxcim.devices.custom`), e.g. from `fit_custom`.

A model of your own subclasses `DeviceModel` and works in every entry point; `register` names it for TOML files.
The functions below are what the pipeline calls: the model's kernels with its noise multipliers applied.
"""

from __future__ import annotations

from typing import Any

import jax

from jaxcim.converters import ste_round
from jaxcim.devices import custom, pcm, reram, retention
from jaxcim.devices.base import DeviceModel, build, field_names, model_class, names, register
from jaxcim.devices.custom import Polynomial, fit_custom, poly
from jaxcim.devices.ideal import Ideal
from jaxcim.devices.pcm import PCMLike
from jaxcim.devices.reram import ReRAMWan2022
from jaxcim.devices.retention import ReRAMRetention

__all__ = [
    "DeviceModel", "Ideal", "PCMLike", "Polynomial", "ReRAMRetention", "ReRAMWan2022", "at_time", "build", "custom",
    "field_names", "fit_custom", "model_class", "names", "pcm", "poly", "programming_mean",
    "programming_sigma", "quantize_levels", "read", "read_sigma", "register", "reram", "retention",
    "sample_time_params",
]


def programming_sigma(dev: DeviceModel, g_target: jax.Array) -> jax.Array:
    """Standard deviation of one write around ``g_target`` (S), scaled by ``dev.prog_noise_scale``."""
    return dev.programming_sigma(g_target) * dev.prog_noise_scale


def programming_mean(dev: DeviceModel, g_target: jax.Array) -> jax.Array:
    """Systematic write error mean(G_prog - G_target), S."""
    return dev.programming_mean(g_target)


def sample_time_params(dev: DeviceModel, key: jax.Array, g_target):
    """Per-cell random parameters of the time evolution, drawn once when the cell is programmed.

    ``g_target`` (S) may be a tuple of arrays (G+ and G- targets), drawn together as in `jaxcim.rng.normals`;
    the result then has the same structure. None for models without time evolution.
    """
    single = not isinstance(g_target, tuple)
    params = dev.time_params(key, (g_target,) if single else tuple(g_target))
    if params is None:
        return None
    return params[0] if single else tuple(params)


def at_time(dev: DeviceModel, g_prog: jax.Array, g_target: jax.Array, params: Any, t) -> jax.Array:
    """Conductance ``t`` seconds after programming (drift, relaxation, retention), S."""
    return dev.at_time(g_prog, g_target, params, t)


def read_sigma(dev: DeviceModel, g: jax.Array, g_target: jax.Array, t) -> jax.Array:
    """Standard deviation of one read of conductances ``g`` at time ``t`` after programming, S."""
    return dev.read_sigma(g, g_target, t) * dev.read_noise_scale


def read(dev: DeviceModel, g: jax.Array, g_prog: jax.Array, g_target: jax.Array, t, z: jax.Array) -> jax.Array:
    """One read of conductances ``g`` (S) at time ``t``, given the programmed and target conductances (S) and one
    standard normal ``z`` per cell, with ``read_noise_scale`` applied (clamped at 0 S for models that clamp)."""
    return dev.read(g, g_prog, g_target, t, z)


def quantize_levels(dev: DeviceModel, g: jax.Array) -> jax.Array:
    """Round targets to the nearest of ``dev.levels`` evenly spaced levels (straight-through gradient)."""
    if not dev.levels:
        return g
    span = dev.g_max - dev.g_min
    n = dev.levels - 1
    return dev.g_min + ste_round((g - dev.g_min) / span * n) / n * span
