"""Named crossbar configurations with published parameters.

- ``ideal``: no device noise, ideal wires, no DAC/ADC quantization: reproduces ``x @ w`` to float rounding.
- ``reram-neurram``: NeuRRAM-like ReRAM (Wan et al., Nature 608, 504 (2022)): 256x256 1T1R arrays,
  differential G+/G- mapping, conductances up to 40 uS, the published post-write-verify conductance spread
  at 1 s / 1 day / 2 days (so programming is one draw from that measured distribution), ~1% read noise,
  8-bit signed inputs and 8-bit ADC calibrated on data (NeuRRAM's ADC range is set per layer from data).
- ``pcm-ibm``: IBM PCM-like model (Joshi et al., Nat. Commun. 11, 2473 (2020); aihwkit ``PCMLikeNoiseModel``):
  g_max = 25 uS, programming noise, state-dependent drift, 1/f read noise, global drift compensation,
  differential mapping on 256x256 arrays and 8-bit input/output as in IBM HERMES (Le Gallo et al.,
  Nat. Electron. 2023).
"""

from __future__ import annotations

from jaxcim import devices
from jaxcim.config import (
    PRESETS,
    ADCConfig,
    CircuitConfig,
    CrossbarConfig,
    DACConfig,
    MappingConfig,
    ProgrammingConfig,
    preset,
    register_preset,
)

RERAM_G_MIN = 1e-6
"""Low-conductance floor of the NeuRRAM-like preset, S: the HRS state of Wan 2022's 1T1R cells sits near
1 uS (range used for weights ~1-40 uS); the aihwkit/CrossSim Wan fits are valid up to ~40 uS."""


def _ideal() -> CrossbarConfig:
    return CrossbarConfig(
        device=devices.Ideal(g_min=0.0, g_max=40e-6),
        programming=ProgrammingConfig(method="open_loop"),
        mapping=MappingConfig(),
        dac=DACConfig(bits=0),
        adc=ADCConfig(bits=0, range_mode="full_scale"),
        circuit=CircuitConfig(kind="ideal"),
        name="ideal",
    )


def _reram_neurram() -> CrossbarConfig:
    return CrossbarConfig(
        device=devices.ReRAMWan2022(g_min=RERAM_G_MIN, g_max=40e-6, read_noise_rel=0.01),
        programming=ProgrammingConfig(method="open_loop"),
        mapping=MappingConfig(scheme="differential", rows=256, cols=256),
        dac=DACConfig(bits=8, v_read=0.2, signed=True),
        adc=ADCConfig(bits=8, range_mode="calibrated"),
        circuit=CircuitConfig(kind="ideal"),
        name="reram-neurram",
    )


def _pcm_ibm() -> CrossbarConfig:
    return CrossbarConfig(
        device=devices.PCMLike(g_min=0.0, g_max=25e-6),
        programming=ProgrammingConfig(method="open_loop"),
        mapping=MappingConfig(scheme="differential", rows=256, cols=256),
        dac=DACConfig(bits=8, v_read=0.2, signed=True),
        adc=ADCConfig(bits=8, range_mode="calibrated"),
        circuit=CircuitConfig(kind="ideal"),
        drift_compensation=True,
        name="pcm-ibm",
    )


for _name, _factory in (("ideal", _ideal), ("reram-neurram", _reram_neurram), ("pcm-ibm", _pcm_ibm)):
    register_preset(_name, _factory)


def names() -> list[str]:
    """Names accepted by `get` (the shipped presets and those added with `register`)."""
    return sorted(PRESETS)


def get(name: str) -> CrossbarConfig:
    """The preset config called ``name`` (see the module docstring); unknown names list the valid ones."""
    return preset(name)


register = register_preset
"""``register(name, factory)``: a preset of your own, usable as ``preset = "name"`` in TOML."""

__all__ = ["RERAM_G_MIN", "get", "names", "register"]
