"""Published compute-in-memory macros, configured as jaxcim sees them, for validating `estimate`.

Each `Macro` holds a crossbar config, hardware parameters and a workload built from the macro's stated
configuration (node, cell type, array size, input/weight/ADC bits, read time), and its published energy
efficiency, with its source. What a paper's abstract does not state is written in ``Macro.assumptions`` with the
value taken. `validate()` returns jaxcim's TOPS/W next to the published value and their ratio.
One band for all: the estimate within 0.5x-2x of every verified published figure (`BAND`). Peripheral parameters
come from `node_hardware`, one set per technology node.

Held-out macros: the following are kept out of every hardware-parameter choice and reported apart. They were
chosen by name (one PCM and one ReRAM design at 40 nm, one 14 nm PCM chip), before any of their figures were looked
up for this validation:

- Yoon et al., ISSCC 2021 (40 nm ReRAM macro, TSMC/Georgia Tech);
- Khwa et al., ISSCC 2022 (40 nm PCM macro, TSMC);
- Ambrogio et al., Nature 620, 768 (2023) (14 nm PCM inference chip, IBM).

Macros added later (Xue et al. ISSCC 2019 and 2020, Liu et al. ISSCC 2020) followed a rule fixed before any of them
was looked up: of the added macros whose figure could be read, the most recently published one is held out when
four or more are added, none when two or three are (three were), so that held-out papers stay about a third (3 of
9). Their configurations were written from the papers' stated facts before their estimates were computed; they
then took part, as fitted macros, in choosing `E_SENSE_22NM` and `SAR_C_UNIT_22NM`.

NeuRRAM (Wan et al. 2022) was added last, after the parameters above were chosen. Its two operating points (the
lowest and highest precision of its Fig. 12c,d) and configuration were written from the stated facts before its
estimates were computed, and no parameter was chosen on it or changed after it, so it is reported with the held-out
macros (`ADDED_AFTER_FIT`: 4 of 10 papers out of every parameter choice). It was not named in advance as the others
were.

After the comparison, the energy model was changed to count only the columns and row groups that hold a layer (it
had converted every column of an array). The change is general, but it was found by examining the held-out Yoon row,
which moved from 0.22x into the band; that row therefore no longer tests the model independently (its ``notes``).

Where a figure was read: every published figure below was read in a retrieved copy of the paper's title or
abstract, or in a public summary quoting its digest text and figure (Xue 2019; Liu 2020's access time); the source
string names the figure. Where only a secondary summary gave a configuration detail, the assumption says so.
"""

from __future__ import annotations

import dataclasses
import math

from jaxcim.config import (
    ADCConfig,
    CrossbarConfig,
    DACConfig,
    DeviceConfig,
    MappingConfig,
)
from jaxcim.energy.hardware import HardwareConfig, Workload, hardware_preset, node_hardware, supply
from jaxcim.energy.model import ENERGY_ITEMS, estimate

HELD_OUT = ("Yoon ISSCC 2021", "Khwa ISSCC 2022", "Ambrogio Nature 2023")
"""Macros held out of the hardware-parameter choice (named before their numbers were looked up)."""

ADDED_AFTER_FIT = ("NeuRRAM, 1b in / 3b out", "NeuRRAM, 8b in / 10b out")
"""Macros added after the hardware parameters were chosen, used in no choice: reported with the held-out ones."""


BAND = (0.5, 2.0)
"""The one accepted band for every macro: jaxcim's TOPS/W within 0.5x-2x of the published figure."""

FIT, HELD, SIMULATOR, UNVERIFIED = "fit", "held-out", "simulator", "not verified"


