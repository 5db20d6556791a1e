"""Energy, latency and area accounting of crossbar MVMs (``jc.energy.estimate``), per-node peripheral parameters
(``jc.energy.node_hardware``), published-macro validation (`jaxcim.energy.macros`: one 0.5x-2x band, held-out
macros reported apart) and the accuracy-vs-TOPS/W search (`jaxcim.energy.pareto`: chip Monte Carlo of a network
over a grid of array, rows per read, ADC type and bits, input encoding, read voltage and conductance range), with
the continuous knobs of the front refined by gradient descent (`jaxcim.energy.knobs.refine`: read voltage, g_max,
ADC range)."""

from jaxcim.energy import knobs, macros, pareto
from jaxcim.energy.hardware import (
    ADC_MODELS,
    INPUT_ENCODINGS,
    HardwareConfig,
    Workload,
    adc_energy,
    hardware_preset,
    hardware_presets,
    horowitz_add_bit_energy,
    node_hardware,
)
from jaxcim.energy.model import ENERGY_ITEMS, EnergyReport, counts, estimate

__all__ = [
    "ADC_MODELS", "ENERGY_ITEMS", "INPUT_ENCODINGS", "EnergyReport", "HardwareConfig", "Workload", "adc_energy",
    "counts", "estimate", "hardware_preset", "hardware_presets", "horowitz_add_bit_energy", "knobs", "macros",
    "node_hardware", "pareto",
]
