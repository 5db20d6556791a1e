"""Hardware (energy/latency/area) parameters and workload descriptions for `jaxcim.energy.estimate`.

`HardwareConfig` holds what the crossbar config does not: technology node, read pulse, ADC energy model and
sharing, driver/DAC and digital energies, areas. Every default cites its source; where a published macro
does not state a number, the preset says so. `Workload` describes one layer (a weight matrix used ``mvms``
times per inference) by its input/weight statistics; actual inputs and conductances can be passed to
`estimate` instead.

Units are SI: J, s, m, m^2, F, V.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from flax import struct

from jaxcim.config import check_choice, check_int, check_range

ADC_MODELS = ("sar", "walden", "cco")
INPUT_ENCODINGS = ("amplitude", "pwm")

HOROWITZ_ADD8_45NM = 0.03e-12
"""Energy of an 8-bit integer add at 45 nm, J (Horowitz, ISSCC 2014, "Computing's energy problem", Fig. 1.1.9)."""

ISAAC_ADC_AREA_8B_32NM = 0.0012e-6
"""Area of one 8-bit 1.28 GS/s SAR ADC at 32 nm, m^2 (ISAAC, Shafiee et al., ISCA 2016, Table 1: 8 ADCs in
0.0096 mm^2)."""

ISAAC_DAC_AREA_32NM = 0.00017e-6 / 1024
"""Area of one 1-bit row DAC/driver at 32 nm, m^2 (ISAAC Table 1: 8 x 128 DACs in 0.00017 mm^2)."""

ISAAC_SA_AREA_32NM = 0.00024e-6 / 4
"""Area of one shift-and-add unit at 32 nm, m^2 (ISAAC Table 1: 4 S+A units in 0.00024 mm^2)."""


C_COL_PER_CELL_22NM = 6.22e-15 / 128
"""Bit-line capacitance per cell of a 22 nm 1T1R array, F: NeuroSim's sub-array model (V1.3 as packaged in
hwcomponents-neurosim 1.0.43; wire 0.2 fF/um over a 4F-high cell with F = 40 nm, its wire width at the 22 nm node,
plus the access transistors' drain capacitance) gives 6.22 fF for a 128-cell bit line; scaled with F elsewhere."""

def horowitz_add_bit_energy(node: float) -> float:
    """Energy of a one-bit full-adder stage at technology node ``node`` (m), J.

    Horowitz (ISSCC 2014) gives 0.03 pJ for an 8-bit add at 45 nm (3.75 fJ/bit); switched capacitance scales
    about linearly with the node at constant supply, so E = 3.75 fJ * node / 45 nm (1.83 fJ at 22 nm).
    """
    return HOROWITZ_ADD8_45NM / 8 * node / 45e-9