@dataclasses.dataclass(frozen=True)
class Macro:
    """A published macro and its jaxcim configuration.

    Attributes:
      name: short label. source: citation and where the figure is stated. technology: "ReRAM" or "PCM".
      node: CMOS node, m. published_tops_per_w: the paper's figure (2 ops per MAC), or None when it could not be
        checked against the paper here (status "not verified": listed, never fitted or tested). published_range:
        (low, high) when the paper states a range for one configuration without saying which end is which
        operating point; the band then applies to the range. published_tops, published_latency: throughput (TOPS)
        and MVM latency (s) where stated. units: identical arrays (cores) running the workload in parallel for
        the published throughput (jaxcim's TOPS of one workload times ``units`` is compared with
        ``published_tops``).
      cfg, hw, workload: the configuration jaxcim estimates (``hw`` from `node_hardware` of the macro's node:
        one parameter set per node, per-macro fields are configuration only).
      status: "fit" (used to choose the node parameters), "held-out", "simulator" (a simulator's output, the
        convention check) or "not verified".
      assumptions: what the paper's stated figures leave open and the value taken, with the reason.
      notes: for a macro outside the band, where the gap sits (written after the comparison; the configuration
        was not changed).
    """

    name: str
    source: str
    technology: str
    node: float
    published_tops_per_w: float | None
    cfg: CrossbarConfig
    hw: HardwareConfig
    workload: Workload | tuple[Workload, ...]
    status: str = FIT
    published_range: tuple[float, float] | None = None
    published_tops: float | None = None
    published_latency: float | None = None
    units: int = 1
    assumptions: str = ""
    notes: str = ""


def _cfg(name, *, g_min=1e-6, g_max=40e-6, levels=2, weight_bits=1, slices=1, rows=256, cols=256, in_bits=1,
         signed=False, bit_serial=False, adc_bits=5, v_read=0.2, scheme="differential"):
    return CrossbarConfig(
        device=DeviceConfig(model="ideal", g_min=g_min, g_max=g_max, levels=levels),
        mapping=MappingConfig(scheme=scheme, weight_bits=weight_bits, slices=slices, rows=rows, cols=cols),
        dac=DACConfig(bits=in_bits, signed=signed, bit_serial=bit_serial, v_read=v_read),
        adc=ADCConfig(bits=adc_bits, range_mode="full_scale"), name=name)


_HUNG = "Hung et al., Nat. Electron. 4, 921 (2021), abstract: 22 nm foundry ReRAM, 4 Mb"
_HUNG_ASSUMED = ("Not stated in the abstract: sub-array 256x256 (4 Mb in 64 of them), 16 word lines per read (the "
                 "group's earlier macros), differential 1T1R pairs at the NeuRRAM-like 1-40 uS and 0.2 V read. "
                 "8-bit weights: 8 binary columns combined in analog before one conversion (the paper's weighted "
                 "current-to-voltage stacking).")


def _hung_binary() -> Macro:
    cfg = _cfg("hung2021-binary", adc_bits=5)  # 16 rows per read -> 17 levels: 5 bits
    wl = Workload(256, 256, input_density=0.5, input_mean_abs=1.0, weight_mean_abs=1.0, name="binary")
    return Macro("Hung 2021, 1b/1b", _HUNG + " (194.4 TOPS/W, 5.2 ns binary)", "ReRAM", 22e-9, 194.4, cfg,
                 node_hardware(22e-9, t_read=5.2e-9, rows_per_read=16, analog_slice_combine=True), wl,
                 published_latency=5.2e-9, assumptions=_HUNG_ASSUMED + " Binary inputs half ones (density 0.5).")


def _hung_8b() -> Macro:
    cfg = _cfg("hung2021-8b", weight_bits=8, slices=8, in_bits=8, adc_bits=8)
    wl = Workload(256, 256, name="8b/8b")
    hw = node_hardware(22e-9, t_read=5.2e-9, rows_per_read=16, analog_slice_combine=True, input_bits_per_cycle=4)
    return Macro("Hung 2021, 8b/8b", _HUNG + " (15.6 TOPS/W, 15.2 ns at 8b input / 8b weight)", "ReRAM", 22e-9,
                 15.6, cfg, hw, wl, published_latency=15.2e-9,
                 assumptions=_HUNG_ASSUMED + " 8-bit inputs in two 4-bit cycles (latency 15.2 ns ~ 3 x 5.2 ns); "
                 "8-bit output conversion.")


