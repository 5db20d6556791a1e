"""jaxcim: JAX-accelerated, differentiable simulation of resistive crossbar arrays for analog
in-memory computing.

    import jaxcim as jc
    cfg = jc.presets.get("reram-neurram")
    y = jc.simulate(cfg, w, x, key=jax.random.key(0), t=3600.0)
    ys = jc.monte_carlo(cfg, w, x, key=jax.random.key(1), n=4096)           # (n, batch, out)
    result = jc.optimize_mapping(cfg, w, x, key=jax.random.key(2))          # variation-aware mapping
    model = jc.nn.analogize(trained_flax_model, cfg)                        # analog flax NNX layers
    report = jc.energy.estimate(cfg, workload)                              # energy / latency / area
"""

from jaxcim import circuit, converters, devices, energy, mapping, nn, presets, programming, studies
from jaxcim.calibrate import calibrate
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
from jaxcim.levels import level_error_rate
from jaxcim.montecarlo import monte_carlo, monte_carlo_stats, summarize, summarize_errors
from jaxcim.optimize import LearnedMapping, OptimizeResult, load_mapping, optimize_mapping, save_mapping
from jaxcim.programming import ProgramInfo
from jaxcim.version import __version__

__all__ = [
    "ADCConfig",
    "CircuitConfig",
    "CrossbarConfig",
    "CrossbarState",
    "DACConfig",
    "DeviceConfig",
    "LearnedMapping",
    "MappingConfig",
    "OptimizeResult",
    "ProgramInfo",
    "ProgrammingConfig",
    "__version__",
    "calibrate",
    "circuit",
    "conductances_at",
    "converters",
    "devices",
    "energy",
    "fit_custom",
    "load_config",
    "level_error_rate",
    "load_mapping",
    "mapping",
    "monte_carlo",
    "monte_carlo_stats",
    "nn",
    "optimize_mapping",
    "presets",
    "program",
    "programming",
    "read",
    "save_mapping",
    "simulate",
    "studies",
    "summarize",
    "summarize_errors",
]