@struct.dataclass
class HardwareConfig:
    """Energy, latency and area parameters of the peripheral circuits (defaults: 22 nm 1T1R ReRAM).

    Attributes:
      node: CMOS technology node (feature size F), m. Default 22 nm (the node of the ReRAM macro of Hung et al.,
        Nat. Electron. 2021, and of NeuroSim's ReRAM defaults).
      cell_area_f2: area of one memory cell in F^2. Default 48 F^2: the 1T1R cell of NeuroSim V1.4
        (``heightInFeatureSize1T1R = 4``, ``widthInFeatureSize1T1R = 12`` in Param.cpp).
      t_read: read pulse per input cycle, s (for ``input_encoding="pwm"``: the full-scale pulse). Default 10 ns:
        NeuroSim V1.4 ``readPulseWidth``.
      input_encoding: ``"amplitude"`` (row voltage proportional to the input chunk) or ``"pwm"`` (full-amplitude
        pulse whose width is proportional to it, as in IBM HERMES). Static.
      input_bits_per_cycle: input magnitude bits applied per read cycle; 0 = from the crossbar config (1 if
        ``dac.bit_serial`` else all bits at once). Static.
      rows_per_read: word lines driven at once (k); each cycle then takes ceil(rows / k) reads and
        conversions. 0 = all rows. Static.
      read_phases: times every read is repeated with its own conversion (IBM HERMES's 4-phase high-precision
        mode: Le Gallo et al., Nat. Electron. 2023). Default 1. Static.
      adc_share: columns multiplexed onto one ADC (conversions of an array's used columns are serialized over
        them).
        Default 8: NeuroSim V1.4 ``numColMuxed``. Static.
      analog_slice_combine: the weight-slice columns are summed in analog (weighted current/voltage stacking)
        before one conversion, instead of one conversion per slice (Hung et al. 2021). Static.
      adc_model: ``"sar"`` (E = sar_e_bit * bits + sar_e_cap * 2**bits) or ``"walden"``
        (E = adc_fom * 2**ENOB, ENOB taken equal to the nominal bits). Static.
      sar_e_bit: SAR ADC energy per bit cycle (comparator and logic), J. Default 8 fJ, and
      sar_e_cap: SAR ADC capacitive-DAC energy per unit capacitor, J. Default 0.0625 fJ: the two-term SAR model
        through NeuroSim's 22 nm SAR ADC energies, 33 fJ at 4 bits and 42 fJ at 5 bits (NeuroSim V1.4 SAR ADC model).
      adc_fom: Walden figure of merit, J per conversion step. Default 10 fJ/step: Murmann ADC survey, designs at
        >= 100 MS/s sit at ~5-10 fJ/step (upper end taken).
      t_adc_bit: ADC conversion time per bit, s. Default 1 ns: one SAR decision per cycle of NeuroSim V1.4's
        1 GHz clock (``clkFreq``).
      c_row_per_cell: capacitance a driven row line switches per cell it crosses, F. Default 0.1 fF: ~0.2 fF/um
        wire capacitance (ITRS interconnect tables) over a 12 F = 0.26 um cell pitch at 22 nm, plus ~0.05 fF of
        access-transistor gate (~1 fF/um gate capacitance times a 2 F wide device).
      v_wordline: swing of the row driver / access-transistor gate, V. Default 1.1 V: NeuroSim V1.4
        ``accessVoltage`` for 1T1R.
      dac_c_unit: unit capacitor of a binary-weighted capacitive row DAC, F: a b-bit amplitude DAC switches
        (2**b - 1) units at ``v_wordline`` per driven row and cycle (b = 1 needs no DAC: the row switch is the
        driver, counted by ``c_row_per_cell``; PWM inputs use a digital pulse, also no DAC). Default 1 fF, the
        order of the minimum MOM unit capacitor of 22-28 nm capacitive-DAC designs (an assumption; ISAAC's
        1-bit DAC power, Shafiee et al. ISCA 2016 Table 1, 0.39 pJ per pulse at 32 nm, is an upper bound).
      c_col_per_cell: bit-line capacitance per cell it crosses, F, charged to the read voltage once per read and
        column. Default 0.0486 fF: NeuroSim's 22 nm sub-array model (V1.3 as packaged in hwcomponents-neurosim
        1.0.43, 1T1R cell 4F x 12F) reports 6.22 fF per 128-cell bit line: its 0.2 fF/um wire (``capBL``,
        SubArray.cpp) over a 4F cell height with F = its 40 nm wire width at the 22 nm node (Param.cpp), plus the
        access transistors' drain capacitance (checked against the NeuroSim binary in tests/test_neurosim.py).
      e_sense: column readout front end (integrator, current-to-voltage stage or sense amplifier) per conversion,
        J. Default 0 (NeuroSim folds it into its ADC energy); `node_hardware` sets the value fitted to published
        macros (see `jaxcim.energy.macros`).
      adc_power: power of a current-controlled-oscillator ADC while it integrates over the read window, W
        (``adc_model = "cco"``: E = adc_power * t_read per conversion). Default 0.35 mW (see `node_hardware`).
      e_add_bit: digital shift-and-add energy per accumulator bit per addition, J. Default 1.83 fJ: Horowitz
        (ISSCC 2014) 8-bit add at 45 nm scaled linearly to 22 nm (`horowitz_add_bit_energy`).
      adc_area_8b: area of one 8-bit ADC at this node, m^2 (scaled as 2**(bits - 8) for other resolutions).
        Default: ISAAC's 0.0012 mm^2 at 32 nm scaled by (22/32)^2.
      driver_area: area of one row driver/DAC, m^2. Default: ISAAC's 1-bit DAC scaled by (22/32)^2.
      shift_add_area: area of one shift-and-add unit (one per ADC), m^2. Default: ISAAC's S+A scaled by
        (22/32)^2.
    """

    node: Any = 22e-9
    cell_area_f2: Any = 48.0
    t_read: Any = 10e-9
    input_encoding: str = struct.field(pytree_node=False, default="amplitude")
    input_bits_per_cycle: int = struct.field(pytree_node=False, default=0)
    rows_per_read: int = struct.field(pytree_node=False, default=0)
    adc_share: int = struct.field(pytree_node=False, default=8)
    read_phases: int = struct.field(pytree_node=False, default=1)
    analog_slice_combine: bool = struct.field(pytree_node=False, default=False)
    adc_model: str = struct.field(pytree_node=False, default="sar")
    sar_e_bit: Any = 8e-15
    sar_e_cap: Any = 0.0625e-15
    adc_fom: Any = 10e-15
    t_adc_bit: Any = 1e-9
    c_row_per_cell: Any = 0.1e-15
    v_wordline: Any = 1.1
    dac_c_unit: Any = 1e-15
    c_col_per_cell: Any = C_COL_PER_CELL_22NM
    e_sense: Any = 0.0
    adc_power: Any = 0.35e-3
    e_add_bit: Any = horowitz_add_bit_energy(22e-9)
    adc_area_8b: Any = ISAAC_ADC_AREA_8B_32NM * (22 / 32) ** 2
    driver_area: Any = ISAAC_DAC_AREA_32NM * (22 / 32) ** 2
    shift_add_area: Any = ISAAC_SA_AREA_32NM * (22 / 32) ** 2

    def __post_init__(self):
        o = "hardware"
        check_choice(o, "input_encoding", self.input_encoding, INPUT_ENCODINGS)
        check_choice(o, "adc_model", self.adc_model, ADC_MODELS)
        check_int(o, "input_bits_per_cycle", self.input_bits_per_cycle, 0, 24)
        check_int(o, "rows_per_read", self.rows_per_read, 0)
        check_int(o, "adc_share", self.adc_share, 1)
        check_int(o, "read_phases", self.read_phases, 1, 64)
        if not isinstance(self.analog_slice_combine, bool):
            raise TypeError(f"hardware.analog_slice_combine must be a bool, got {self.analog_slice_combine!r}")
        for name in ("node", "cell_area_f2", "t_read", "t_adc_bit", "adc_area_8b"):
            check_range(o, name, getattr(self, name), 0.0, lo_open=True)
        for name in ("sar_e_bit", "sar_e_cap", "adc_fom", "c_row_per_cell", "v_wordline", "dac_c_unit",
                     "e_add_bit", "driver_area", "shift_add_area", "c_col_per_cell", "e_sense", "adc_power"):
            check_range(o, name, getattr(self, name), 0.0)



