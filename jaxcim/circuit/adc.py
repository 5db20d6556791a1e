"""ADC circuits: SAR, single-slope (ramp), flash and measured-table converters with their INL/DNL, noise,
energy, latency and area derived from the same circuit parameters.

Every model implements one protocol (a small pytree class, its parameters as leaves):

- ``sample(key, shape, levels)``: the static errors of one chip instance, per column (``shape`` = the column
  shape, e.g. (slices, row_tiles, col_tiles, cols)): capacitor mismatch, comparator offsets, ramp bow;
- ``convert(params, v, levels, key)``: codes 0..levels of inputs ``v`` in LSB units (``v`` = levels at full
  scale), with comparator noise drawn from ``key`` (None: noise-free). Straight-through: the forward pass is the
  circuit's code, the gradient that of the ideal quantizer (identity inside the range, zero outside);
- ``thresholds(params, levels)``: the static transition levels T_k, k = 1..levels, LSB (IEEE 1241: code k for
  T_k <= v < T_{k+1}); `inl_dnl` turns them into INL and DNL;
- ``energy(bits)``, ``latency(bits)``, ``area(bits)``: per conversion, J and s; per ADC, m^2.

``levels`` is the largest code: 2**bits - 1 for a unipolar ADC, 2 * (2**(bits-1) - 1) for jaxcim's signed
codes (shifted to start at 0). The crossbar read uses a circuit when ``ADCConfig.circuit`` is set; the default
(None) is the ideal quantizer of `jaxcim.converters.adc`.

Physics and defaults:

- Thermal-noise-limited comparator: a dynamic latch whose input-referred noise is sigma_v has an effective
  load C = kT / sigma_v**2 and spends C * V_dd**2 per decision (Sepke et al., "Noise analysis for comparator-based
  circuits", IEEE TCAS-I 56, 541 (2009); Murmann, "Energy limits in A/D converters", IEEE FTFC 2013).
- Capacitor mismatch: sigma(dC/C) = A_C / sqrt(C / 1 fF) (Pelgrom law for capacitors). A_C = 1 %: the order of
  the metal-fringe unit capacitors measured by Tripathi & Murmann, IEEE TCAS-I 61, 2236 (2014) (an assumption
  for a generic 22 nm process).
- SAR switching energy: conventional binary-weighted switching draws on average ~1.33 * 2**N * C_u * V_ref**2 per
  conversion (10 bits: 1363 C V_ref**2; Liu et al., IEEE JSSC 45, 731 (2010), Table I).
- Transistor offset: sigma_VT = A_VT / sqrt(W L) (Pelgrom et al., IEEE JSSC 24, 1433 (1989)); A_VT = 1.5 mV um
  for 22-28 nm bulk/FD-SOI devices (Pelgrom, "Analog-to-Digital Conversion", Springer 2017, Fig. 2.40 trend; an
  assumption), gate capacitance density 20 fF/um^2 (EOT ~ 1.7 nm).
- Walden figure of merit E / 2**ENOB is what the Murmann ADC survey (1997-2024) tabulates: tests check the
  defaults land inside its published range.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcim.fields import check_range

K_B = 1.380649e-23
"""Boltzmann constant, J/K."""
T_ROOM = 300.0
"""Temperature, K."""


def _ste(v: jax.Array, code: jax.Array, levels: int) -> jax.Array:
    """``code`` in the forward pass, the gradient of clip(v, -0.5, levels + 0.5) in the backward pass."""
    vc = jnp.clip(v, -0.5, levels + 0.5)
    return vc + jax.lax.stop_gradient(code - vc)


def _count(v: jax.Array, thresholds: jax.Array) -> jax.Array:
    """Number of transition levels at or below v: (..., ) and (..., levels) -> (...)."""
    return jnp.sum((v[..., None] >= thresholds).astype(v.dtype), axis=-1)


def _compare(adc, params, v: jax.Array, levels: int, key: jax.Array | None) -> jax.Array:
    """Codes of a converter that compares ``v`` with its thresholds (``adc.thresholds``; flash, ramp, measured
    tables), with Gaussian comparator noise ``adc.comparator_noise`` when ``key`` is given; straight-through."""
    vn = jax.lax.stop_gradient(v)
    if key is not None:
        vn = vn + adc.comparator_noise * jax.random.normal(key, v.shape, v.dtype)
    return _ste(v, _count(vn, adc.thresholds(params, levels).astype(v.dtype)), levels)


def ideal_thresholds(levels: int, dtype=jnp.float32) -> jax.Array:
    """T_k = k - 1/2, k = 1..levels (LSB): rounding to the nearest code."""
    return jnp.arange(1, levels + 1, dtype=dtype) - 0.5


def inl_dnl(thresholds: jax.Array) -> tuple[jax.Array, jax.Array]:
    """INL and DNL (LSB) from transition levels (..., levels) (IEEE Std 1241, endpoint-free definition).

    INL_k = T_k - (k - 1/2), k = 1..levels; DNL_k = T_{k+1} - T_k - 1, k = 1..levels-1.
    """
    levels = thresholds.shape[-1]
    inl = thresholds - ideal_thresholds(levels, thresholds.dtype)
    dnl = jnp.diff(thresholds, axis=-1) - 1.0
    return inl, dnl


@struct.dataclass
class SARADC:
    """Successive-approximation ADC with a binary-weighted capacitive DAC.

    Attributes:
      c_unit: unit capacitor, F. Default 1 fF (22-28 nm SAR ADCs in CIM macros use ~0.5-2 fF units).
      a_c: capacitor mismatch coefficient: sigma(dC/C) of a 1 fF capacitor. Default 1 % (Tripathi & Murmann 2014).
      comparator_noise: input-referred comparator noise, LSB rms per decision. Default 0.25 LSB.
      v_ref: reference (full-scale) voltage, V. Default 0.8 V.
      v_dd: supply, V. Default 0.8 V (22 nm core supply).
      e_logic_bit: SAR logic energy per bit cycle, J. Default 2 fJ (a ~10-flop register switching ~0.1 fF each
        at 0.8 V, plus clocking).
      t_bit: time per bit decision, s. Default 1 ns (NeuroSim V1.4's 1 GHz clock).
      cap_density: capacitor density, F/m^2. Default 2 fF/um^2 (MOM fringe capacitors).
      area_logic_bit: logic and comparator area per bit, m^2. Default 20 um^2.
    """

    c_unit: Any = 1e-15
    a_c: Any = 0.01
    comparator_noise: Any = 0.25
    v_ref: Any = 0.8
    v_dd: Any = 0.8
    e_logic_bit: Any = 2e-15
    t_bit: Any = 1e-9
    cap_density: Any = 2e-3
    area_logic_bit: Any = 20e-12

    def __post_init__(self):
        for name in ("c_unit", "v_ref", "v_dd", "t_bit", "cap_density"):
            check_range("adc.circuit", name, getattr(self, name), 0.0, lo_open=True)
        for name in ("a_c", "comparator_noise", "e_logic_bit", "area_logic_bit"):
            check_range("adc.circuit", name, getattr(self, name), 0.0)

    def sigma_unit(self):
        """Relative mismatch of one unit capacitor, sigma(dC/C)."""
        return self.a_c / jnp.sqrt(self.c_unit / 1e-15)

    def sample(self, key: jax.Array, shape: tuple[int, ...], levels: int) -> dict[str, jax.Array]:
        """Per-column bit weights (LSB), (*shape, bits): 2**b (1 + d_b), d_b ~ N(0, sigma_u / sqrt(2**b))
        (a capacitor of 2**b units averages their independent mismatch)."""
        bits = max(1, math.ceil(math.log2(levels + 1)))
        ideal = 2.0 ** jnp.arange(bits, dtype=jnp.float32)
        z = jax.random.normal(key, (*shape, bits))
        return {"weights": ideal * (1.0 + self.sigma_unit() * z / jnp.sqrt(ideal))}

    def ideal_params(self, shape: tuple[int, ...], levels: int) -> dict[str, jax.Array]:
        bits = max(1, math.ceil(math.log2(levels + 1)))
        return {"weights": jnp.broadcast_to(2.0 ** jnp.arange(bits, dtype=jnp.float32), (*shape, bits))}

    def _search(self, weights, v, noise):
        """Binary search MSB first: bit b is kept when v + 1/2 + noise_b >= (bits so far + weight_b)."""
        bits = weights.shape[-1]
        acc = jnp.zeros_like(v)
        code = jnp.zeros_like(v)
        for b in range(bits - 1, -1, -1):
            trial = acc + weights[..., b]
            keep = (v + 0.5 + (0.0 if noise is None else noise[b]) >= trial).astype(v.dtype)
            acc = acc + keep * weights[..., b]
            code = code + keep * 2.0**b
        return code

    def convert(self, params, v, levels: int, key: jax.Array | None = None) -> jax.Array:
        w = params["weights"].astype(v.dtype)
        noise = None
        if key is not None:
            noise = self.comparator_noise * jax.random.normal(key, (w.shape[-1], *v.shape), v.dtype)
        code = jnp.clip(self._search(w, jax.lax.stop_gradient(v), noise), 0, levels)
        return _ste(v, code, levels)

    def thresholds(self, params, levels: int) -> jax.Array:
        """Noise-free transition levels: found by bisection on the monotone-in-v SAR output, (..., levels)."""
        w = params["weights"]
        target = jnp.arange(1, levels + 1, dtype=w.dtype)
        lo = jnp.full(w.shape[:-1] + (levels,), -1.0, w.dtype)
        hi = jnp.full(w.shape[:-1] + (levels,), levels + 1.0, w.dtype)
        wk = w[..., None, :]
        for _ in range(40):  # 2**-40 of the range: far below any mismatch of interest
            mid = 0.5 * (lo + hi)
            up = jnp.clip(self._search(wk, mid, None), 0, levels) >= target
            hi = jnp.where(up, mid, hi)
            lo = jnp.where(up, lo, mid)
        return hi

    def comparator_energy(self, bits: int):
        """C V_dd**2 with C = kT / sigma_v**2 and sigma_v = comparator_noise * LSB (V), J per decision."""
        lsb = self.v_ref / 2.0**bits
        sigma_v = jnp.maximum(self.comparator_noise, 1e-3) * lsb
        return K_B * T_ROOM / sigma_v**2 * self.v_dd**2

    def energy(self, bits: int):
        """Capacitive DAC switching + bits comparator decisions + SAR logic, J per conversion."""
        e_dac = 1.33 * 2.0**bits * self.c_unit * self.v_ref**2
        return e_dac + bits * (self.comparator_energy(bits) + self.e_logic_bit)

    def latency(self, bits: int):
        return bits * self.t_bit

    def area(self, bits: int):
        return 2.0**bits * self.c_unit / self.cap_density + bits * self.area_logic_bit


@struct.dataclass
class FlashADC:
    """Flash ADC: one comparator per transition level, each with its own offset (per chip, per column).

    Attributes:
      offset: comparator offset, LSB rms (set by the input pair's size: W L = (A_VT / sigma_V)**2). Default
        0.2 LSB.
      comparator_noise: input-referred noise per conversion, LSB rms. Default 0.1 LSB.
      v_ref, v_dd: full-scale and supply voltages, V. Default 0.8 V.
      a_vt: Pelgrom coefficient, V m. Default 1.5 mV um.
      c_gate: gate capacitance density, F/m^2. Default 20 fF/um^2.
      t_conv: conversion time, s. Default 0.5 ns.
      area_overhead: comparator area / input-pair gate area. Default 20 (latch, preamp, wiring).
    """

    offset: Any = 0.2
    comparator_noise: Any = 0.1
    v_ref: Any = 0.8
    v_dd: Any = 0.8
    a_vt: Any = 1.5e-9
    c_gate: Any = 2e-2
    t_conv: Any = 0.5e-9
    area_overhead: Any = 20.0

    def __post_init__(self):
        for name in ("offset", "v_ref", "v_dd", "a_vt", "c_gate", "t_conv", "area_overhead"):
            check_range("adc.circuit", name, getattr(self, name), 0.0, lo_open=True)
        check_range("adc.circuit", "comparator_noise", self.comparator_noise, 0.0)

    def sample(self, key, shape, levels):
        return {"offsets": self.offset * jax.random.normal(key, (*shape, levels))}

    def ideal_params(self, shape, levels):
        return {"offsets": jnp.zeros((*shape, levels))}

    def thresholds(self, params, levels):
        return ideal_thresholds(levels, params["offsets"].dtype) + params["offsets"]

    def convert(self, params, v, levels, key=None):
        return _compare(self, params, v, levels, key)

    def _gate_area(self, bits):
        sigma_v = self.offset * self.v_ref / 2.0**bits
        return (self.a_vt / sigma_v) ** 2  # W L of one input transistor

    def energy(self, bits):
        """(2**bits - 1) comparators, each switching its input pair's gate capacitance, J per conversion."""
        return (2.0**bits - 1) * 2 * self.c_gate * self._gate_area(bits) * self.v_dd**2

    def latency(self, bits):
        return self.t_conv + 0.0 * bits

    def area(self, bits):
        return (2.0**bits - 1) * 2 * self._gate_area(bits) * self.area_overhead


@struct.dataclass
class RampADC:
    """Single-slope ADC: a ramp shared by the columns of a chip, one comparator and counter per column.

    Attributes:
      bow: ramp nonlinearity, peak INL of a parabolic bow, LSB rms over chips (sampled per chip). Default 0.3 LSB.
      offset: comparator offset per column, LSB rms. Default 0.5 LSB.
      comparator_noise: LSB rms per conversion. Default 0.1 LSB.
      c_count: switched capacitance per counter toggle, F. Default 1 fF; a ripple counter toggles 2 flops per
        count on average.
      v_dd: supply, V. Default 0.8 V.
      e_comparator: comparator energy per conversion, J. Default 20 fJ.
      t_clock: counter clock period, s. Default 0.5 ns.
      area_bit: counter area per bit plus comparator share, m^2. Default 15 um^2.
    """

    bow: Any = 0.3
    offset: Any = 0.5
    comparator_noise: Any = 0.1
    c_count: Any = 1e-15
    v_dd: Any = 0.8
    e_comparator: Any = 20e-15
    t_clock: Any = 0.5e-9
    area_bit: Any = 15e-12

    def __post_init__(self):
        for name in ("bow", "offset", "comparator_noise", "c_count", "e_comparator", "area_bit"):
            check_range("adc.circuit", name, getattr(self, name), 0.0)
        for name in ("v_dd", "t_clock"):
            check_range("adc.circuit", name, getattr(self, name), 0.0, lo_open=True)

    def sample(self, key, shape, levels):
        k_bow, k_off = jax.random.split(key)
        return {"bow": self.bow * jax.random.normal(k_bow, ()) * jnp.ones(shape),
                "offset": self.offset * jax.random.normal(k_off, shape)}

    def ideal_params(self, shape, levels):
        return {"bow": jnp.zeros(shape), "offset": jnp.zeros(shape)}

    def thresholds(self, params, levels):
        k = ideal_thresholds(levels, params["offset"].dtype)
        x = k / levels
        return k + params["bow"][..., None] * 4 * x * (1 - x) + params["offset"][..., None]

    def convert(self, params, v, levels, key=None):
        return _compare(self, params, v, levels, key)

    def energy(self, bits):
        return 2.0**bits * 2 * self.c_count * self.v_dd**2 + self.e_comparator

    def latency(self, bits):
        return 2.0**bits * self.t_clock

    def area(self, bits):
        return bits * self.area_bit + 0.0 * self.v_dd


@struct.dataclass
class MeasuredADC:
    """An ADC given by measured INL per transition level (LSB), the same for every column and chip.

    Energy, latency and area are the measured figures given with the table.

    Attributes:
      inl: INL_k, k = 1..levels, LSB (T_k = k - 1/2 + INL_k).
      e_conv: energy per conversion, J. t_conv: conversion time, s. area_adc: area, m^2.
      comparator_noise: input-referred noise per conversion, LSB rms.
    """

    inl: Any
    e_conv: Any = 0.0
    t_conv: Any = 0.0
    area_adc: Any = 0.0
    comparator_noise: Any = 0.0

    @classmethod
    def from_dnl(cls, dnl, **kw) -> MeasuredADC:
        """From DNL_k, k = 1..levels-1 (LSB), with INL_1 = 0 (offset calibrated out)."""
        dnl = jnp.asarray(dnl, jnp.float32)
        return cls(inl=jnp.concatenate([jnp.zeros(1, dnl.dtype), jnp.cumsum(dnl)]), **kw)

    @classmethod
    def load(cls, path: str | Path, **kw) -> MeasuredADC:
        """Read a table: a text file (CSV or whitespace) with a header naming ``code`` and ``inl`` or ``dnl``
        columns (one row per transition level k = 1..levels, or per code for DNL), or an .npz with an ``inl`` or
        ``dnl`` array."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"ADC table not found: {p}")
        if p.suffix == ".npz":
            with np.load(p) as z:
                cols = {k: np.asarray(z[k], np.float64) for k in z.files}
        else:
            delim = "," if "," in p.read_text().splitlines()[0] else None
            data = np.genfromtxt(p, delimiter=delim, names=True)
            cols = {n.lower(): np.atleast_1d(np.asarray(data[n], np.float64)) for n in data.dtype.names}
        if "inl" in cols:
            return cls(inl=jnp.asarray(cols["inl"], jnp.float32), **kw)
        if "dnl" in cols:
            return cls.from_dnl(cols["dnl"], **kw)
        raise ValueError(f"{p}: the table needs an 'inl' or a 'dnl' column, found {sorted(cols)}")

    def _check(self, levels):
        if self.inl.shape[-1] != levels:
            raise ValueError(f"adc.circuit: the measured table has {self.inl.shape[-1]} transition levels but the "
                             f"ADC has {levels} (adc.bits)")

    def sample(self, key, shape, levels):
        self._check(levels)
        return {"inl": jnp.broadcast_to(self.inl, (*shape, levels))}

    def ideal_params(self, shape, levels):
        return self.sample(None, shape, levels)

    def thresholds(self, params, levels):
        return ideal_thresholds(levels, params["inl"].dtype) + params["inl"]

    def convert(self, params, v, levels, key=None):
        return _compare(self, params, v, levels, key)

    def energy(self, bits):
        return self.e_conv + 0.0 * bits

    def latency(self, bits):
        return self.t_conv + 0.0 * bits

    def area(self, bits):
        return self.area_adc + 0.0 * bits


ADC_CIRCUITS = {"sar": SARADC, "flash": FlashADC, "ramp": RampADC, "measured": MeasuredADC}
"""Circuit models by name (study files: ``[crossbar.adc.circuit] type = "sar"``; sweeps: ``adc.type``)."""


def _to_dict(self) -> dict[str, Any]:
    """``{"type": name, field: value}`` (plain numbers and lists), the inverse of `circuit_from_dict`."""
    name = next(k for k, v in ADC_CIRCUITS.items() if v is type(self))
    out: dict[str, Any] = {"type": name}
    for f in dataclasses.fields(self):
        a = np.asarray(getattr(self, f.name))
        out[f.name] = a.item() if a.ndim == 0 else a.tolist()
    return out


for _cls in ADC_CIRCUITS.values():
    _cls.to_dict = _to_dict


def circuit_from_dict(data: Any):
    """An ADC circuit from ``{"type": "sar" | "flash" | "ramp" | "measured", field: value, ...}``; a measured
    table may be given as ``table = "path"`` (see `MeasuredADC.load`)."""
    data = dict(data)
    kind = data.pop("type", None)
    if kind not in ADC_CIRCUITS:
        raise ValueError(f"adc.circuit.type must be one of {', '.join(map(repr, ADC_CIRCUITS))}; got {kind!r}")
    if kind == "measured" and "table" in data:
        return MeasuredADC.load(data.pop("table"), **data)
    valid = [f.name for f in dataclasses.fields(ADC_CIRCUITS[kind])]
    unknown = sorted(set(data) - set(valid))
    if unknown:
        raise KeyError(f"unknown key(s) {unknown} in adc.circuit ({kind}); valid: {', '.join(valid)}")
    return ADC_CIRCUITS[kind](**data)


def adc_circuit(name: str, **params: Any):
    """The ADC circuit model called ``name`` ("sar", "flash", "ramp") with its parameters."""
    if name not in ADC_CIRCUITS:
        raise ValueError(f"unknown ADC circuit {name!r}; valid: {', '.join(ADC_CIRCUITS)}")
    return ADC_CIRCUITS[name](**params)


def adc_levels(bits: int, unipolar: bool) -> int:
    """Largest code (from 0) of jaxcim's ADC: 2**bits - 1 unipolar, 2 * (2**(bits-1) - 1) signed."""
    return 2**bits - 1 if unipolar else 2 * (2 ** (bits - 1) - 1)


def convert_current(circuit, params, bits: int, current, full_scale, *, unipolar: bool, key=None, offset_lsb=0.0):
    """Currents (A) -> reconstructed currents (A) through ``circuit`` (the counterpart of
    `jaxcim.converters.adc`): signed codes -(2**(bits-1) - 1)..2**(bits-1) - 1 or unipolar 0..2**bits - 1;
    ``offset_lsb`` adds the config's per-column offset error (LSB)."""
    levels = adc_levels(bits, unipolar)
    n = levels if unipolar else levels // 2
    v = current / full_scale * n + (0 if unipolar else n) + offset_lsb
    code = circuit.convert(params, v, levels, key) - (0 if unipolar else n)
    return code * (full_scale / n)


__all__ = [
    "ADC_CIRCUITS", "FlashADC", "MeasuredADC", "RampADC", "SARADC", "adc_circuit", "adc_levels", "circuit_from_dict",
    "convert_current",
    "ideal_thresholds", "inl_dnl",
]
