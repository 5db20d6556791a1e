"""jaxcim: JAX-accelerated, differentiable simulation of resistive crossbar arrays for analog
in-memory computing.

    import jaxcim as jc
    cfg = jc.presets.get("reram-neurram")
    y = jc.simulate(cfg, w, x, key=jax.random.key(0), t=3600.0)
"""

from jaxcim import circuit, converters, devices, mapping, presets, programming
from jaxcim.config import (
    ADCConfig,
    CircuitConfig,
    CrossbarConfig,
    DACConfig,
    DeviceConfig,
    MappingConfig,
    ProgrammingConfig,
    load_config,
)
from jaxcim.core import CrossbarState, conductances_at, program, read, simulate
from jaxcim.devices import fit_custom
from jaxcim.programming import ProgramInfo

__version__ = "0.1.0"

__all__ = [
    "ADCConfig",
    "CircuitConfig",
    "CrossbarConfig",
    "CrossbarState",
    "DACConfig",
    "DeviceConfig",
    "MappingConfig",
    "ProgramInfo",
    "ProgrammingConfig",
    "circuit",
    "conductances_at",
    "converters",
    "devices",
    "fit_custom",
    "load_config",
    "mapping",
    "presets",
    "program",
    "programming",
    "read",
    "simulate",
]