_HERMES = ("Le Gallo et al., Nat. Electron. 6, 680 (2023), abstract: 14 nm PCM, 64 cores of 256x256, 8-bit I/O MVM")
_HERMES_ASSUMED = ("8T4R unit cell: two 25 uS PCM devices per polarity (aihwkit PCM g_max); 127 ns full-scale PWM "
                   "input window (8-bit on a 1 GHz clock); one current-controlled-oscillator ADC per column that "
                   "counts over the window (its power is not published: `P_CCO_14NM` fitted on the 1-phase figure); "
                   "read voltage 0.2 V.")


def _hermes(phases: int) -> Macro:
    cfg = _cfg("hermes", g_min=0.0, g_max=50e-6, levels=0, weight_bits=8, in_bits=8, signed=True, adc_bits=8)
    hw = node_hardware(14e-9, input_encoding="pwm", t_read=127e-9, adc_share=1, adc_model="cco", t_adc_bit=0.3e-9,
                       read_phases=phases)
    label = {1: "one-phase", 4: "four-phase"}[phases]
    tpw, tops = {1: (9.76, 63.1), 4: (2.48, 16.1)}[phases]
    return Macro(f"IBM HERMES, 8b {label}", _HERMES + f" ({tpw} TOPS/W, {tops} TOPS, {label} read)", "PCM", 14e-9,
                 tpw, cfg, hw, Workload(256, 256, name="8b I/O"), published_tops=tops, units=64,
                 assumptions=_HERMES_ASSUMED + " Throughput: the 64 cores each run one 256x256 MVM at once.")


# VGG-8 on CIFAR-10 as in NeuroSim (conv 3x3 layers 128-128-256-256-512-512, fc 8192-1024-10):
# (in_features = k*k*c_in, out_features = c_out, MVMs = output pixels).
VGG8_LAYERS = (
    (27, 128, 1024), (1152, 128, 1024), (1152, 256, 256), (2304, 256, 256),
    (2304, 512, 64), (4608, 512, 64), (8192, 1024, 1), (1024, 10, 1),
)


def _neurosim_vgg8() -> Macro:
    # NeuroSim V1.4 Param.cpp: resistanceOn 6 kOhm, resistanceOff 6 kOhm * 17, readVoltage 0.51 V at 22 nm
    cfg = _cfg("neurosim-vgg8", g_min=1 / 102e3, g_max=1 / 6e3, weight_bits=8, slices=8, rows=128, cols=128,
               in_bits=8, bit_serial=True, adc_bits=4, v_read=0.51)
    # input bit density 0.18: NeuroSim V1.4's measured VGG-8/CIFAR-10 input toggle rate (Param.cpp inputtoggle)
    layers = tuple(Workload(i, o, mvms=n, input_density=1.0, input_mean_abs=0.18, weight_mean_abs=0.5,
                            name=f"vgg8-{k}") for k, (i, o, n) in enumerate(VGG8_LAYERS))
    return Macro("NeuroSim V1.4 VGG-8", "NeuroSim V1.4 (Lee et al., 2024), VGG-8/CIFAR-10, 22 nm ReRAM, 1-bit cells, "
                 "4-bit ADC: 23.9 TOPS/W", "ReRAM", 22e-9, 23.9, cfg, hardware_preset("neurosim-22nm-reram"), layers,
                 status=SIMULATOR,
                 assumptions="NeuroSim's own parameters (Param.cpp); its array energy is bit-line and word-line "
                 "charging only (SubArray.cpp), so the comparison is made in its convention: jaxcim's total "
                 "without the cell Joule term (``array``).")


_HE = ("He et al., IEEE Solid-State Circuits Lett. 3, 194 (2020), abstract: 90 nm CMOS with 2-bit-per-cell ReRAM, "
       "CIFAR-10")
_HE_ASSUMED = ("Not in the abstract: 64 rows read at once of 256 (the input-splitting scheme), 1-bit inputs "
               "bit-serially over 4-bit activations, 2-bit cells (4 levels, 1-40 uS), differential, 3-bit readout, "
               "10 ns read at 0.2 V.")