def _hw_replace(self: HardwareConfig, **changes: Any) -> HardwareConfig:
    """A copy with fields changed (unknown names raise ``KeyError`` listing the valid ones)."""
    valid = [f.name for f in dataclasses.fields(self)]
    for k in changes:
        if k not in valid:
            raise KeyError(f"unknown key {k!r}; valid keys in [hardware]: {', '.join(valid)}")
    return dataclasses.replace(self, **changes)


HardwareConfig.replace = _hw_replace  # flax.struct installs a plain replace; add the key check


@struct.dataclass
class Workload:
    """One layer: an (in_features x out_features) weight matrix used ``mvms`` times per inference.

    The statistics are used when `estimate` is not given actual inputs/conductances. Inputs are normalized
    to the DAC full scale (u = x / x_max in [-1, 1]); weights to the mapping scale (w / max|w|).

    Attributes:
      in_features, out_features: the matrix shape. Static.
      mvms: matrix-vector products per inference (1 for a dense layer, output pixels for a convolution). Static.
      input_density: fraction of nonzero inputs (1 - sparsity). Default 1 (dense).
      input_mean_abs: mean |u| of the nonzero inputs. Default 0.5: inputs uniform on the DAC range.
      weight_mean_abs: mean |w| / max|w|. Default 0.5: weights uniform on the mapping range.
      name: a label for tables. Static.
    """

    in_features: int = struct.field(pytree_node=False, default=256)
    out_features: int = struct.field(pytree_node=False, default=256)
    mvms: int = struct.field(pytree_node=False, default=1)
    input_density: Any = 1.0
    input_mean_abs: Any = 0.5
    weight_mean_abs: Any = 0.5
    name: str = struct.field(pytree_node=False, default="layer")

    def __post_init__(self):
        o = "workload"
        check_int(o, "in_features", self.in_features, 1)
        check_int(o, "out_features", self.out_features, 1)
        check_int(o, "mvms", self.mvms, 1)
        for name in ("input_density", "input_mean_abs", "weight_mean_abs"):
            check_range(o, name, getattr(self, name), 0.0, 1.0)


