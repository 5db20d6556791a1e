"""Energy, latency and area accounting of crossbar MVMs (``jc.energy.estimate``), published-macro
validation (`jaxcim.energy.macros`) and accuracy-vs-efficiency Pareto sweeps (`jaxcim.energy.pareto`)."""

from jaxcim.energy import macros, pareto
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
    "counts", "estimate", "hardware_preset", "hardware_presets", "horowitz_add_bit_energy", "macros", "node_hardware",
    "pareto",
]