def _he(vdd: float) -> Macro:
    cfg = _cfg(f"he2020-{vdd}V", levels=4, weight_bits=2, in_bits=4, bit_serial=True, adc_bits=3)
    tpw = {1.2: 25.0, 0.9: 51.0}[vdd]
    hw = node_hardware(90e-9, rows_per_read=64, input_bits_per_cycle=1)
    k = (vdd / 1.2) ** 2  # the paper's supply setting: every C V_dd**2 term scales with it
    hw = hw.replace(v_wordline=vdd, sar_e_bit=hw.sar_e_bit * k, sar_e_cap=hw.sar_e_cap * k,
                    e_sense=hw.e_sense * k, e_add_bit=hw.e_add_bit * k)
    return Macro(f"He 2020, {vdd} V", _HE + f" ({tpw:g} TOPS/W at {vdd} V supply)", "ReRAM", 90e-9, tpw, cfg, hw,
                 Workload(256, 256, name="4b/2b"), assumptions=_HE_ASSUMED + " Supply as stated (1.2 V / 0.9 V).")


_XUE19 = ("Xue et al., ISSCC 2019, paper 24.1 (doi 10.1109/ISSCC.2019.8662395), Fig. 24.1.6 and digest text (read "
          "here in a public summary quoting them): 55 nm, 1 Mb 1T1R binary-cell ReRAM, MAC time 11.75 ns (1b "
          "input) / 14.6 ns (2b input)")
_XUE19_ASSUMED = ("Stated (digest text): a 3-bit signed weight is 4 binary cells in a positive or a negative column "
                  "group (2 magnitude bits, MSB and LSB bit lines) whose currents are scaled and combined before one "
                  "current-mode sense (down-scaling weighted current translator, positive-negative subtractor); "
                  "a 3x3 kernel occupies 9 consecutive rows; 4-bit output from a 3-phase sense amplifier; a 2-bit "
                  "input is two sequential 1-bit word-line pulses combined before sensing. Assumed: 256x512 sub-arrays "
                  "(8 in 1 Mb, as quoted for this macro in a public survey summary), 9 word lines per read, the "
                  "4-bit sense modelled as the node's 4-bit SAR, 1-40 uS cells at 0.2 V (the group's later macros, as "
                  "Hung 2021), read window = the stated MAC time (11.75 ns at 1-bit inputs, 14.6 ns at 2-bit inputs, "
                  "the two pulses as one pulse-width-coded input), binary inputs half ones.")


def _xue2019(in_bits: int) -> Macro:
    cfg = _cfg(f"xue2019-{in_bits}b", weight_bits=2, slices=2, rows=256, cols=128, in_bits=in_bits, adc_bits=4)
    t = {1: 11.75e-9, 2: 14.6e-9}[in_bits]
    enc = {1: "amplitude", 2: "pwm"}[in_bits]
    hw = node_hardware(55e-9, t_read=t, rows_per_read=9, analog_slice_combine=True, adc_share=1,
                       input_encoding=enc)
    tpw = {1: 53.17, 2: 21.9}[in_bits]
    mode = {1: "binary mode, 1b input / 3b weight / 4b output", 2: "multibit mode, 2b input"}[in_bits]
    wl = (Workload(256, 128, input_density=0.5, input_mean_abs=1.0, name="1b/3b") if in_bits == 1
          else Workload(256, 128, name="2b/3b"))
    return Macro(f"Xue 2019, {in_bits}b/3b", _XUE19 + f" ({tpw} TOPS/W, {mode})", "ReRAM", 55e-9, tpw, cfg, hw, wl,
                 published_latency=t, assumptions=_XUE19_ASSUMED)


_XUE20 = ("Xue et al., ISSCC 2020, paper 15.4 (doi 10.1109/ISSCC19947.2020.9063078), title and abstract: 22 nm, 2 Mb "
          "ReRAM, 121.3 TOPS/W (binary) to 28.9 TOPS/W (4b input / 4b weight / 11b output), access time 9.8-18.3 ns")
_XUE20_ASSUMED = ("Stated (abstract): inputs on the bit lines through input-aware multibit bit-line clamping with a "
                  "single word line on per input (amplitude-coded inputs, one cycle), 4-bit weights in binary cells "
                  "by scrambled two's-complement mapping with source-line biasing and a value combiner (one cell per "
                  "weight bit, combined in analog before one conversion), dual-bit current-mode sense amplifier. "
                  "Assumed: 512x512 sub-arrays and 16 word lines per read (as quoted for this macro in a public "
                  "survey summary), two's-complement columns as jaxcim's offset scheme, the sense amplifier as the "
                  "node's SAR at the output bits (5 bits for 16 binary products, 11 bits as stated), 1-40 uS cells "
                  "at 0.2 V full-scale bit-line voltage (as Hung 2021, the same group and node), read window = the "
                  "stated access time (9.8 ns binary, 18.3 ns at 4 bits), binary inputs half ones.")