def _scaled(node: float, **fields: Any) -> dict[str, Any]:
    """Node-dependent defaults (digital energy, peripheral areas) for a technology node, plus overrides."""
    s = (node / 32e-9) ** 2
    base = dict(node=node, e_add_bit=horowitz_add_bit_energy(node), adc_area_8b=ISAAC_ADC_AREA_8B_32NM * s,
                driver_area=ISAAC_DAC_AREA_32NM * s, shift_add_area=ISAAC_SA_AREA_32NM * s)
    base.update(fields)
    return base


NODE_SUPPLY = {14e-9: 0.8, 22e-9: 0.8, 28e-9: 0.9, 40e-9: 1.1, 55e-9: 1.2, 65e-9: 1.2, 90e-9: 1.2, 130e-9: 1.2}
"""Nominal core supply by technology node, V (foundry core devices: 0.8 V at 14-22 nm FinFET/FD-SOI, 0.9 V at
28 nm, 1.1 V at 40 nm LP, 1.2 V at 55-130 nm)."""

E_SENSE_22NM = 34e-15
"""Column readout front end (integrator / current-to-voltage stage) per conversion at 22 nm and 0.8 V, J: an
integration capacitor of ~50 fF swung over the supply (C V_dd**2). Fitted together with `SAR_C_UNIT_22NM` (one
number each for all nodes, scaled as C ~ F and V_dd**2) on the fitted macros of `jaxcim.energy.macros` only: the
pair that keeps every fitted macro farthest inside 0.5-2x (largest worst-case log margin over grids spanning 20-60 fJ
and 0.25-1 fF); the window is narrow (about 30-40 fJ with 0.8-0.95 fF), bounded by Hung et al. 2021 at 8 bits on
one side and Xue et al. 2019 binary / Xue et al. 2020 at 11 bits on the other. The held-out macros played no part."""

SAR_C_UNIT_22NM = 0.9e-15
"""Unit capacitor of the SAR ADC's binary-weighted DAC at 22 nm, F (scaled with F at other nodes). The DAC then
draws 1.33 * 2**bits * C_u * V_dd**2 per conversion (conventional switching, Liu et al., IEEE JSSC 45, 731 (2010)),
the form of `jaxcim.circuit.adc.SARADC`: 0.77 fJ per unit at 0.8 V, 196 fJ for 8 bits. Fitted with `E_SENSE_22NM`
(see there) inside the 0.5-2 fF range of unit capacitors in 22-28 nm compute-in-memory SAR ADCs (the
`SARADC.c_unit` docstring; its default stays 1 fF). NeuroSim's 4-5 bit SAR energies, which the `HardwareConfig`
defaults reproduce, do not constrain the 2**bits term (their 0.06 fJ per unit would make an 8-bit SAR cost 80 fJ, a
Walden FoM of 0.3 fJ/step, the survey's best)."""

P_CCO_14NM = 0.35e-3
"""Power of one current-controlled-oscillator column ADC of IBM HERMES while it integrates, W (14 nm). Not
published separately: chosen so that the 1-phase 8-bit MVM of Le Gallo et al. (Nat. Electron. 2023) falls inside
0.5-2x; the 4-phase figure of the same paper then follows without another parameter."""


def supply(node: float) -> float:
    """Core supply at ``node`` (m): `NODE_SUPPLY` at the nearest listed node (log distance), V."""
    near = min(NODE_SUPPLY, key=lambda n: abs(math.log(n / node)))
    return NODE_SUPPLY[near]


