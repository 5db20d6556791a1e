"""The device-model protocol: what a memory cell does when programmed, as time passes, and when read.

A device model is a pytree (`flax.struct.PyTreeNode`) whose published constants are leaves, so they can be swept,
vmapped and learned like any config number. It implements four per-cell kernels, all elementwise on conductance
arrays in siemens and jit/vmap/grad friendly:

- ``programming_sigma(g_target)``: standard deviation of one write around its target, S.
- ``programming_mean(g_target)``: systematic write error mean(G_prog - G_target), S (default 0).
- ``time_params(key, targets)``: per-cell random parameters of the time evolution, drawn once at programming
  (default: none).
- ``at_time(g_prog, g_target, params, t)``: the conductance t seconds after programming, S (default: no change).
- ``read_sigma(g, g_target, t)``: standard deviation of one read, S (default 0).
- ``read(g, g_prog, g_target, t, z)``: one read given a standard normal ``z`` per cell, S (default
  ``g + read_noise_scale * read_sigma(g, g_target, t) * z``). A model whose reads are not that Gaussian (clamped at
  0 S, amplitude set by the programmed conductance, as aihwkit's PCM) overrides it and sets ``gaussian_reads = False``.

Every model has a ``temperature`` leaf (K, default 298.15 K): models with thermally activated time evolution
(`jaxcim.devices.retention`) read it, the others ignore it. Being a leaf, it is swept (``device.temperature`` in TOML
and sweeps), vmapped and differentiated like t; ``jc.read(..., temperature=)`` replaces it for one read.

The pipeline (`jaxcim.programming`, `jaxcim.core`) calls only these, multiplies the spreads by the model's
``prog_noise_scale`` / ``read_noise_scale`` and never asks which model it has. A new device is a subclass in the
user's own file; `register` gives it a name for TOML study files::

    @jc.devices.register("my-reram")
    class MyReRAM(jc.devices.DeviceModel):
        sigma_rel: float = 0.03                       # a leaf: sweepable, learnable

        def programming_sigma(self, g_target):
            return self.sigma_rel * self.g_max + 0.0 * g_target

    cfg = jc.presets.get("reram-neurram").replace(device=MyReRAM(g_max=40e-6))

References:
  The interface follows IBM aihwkit's inference noise models (aihwkit/inference/noise/base.py:
  ``apply_programming_noise_to_conductance``, ``generate_drift_coefficients``, ``apply_drift_noise_to_conductance``)
  with the read noise split out of the drift step.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcim.fields import check_int, check_range, concrete

_REGISTRY: dict[str, type[DeviceModel]] = {}


def register(name: str):
    """Class decorator: make a `DeviceModel` subclass known as ``name`` in TOML files (``[device] model = name``)
    and in ``cfg.replace(**{"device.model": name})``. Returns the class unchanged (its ``name`` set)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a device model name must be a non-empty string, got {name!r}")

    def add(cls):
        if not (isinstance(cls, type) and issubclass(cls, DeviceModel)):
            raise TypeError(f"register({name!r}) decorates a jaxcim.devices.DeviceModel subclass, got {cls!r}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return add


def names() -> list[str]:
    """Names of the registered device models."""
    return sorted(_REGISTRY)


def model_class(name: str) -> type[DeviceModel]:
    """The device model class registered as ``name``; ValueError listing the known names otherwise."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"device.model must be one of {', '.join(map(repr, names()))}; got {name!r} "
                         f"(a model of your own: subclass jaxcim.devices.DeviceModel and decorate it with "
                         f"@jaxcim.devices.register(name))")
    return _REGISTRY[name]


class DeviceModel(struct.PyTreeNode):
    """Base of every device model: the conductance range, multipliers on the model's noise, faults.

    Attributes:
      g_min: lowest programmable conductance, S.
      g_max: highest programmable conductance, S.
      levels: programmable conductance levels per cell (multi-level cell), evenly spaced in [g_min, g_max];
        0 means analog (continuous). Static.
      prog_noise_scale: multiplier on the model's programming noise sigma (1 = as published).
      read_noise_scale: multiplier on the model's read noise (1 = as published).
      drift_scale: multiplier on the model's time evolution (1 = as published, 0 = none).
      stuck_off_rate: probability that a cell is stuck at g_min (ignores programming).
      stuck_on_rate: probability that a cell is stuck at g_max.
      range_spread: device-to-device spread of the conductance range: each cell's reachable range
        (g_max - g_min) is scaled by ``1 + range_spread * N(0, 1)`` (relative standard deviation).
      temperature: temperature of the array while it retains and is read, K (default 298.15 K = 25 C, room
        temperature; 358.15 K = 85 C is the usual automotive/industrial retention spec). Models without
        temperature dependence ignore it.
    """

    name: ClassVar[str] = "device"
    noisy_reads: ClassVar[bool] = True
    """False for models whose `read_sigma` is always 0: reads then draw no random numbers."""
    gaussian_reads: ClassVar[bool] = True
    """True when `read` is ``g + read_sigma * z`` (the default): the pipeline may then draw the two reads of a
    differential pair as one normal of their combined spread. False for models that override `read`."""

    g_min: Any = 0.0
    g_max: Any = 40e-6
    levels: int = struct.field(pytree_node=False, default=0)
    prog_noise_scale: Any = 1.0
    read_noise_scale: Any = 1.0
    drift_scale: Any = 1.0
    stuck_off_rate: Any = 0.0
    stuck_on_rate: Any = 0.0
    range_spread: Any = 0.0
    temperature: Any = 298.15

    def __post_init__(self):
        o = "device"
        check_range(o, "g_min", self.g_min, 0.0)
        check_range(o, "g_max", self.g_max, 0.0, lo_open=True)
        gmin, gmax = concrete(self.g_min), concrete(self.g_max)
        if gmin is not None and gmax is not None and np.any(gmin >= gmax):
            raise ValueError(f"device.g_min must be < device.g_max, got g_min={self.g_min!r} >= "
                             f"g_max={self.g_max!r} (siemens)")
        check_int(o, "levels", self.levels, 0)
        if self.levels != 0:
            check_int(o, "levels", self.levels, 2)
        for name in ("prog_noise_scale", "read_noise_scale", "drift_scale", "range_spread"):
            check_range(o, name, getattr(self, name), 0.0)
        check_range(o, "temperature", self.temperature, 0.0, lo_open=True)
        check_range(o, "stuck_off_rate", self.stuck_off_rate, 0.0, 1.0)
        check_range(o, "stuck_on_rate", self.stuck_on_rate, 0.0, 1.0)
        off, on = concrete(self.stuck_off_rate), concrete(self.stuck_on_rate)
        if off is not None and on is not None and np.any(off + on > 1.0):
            raise ValueError("device.stuck_off_rate + device.stuck_on_rate must be <= 1")
        self.check()

    @property
    def model(self) -> str:
        """The name the model is registered under (``[device] model = ...`` in TOML)."""
        return self.name

    def check(self) -> None:
        """Checks of the model's own fields (ValueError/TypeError naming ``device.<field>``); called when built."""

    # -------------------------------------------------------------------------------- the protocol

    def programming_sigma(self, g_target: jax.Array) -> jax.Array:
        """Standard deviation of one write around ``g_target`` (S), before ``prog_noise_scale``."""
        return jnp.zeros_like(g_target)

    def programming_mean(self, g_target: jax.Array) -> jax.Array:
        """Systematic write error mean(G_prog - G_target), S."""
        return jnp.zeros_like(g_target)

    def time_params(self, key: jax.Array, targets: tuple[jax.Array, ...]) -> tuple[Any, ...] | None:
        """Per-cell parameters of the time evolution for each array of ``targets`` (S), drawn from ``key`` once
        when the cells are programmed; None if the model has none."""
        return None

    def at_time(self, g_prog: jax.Array, g_target: jax.Array, params: Any, t) -> jax.Array:
        """Conductance ``t`` seconds after programming (S), from the programmed and target conductances and the
        cells' `time_params`; scaled by ``drift_scale`` as the model defines."""
        return g_prog

    def read_sigma(self, g: jax.Array, g_target: jax.Array, t) -> jax.Array:
        """Standard deviation of one read of conductances ``g`` at time ``t`` after programming (S), before
        ``read_noise_scale``."""
        return jnp.zeros_like(g)

    def read(self, g: jax.Array, g_prog: jax.Array, g_target: jax.Array, t, z: jax.Array) -> jax.Array:
        """One read of conductances ``g`` at time ``t`` after programming (S), given the cells' programmed and
        target conductances (S) and one standard normal ``z`` per cell; ``read_noise_scale`` applied."""
        return g + self.read_sigma(g, g_target, t) * self.read_noise_scale * z

    # -------------------------------------------------------------------------------- helpers

    def to_dict(self) -> dict[str, Any]:
        """``{"model": name, field: value, ...}`` with plain Python numbers (TOML/JSON serializable)."""
        out: dict[str, Any] = {"model": self.name}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | str):
        return value
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()


def field_names(cls: type[DeviceModel]) -> list[str]:
    """The configurable fields of a device model class."""
    return [f.name for f in dataclasses.fields(cls)]


def build(model: str | type[DeviceModel], fields: dict[str, Any], base: DeviceModel | None = None) -> DeviceModel:
    """A device of class ``model`` (a registered name or a class) with ``fields``; fields of ``base`` that the new
    class also has carry over (switching ``device.model`` keeps g_min, g_max, the scales and the faults).
    Unknown fields are a KeyError listing the valid ones."""
    cls = model_class(model) if isinstance(model, str) else model
    valid = field_names(cls)
    unknown = [k for k in fields if k not in valid]
    if unknown:
        raise KeyError(f"unknown key 'device.{unknown[0]}' for device.model = {cls.name!r}; valid keys in "
                       f"[device]: model, {', '.join(valid)}")
    kept = {}
    if base is not None:
        kept = {f.name: getattr(base, f.name) for f in dataclasses.fields(base) if f.name in valid}
    return cls(**{**kept, **fields})