def _xue2020(bits: int) -> Macro:
    if bits == 1:
        cfg = _cfg("xue2020-binary", rows=512, cols=512, adc_bits=5, scheme="offset")
        hw = node_hardware(22e-9, t_read=9.8e-9, rows_per_read=16, adc_share=1)
        wl = Workload(512, 511, input_density=0.5, input_mean_abs=1.0, name="binary")
        tpw, lat, mode = 121.3, 9.8e-9, "binary"
    else:
        cfg = _cfg("xue2020-4b", weight_bits=4, slices=4, rows=512, cols=128, in_bits=4, adc_bits=11,
                   scheme="offset")
        hw = node_hardware(22e-9, t_read=18.3e-9, rows_per_read=16, adc_share=1, analog_slice_combine=True)
        wl = Workload(512, 127, name="4b/4b/11b")
        tpw, lat, mode = 28.9, 18.3e-9, "4b input / 4b weight / 11b output"
    return Macro(f"Xue 2020, {mode.split(' ')[0]}", _XUE20 + f" ({tpw} TOPS/W at {mode})", "ReRAM", 22e-9, tpw, cfg,
                 hw, wl, published_latency=lat, assumptions=_XUE20_ASSUMED)


_LIU20 = ("Liu et al., ISSCC 2020, paper 33.2 (doi 10.1109/ISSCC19947.2020.9062953): 130 nm, 158.8 kb analog ReRAM, "
          "78.4 TOPS/W peak (title; Fig. 33.2.7), MAC-OUT access time 51.1 ns at V_read = 0.2 V and VDD = 4.2 V "
          "(Fig. 33.2.5)")
_LIU20_ASSUMED = ("Stated: the first layer of a 784-100-10 MLP on a 784x100 sign-weighted 2T2R array read fully in "
                  "parallel (all 784 rows), positive and negative cells on one source line, 1-bit inputs, 3-level "
                  "(quasi-2-bit) signed weights, a resolution-adjustable integrating ramp ADC per output. Assumed: "
                  "8-bit conversions (the resolution of the public MNSIM 2.0 reproduction of this layer), one ADC per "
                  "output column, modelled as the node's SAR; LRS 60 kOhm and HRS 20 MOhm (as read from the paper's "
                  "Fig. 33.2.S1 by that reproduction); the stated VDD = 4.2 V taken as the word-line (access-gate) "
                  "swing, the periphery at the node's 1.2 V; read window = the stated 51.1 ns access time; binary "
                  "inputs half ones.")


def _liu2020() -> Macro:
    cfg = _cfg("liu2020", g_min=1 / 20e6, g_max=1 / 60e3, rows=784, cols=100, adc_bits=8)
    hw = node_hardware(130e-9, t_read=51.1e-9, adc_share=1, v_wordline=4.2)
    wl = Workload(784, 100, input_density=0.5, input_mean_abs=1.0, name="784x100, 1b/ternary")
    return Macro("Liu ISSCC 2020", _LIU20, "ReRAM", 130e-9, 78.4, cfg, hw, wl, published_latency=51.1e-9,
                 assumptions=_LIU20_ASSUMED)


_WAN22 = ("Wan et al., Nature 608, 504 (2022) (NeuRRAM): 130 nm, 48 cores of 256x256 1T1R ReRAM; the TOPS/W and "
          "TOPS (48 cores) at each input/output precision of its Fig. 12c,d, read here as digitized in the public "
          "CiMLoop reproduction (Andrulis et al., ISPASS 2024, macro wan_nature_2022)")