def node_hardware(node: float, **overrides: Any) -> HardwareConfig:
    """One set of peripheral parameters for a technology node (the validation's rule: per node, not per macro).

    Switched capacitances scale with the feature size F (wire length per cell, gate widths), energies as
    C V_dd**2 with the node's core supply (`supply`); areas as F**2 (`_scaled`). At 22 nm and 0.8 V the
    values are `HardwareConfig`'s defaults (NeuroSim-derived) except the SAR DAC unit (`SAR_C_UNIT_22NM`) and the
    readout front end (`E_SENSE_22NM`).

    Args:
      node: feature size, m. overrides: fields set after scaling (per-macro configuration such as
        ``rows_per_read``, ``adc_share``, ``t_read``, never energies).
    """
    s = node / 22e-9
    v = supply(node)
    k = s * (v / 0.8) ** 2
    fields = _scaled(node, v_wordline=v, c_row_per_cell=0.1e-15 * s, c_col_per_cell=C_COL_PER_CELL_22NM * s,
                     sar_e_bit=8e-15 * k, sar_e_cap=1.33 * SAR_C_UNIT_22NM * s * v**2, adc_fom=10e-15 * k,
                     e_sense=E_SENSE_22NM * k,
                     adc_power=P_CCO_14NM * (node / 14e-9) * (v / 0.8) ** 2,
                     e_add_bit=horowitz_add_bit_energy(node) * (v / 0.9) ** 2)
    fields.update(overrides)
    return HardwareConfig(**fields)


def _generic_22nm() -> HardwareConfig:
    return HardwareConfig()


def _neurosim_22nm() -> HardwareConfig:
    # NeuroSim V1.4 defaults (Param.cpp): 1T1R 4F x 12F, readPulseWidth 10 ns, numColMuxed 8, SAR ADC,
    # 1 GHz clock, accessVoltage 1.1 V, bit-serial inputs. Identical to the generic preset by construction.
    return HardwareConfig(input_bits_per_cycle=1)


def _hermes_14nm() -> HardwareConfig:
    # IBM HERMES (Le Gallo et al., Nat. Electron. 2023; Khaddam-Aljameh et al., JSSC 2022): 14 nm,
    # 256 CCO-based ADCs per core (one per column), pulse-width-modulated 8-bit inputs on a 1 GHz clock
    # (127 ns full-scale pulse). The CCO ADC's energy is not stated: Walden model with the default FoM.
    return HardwareConfig(**_scaled(14e-9, input_encoding="pwm", t_read=127e-9, adc_share=1, adc_model="walden",
                                    t_adc_bit=0.3e-9))


def _hung_22nm() -> HardwareConfig:
    # Hung et al., Nat. Electron. 4, 921 (2021): 22 nm foundry binary ReRAM, weighted current-to-voltage
    # stacking of the weight-bit columns before the ADC (analog slice combination). Read latency 5.2 ns (binary);
    # rows per read and ADC sharing are not in our reference set: 16 word lines and 8 columns per ADC assumed.
    return HardwareConfig(t_read=5.2e-9, rows_per_read=16, analog_slice_combine=True)


_PRESETS = {
    "generic-22nm-reram": _generic_22nm,
    "neurosim-22nm-reram": _neurosim_22nm,
    "hermes-14nm-pcm": _hermes_14nm,
    "hung-22nm-reram": _hung_22nm,
}


def hardware_presets() -> list[str]:
    """Names accepted by `hardware_preset`."""
    return sorted(_PRESETS)


def hardware_preset(name: str) -> HardwareConfig:
    """The named `HardwareConfig` (see the preset functions' comments for sources)."""
    if not isinstance(name, str):
        raise TypeError(f"hardware preset name must be a string, got {type(name).__name__}")
    try:
        return _PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown hardware preset {name!r}; valid: {', '.join(hardware_presets())}") from None


def adc_energy(hw: HardwareConfig, bits: int):
    """Energy of one ADC conversion at ``bits`` resolution, J.

    ``"walden"``: E = FoM * 2**bits (Walden figure of merit, Murmann ADC survey, ENOB = nominal bits).
    ``"cco"``: a current-controlled-oscillator ADC counts during the whole read window: E = adc_power * t_read.
    ``"sar"``: E = e_bit * bits + e_cap * 2**bits: per-bit comparator/logic energy plus a binary-weighted
    capacitive DAC; with the defaults it gives NeuroSim's 22 nm SAR energies (33 fJ at 4 bits, 42 fJ at 5 bits).
    """
    if bits <= 0:
        return 0.0 * hw.adc_fom
    if hw.adc_model == "walden":
        return hw.adc_fom * 2.0**bits
    if hw.adc_model == "cco":
        return hw.adc_power * hw.t_read
    return hw.sar_e_bit * bits + hw.sar_e_cap * 2.0**bits