_WAN22_ASSUMED = ("Stated (paper, as parameterized in that reproduction): differential pairs (128 signed 4-bit weights "
                  "per 256-cell row, one analog cell per polarity), signed inputs applied as 10 ns pulses on 0.5 V "
                  "read lines and integrated on each neuron, 2**N - 1 pulses for an N-bit magnitude chunk, two phases "
                  "of at most 3 magnitude bits for wider inputs, a variable-precision neuron ADC at the stated output "
                  "bits, one neuron per output, neurons at 1.8 V, word lines switched to 2.2 V. Assumed: 1-40 uS "
                  "cells (jaxcim's NeuRRAM preset); the 10 ns pulse train as one pulse-width-coded window of "
                  "(2**N - 1) x 10 ns per phase; the neuron as the node's readout front end and SAR ADC scaled to "
                  "1.8 V (C V_dd**2, as He 2020's supply); inputs uniform over their range (the figures are for "
                  "random data). Throughput is not checked: the neuron's 270 ns integration step per pulse slot "
                  "and the 10 ns pulse cannot both be one read time.")


def _wan2022(in_bits: int, out_bits: int) -> Macro:
    mag = max(1, in_bits - 1)
    per_phase = mag if mag <= 3 else math.ceil(mag / 2)
    cfg = _cfg(f"neurram-{in_bits}b-{out_bits}b", levels=0, weight_bits=4, in_bits=in_bits, signed=True,
               adc_bits=out_bits, v_read=0.5)
    hw = node_hardware(130e-9, input_encoding="pwm", t_read=(2**per_phase - 1) * 10e-9,
                       input_bits_per_cycle=per_phase, adc_share=1, v_wordline=2.2)
    k = (1.8 / supply(130e-9)) ** 2  # neurons at 1.8 V instead of the node's core supply (1.2 V)
    hw = hw.replace(sar_e_bit=hw.sar_e_bit * k, sar_e_cap=hw.sar_e_cap * k, e_sense=hw.e_sense * k,
                    e_add_bit=hw.e_add_bit * k)
    # the figure's 1-bit signed input is one magnitude bit: jaxcim's 2-bit signed DAC
    tpw = {(2, 3): 43.08875866, (8, 10): 6.437388185}[(in_bits, out_bits)]
    tops = {(2, 3): 2.12230988, (8, 10): 0.2638743409}[(in_bits, out_bits)]
    label = {2: "1b", 8: "8b"}[in_bits]
    notes = "" if in_bits == 2 else (
        "Written after the comparison: 0.28x, outside the band. The gap is the cell Joule term (79 % of jaxcim's "
        "energy; without it 1.30x): at 8-bit inputs jaxcim charges V^2 G t for 2 phases x 15 pulse slots (7.5 "
        "pulses each on average), 15x the 1-bit point's pulses, while the published efficiency falls only 6.7x from "
        "1 to 8 bits. Two causes, not separated here: NeuRRAM senses in voltage mode (the output line charges the "
        "neuron's capacitor and its current falls as it settles, where jaxcim holds columns at virtual ground), and "
        "the input statistics behind the figure are not stated (mean input 0.25 or 0.1 of full scale instead of "
        "0.5 gives 0.46x or 0.75x). Not tuned: the configuration stays as written before the comparison.")
    return Macro(f"NeuRRAM, {label} in / {out_bits}b out", _WAN22 + f" ({tpw:.1f} TOPS/W, {tops:.3g} TOPS)",
                 "ReRAM", 130e-9, round(tpw, 2), cfg, hw, Workload(256, 128, name=f"{label}/4b/{out_bits}b"),
                 status=HELD, assumptions=_WAN22_ASSUMED, notes=notes)


# ----------------------------------------------------------------------------------------- held out


def _yoon() -> Macro:
    cfg = _cfg("yoon2021", adc_bits=0, rows=256, cols=256)
    hw = node_hardware(40e-9, t_read=10e-9, adc_share=32)
    wl = Workload(256, 8, input_density=0.5, input_mean_abs=1.0, weight_mean_abs=1.0, name="1b/1b, 8 bit lines")
    return Macro("Yoon ISSCC 2021", "Yoon et al., ISSCC 2021 / IEEE JSSC 57, 68 (2022), abstract: 40 nm, 64 Kb "
                 "ReRAM, peak 56.67 TOPS/W", "ReRAM", 40e-9, 56.67, cfg.replace(**{"adc.bits": 8}), hw, wl,
                 status=HELD,
                 assumptions="Peak efficiency taken at 1-bit inputs and weights; 256 rows, 8 bit lines computed at "
                 "once (the abstract's eight-bitline MAC); 8-bit voltage-sensing readout; 10 ns read.",
                 notes="Written after the comparison. Until the energy model counted only the columns that hold "
                 "weights, jaxcim converted every column of the 256-column array for the eight computed bit lines: "
                 "256 8-bit conversions (0.89 pJ each at 40 nm) for 8 outputs, 12.5 TOPS/W (0.22x). Counting only "
                 "used columns and row groups is a general change (every layer narrower than its arrays: see "
                 "`jaxcim.energy.model.counts`), but it was found by examining this row, so the row no longer tests "
                 "it independently: with it jaxcim gives 1.11x, the cell Joule term 65 % and the word-line drive "
                 "across the 256-column array 22 % of the energy. The configuration was not changed.")


def _khwa() -> Macro:
    cfg = _cfg("khwa2022", g_min=0.0, g_max=25e-6, levels=0, weight_bits=8, slices=4, in_bits=8, bit_serial=True,
               adc_bits=5)
    hw = node_hardware(40e-9, rows_per_read=16, input_bits_per_cycle=1)
    return Macro("Khwa ISSCC 2022", "Khwa et al., ISSCC 2022, title and abstract: 40 nm, 2M-cell, 8b-precision hybrid "
                 "SLC-MLC PCM macro, 20.5-65.0 TOPS/W", "PCM", 40e-9, None, cfg, hw,
                 Workload(256, 256, input_mean_abs=0.25, name="8b/8b"), status=HELD, published_range=(20.5, 65.0),
                 assumptions="Range stated without the operating points: the band applies to 0.5 x 20.5 .. 2 x 65. "
                 "8-bit weights in 4 slices (SLC upper bits, MLC lower bits), bit-serial 8-bit inputs at 25 % mean "
                 "magnitude (ReLU activations), 16 rows per read, 5-bit readout, 0-25 uS PCM.",
                 notes="The gap is the conversion count, i.e. the per-conversion terms (ADC 46 %, shift-and-add "
                 "25 %, readout front end 24 % of jaxcim's energy): 4 weight slices x 8 bit-serial input cycles x 16 "
                 "row groups = 512 conversions per output per MVM, one operation per conversion. The published "
                 "20.5-65 TOPS/W at 8b/8b needs about 20x fewer: with the weight slices combined in analog before "
                 "one conversion and 4-bit input cycles (Hung 2021's scheme) the same parameters give 31.7 TOPS/W, "
                 "inside the range. Not adopted: the held-out configuration stays as written before the comparison.")


def _ambrogio() -> Macro:
    cfg = _cfg("ambrogio2023", g_min=0.0, g_max=25e-6, levels=0, weight_bits=8, rows=512, cols=512, in_bits=8,
               signed=True, adc_bits=8)
    hw = node_hardware(14e-9, input_encoding="pwm", t_read=127e-9, adc_share=1, adc_model="cco", t_adc_bit=0.3e-9)
    return Macro("Ambrogio Nature 2023", "Ambrogio et al., Nature 620, 768 (2023), abstract: 14 nm, 35 M PCM devices "
                 "in 34 tiles, up to 12.4 TOPS/W chip-sustained", "PCM", 14e-9, 12.4, cfg, hw,
                 Workload(512, 512, name="8b PWM"), status=HELD,
                 assumptions="512x512 tile section, pulse-duration inputs (8-bit, 127 ns window) and integrating "
                 "duration-coded column outputs modelled as HERMES's per-column integrating ADC at 14 nm; 25 uS "
                 "PCM, 0.2 V read.")


def _not_verified() -> list[Macro]:
    mochida = _cfg("mochida2018", levels=0, weight_bits=4, in_bits=1, adc_bits=4)
    spetalnick = _cfg("spetalnick2022", adc_bits=4)
    return [
        Macro("Mochida VLSI 2018", "Mochida et al., VLSI 2018, 40 nm analog ReRAM processor (Panasonic): no source "
              "with its figure could be retrieved here", "ReRAM", 40e-9, None, mochida, node_hardware(40e-9),
              Workload(256, 256), status=UNVERIFIED),
        Macro("Spetalnick ISSCC 2022", "Spetalnick et al., ISSCC 2022, 40 nm 64 kb binary ReRAM CIM macro: the "
              "26.56 TOPS/W of its title was read (reference lists), but not its configuration (rows per read, "
              "readout), so it is not modelled", "ReRAM", 40e-9, None, spetalnick, node_hardware(40e-9),
              Workload(256, 256), status=UNVERIFIED),
    ]


def macros() -> list[Macro]:
    """The validation set: fitted, simulator, held-out and not-verified macros (see each ``status``)."""
    return [_hung_binary(), _hung_8b(), _hermes(1), _hermes(4), _he(1.2), _he(0.9), _xue2019(1), _xue2019(2),
            _xue2020(1), _xue2020(4), _liu2020(), _wan2022(2, 3), _wan2022(8, 10), _neurosim_vgg8(), _yoon(), _khwa(),
            _ambrogio(), *_not_verified()]


def _within(m: Macro, value: float) -> tuple[float | None, bool | None]:
    if m.published_range is not None:
        lo, hi = m.published_range
        ratio = value / math.sqrt(lo * hi)
        return ratio, BAND[0] * lo <= value <= BAND[1] * hi
    if m.published_tops_per_w is None:
        return None, None
    ratio = value / m.published_tops_per_w
    return ratio, BAND[0] <= ratio <= BAND[1]


def validate(include_unverified: bool = False) -> list[dict]:
    """jaxcim's estimate for each published macro.

    Returns:
      one dict per macro: name, source, status, node, published TOPS/W (or range), jaxcim TOPS/W, ratio (jaxcim /
      published; to the range's geometric mean for a range), ``within`` the one band, TOPS/W in NeuroSim's
      convention (no cell Joule term) and its ratio, the energy shares, the largest item (``dominant``) and the
      ratio with that item left out (``ratio_without_dominant``, ``within_without_dominant``: where a gap sits),
      throughput (``jaxcim_tops`` of ``units`` parallel arrays, ``tops_ratio`` to the published TOPS and
      ``tops_within`` the same band) and latency next to the published ones, and the assumptions.
    """
    rows = []
    for m in macros():
        if m.status == UNVERIFIED and not include_unverified:
            continue
        r = estimate(m.cfg, m.workload, m.hw).as_dict()
        per_inf = r["energy"] / r["total"]
        no_cell = r["ops"] / ((r["total"] - r["array"]) * per_inf) / 1e12
        ratio, within = _within(m, r["tops_per_w"])
        ratio_nc, within_nc = _within(m, no_cell)
        if m.status == SIMULATOR:  # compared in the simulator's own convention
            ratio, within = ratio_nc, within_nc
        shares = {k: r[k] / r["total"] for k in ENERGY_ITEMS}
        dominant = max(shares, key=shares.get)
        ratio_wd, within_wd = _within(m, r["tops_per_w"] / (1.0 - shares[dominant]))
        tops = r["tops"] * m.units
        tops_ratio = tops / m.published_tops if m.published_tops else None
        rows.append(dict(
            name=m.name, source=m.source, status=m.status, technology=m.technology, node_nm=m.node * 1e9,
            published=m.published_tops_per_w, published_range=m.published_range, jaxcim=r["tops_per_w"],
            ratio=ratio, band=BAND, within=within, jaxcim_no_cell_joule=no_cell, ratio_no_cell_joule=ratio_nc,
            ratio_with_cell_joule=r["tops_per_w"] / m.published_tops_per_w if m.published_tops_per_w else None,
            shares=shares, dominant=dominant, ratio_without_dominant=ratio_wd, within_without_dominant=within_wd,
            published_tops=m.published_tops, jaxcim_tops=tops, tops_ratio=tops_ratio,
            tops_within=None if tops_ratio is None else BAND[0] <= tops_ratio <= BAND[1],
            published_latency=m.published_latency, latency_mvm=r["latency_mvm"], assumptions=m.assumptions,
            notes=m.notes,
        ))
    return rows
