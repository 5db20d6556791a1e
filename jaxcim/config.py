"""Configuration pytrees for a simulated crossbar.

A configuration is an immutable `flax.struct` dataclass. Numbers that a study may sweep, vmap or learn
(conductance range, noise scales, voltages, wire resistance, ADC range, time constants) are pytree leaves;
shapes, bit widths, level counts and method names are static (``pytree_node=False``), so changing them
recompiles and changing a leaf does not.

Every config checks its concrete values when it is built (``__post_init__``): a bad value raises a
``ValueError``/``TypeError`` that names the field and the allowed range, before anything is traced. A value of
the wrong type is a ``TypeError``: a string, list, table or bool where a number goes, anything but ``True`` /
``False`` for a switch (``"false"`` is not false). Values that are tracers (a config rebuilt inside
``jit``/``vmap``) are not range-checked.

Units are SI: siemens, volts, amperes, ohms, seconds.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from flax import struct

from jaxcim.compensation import as_drift_compensation, to_plain
from jaxcim.fields import (  # noqa: F401 - re-exported: config's field checks, as before they moved
    check_bool,
    check_choice,
    check_int,
    check_number_type,
    check_range,
    concrete,
    field_name,
    is_static_zero,
)

if TYPE_CHECKING:
    from jaxcim.devices.base import DeviceModel

PROGRAMMING_METHODS = ("open_loop", "write_verify")
MAPPING_SCHEMES = ("differential", "offset")
SCALE_MODES = ("tensor", "column")
INPUT_RANGE_MODES = ("max", "fixed")
ADC_RANGE_MODES = ("calibrated", "fixed", "full_scale")
CIRCUIT_KINDS = ("ideal", "ir_drop")


def DeviceConfig(model: str = "ideal", **fields: Any):  # noqa: N802 - reads like the class it builds
    """The device model called ``model`` with ``fields``: a `jaxcim.devices.DeviceModel` of the registered class.

    ``DeviceConfig(model="pcm-ibm", g_max=25e-6)`` is ``jaxcim.devices.PCMLike(g_max=25e-6)``. Models:
    ``"ideal"`` (no noise), ``"reram-wan2022"`` (NeuRRAM ReRAM, Wan et al. Nature 2022), ``"pcm-ibm"`` (IBM
    PCM-like model, Nandakumar 2019 / Joshi 2020), ``"custom"`` (polynomials, e.g. from
    `jaxcim.devices.fit_custom`), and every model registered with `jaxcim.devices.register`. The fields common to
    all models (g_min, g_max, levels, noise multipliers, faults, range spread) are those of
    `jaxcim.devices.DeviceModel`; each model adds its own.
    """
    from jaxcim.devices import base as device_models  # at call time: the models register on import of jaxcim

    return device_models.build(model, fields)


@struct.dataclass
class ProgrammingConfig:
    """How target conductances are written.

    Attributes:
      method: ``"open_loop"`` (one noisy write) or ``"write_verify"`` (read back, re-program cells whose
        error exceeds ``tolerance``, with fresh noise each time). Static.
      max_iterations: write-verify: most re-programming rounds after the first write. Static.
      tolerance: write-verify: accepted |G - G_target|, as a fraction of (g_max - g_min).
    """

    method: str = struct.field(pytree_node=False, default="open_loop")
    max_iterations: int = struct.field(pytree_node=False, default=5)
    tolerance: Any = 0.02

    def __post_init__(self):
        check_choice("programming", "method", self.method, PROGRAMMING_METHODS)
        check_int("programming", "max_iterations", self.max_iterations, 0, 1000)
        check_range("programming", "tolerance", self.tolerance, 0.0, lo_open=True)



@struct.dataclass
class MappingConfig:
    """How a weight matrix becomes conductances on arrays.

    Attributes:
      scheme: ``"differential"`` (w ~ G+ - G-, two cells per weight, analog current subtraction) or
        ``"offset"`` (w ~ G - G_ref, one cell per weight and one reference column per array whose
        ADC reading is subtracted digitally). Static.
      scale: ``"tensor"`` (one weight-to-conductance scale for the matrix) or ``"column"`` (one per
        output, so every column uses the full conductance range). Static.
      weight_bits: bits of weight magnitude when bit slicing; 0 = no weight quantization. Static.
      slices: number of arrays a weight is sliced over (each holds ``weight_bits / slices`` bits,
        most significant first; partial sums are shifted and added digitally). Static.
      rows: rows (word lines) per physical array. Static.
      cols: columns (bit lines) per physical array. Static.
    """

    scheme: str = struct.field(pytree_node=False, default="differential")
    scale: str = struct.field(pytree_node=False, default="tensor")
    weight_bits: int = struct.field(pytree_node=False, default=0)
    slices: int = struct.field(pytree_node=False, default=1)
    rows: int = struct.field(pytree_node=False, default=256)
    cols: int = struct.field(pytree_node=False, default=256)

    def __post_init__(self):
        o = "mapping"
        check_choice(o, "scheme", self.scheme, MAPPING_SCHEMES)
        check_choice(o, "scale", self.scale, SCALE_MODES)
        check_int(o, "weight_bits", self.weight_bits, 0, 32)
        check_int(o, "slices", self.slices, 1, 32)
        check_int(o, "rows", self.rows, 1)
        check_int(o, "cols", self.cols, 2 if self.scheme == "offset" else 1)
        if self.slices > 1 and (self.weight_bits == 0 or self.weight_bits % self.slices):
            raise ValueError(f"mapping.weight_bits ({self.weight_bits}) must be a positive multiple of "
                             f"mapping.slices ({self.slices}) when slicing weights")

    @property
    def bits_per_slice(self) -> int:
        return self.weight_bits // self.slices if self.weight_bits else 0



@struct.dataclass
class DACConfig:
    """Input digital-to-analog conversion: inputs x -> row voltages.

    Attributes:
      bits: input resolution including the sign bit when ``signed``; 0 = ideal (no quantization). Static.
      v_read: row voltage for a full-scale input, V.
      range_mode: ``"max"`` (each input vector scaled by its own max |x|, nothing clipped) or ``"fixed"``
        (inputs scaled by ``x_max`` and clipped to [-x_max, x_max]: the user asked for it). Static.
      x_max: full-scale input for ``range_mode="fixed"`` (input units).
      signed: negative inputs are applied as negative voltages (True) or rejected (False: inputs must be
        >= 0, one more bit of magnitude). Static.
      bit_serial: apply the input one bit per cycle (0/v_read pulses), convert each cycle with the ADC and
        shift-and-add digitally, as in NeuRRAM and ISAAC. Static.
    """

    bits: int = struct.field(pytree_node=False, default=8)
    v_read: Any = 0.2
    range_mode: str = struct.field(pytree_node=False, default="max")
    x_max: Any = 1.0
    signed: bool = struct.field(pytree_node=False, default=True)
    bit_serial: bool = struct.field(pytree_node=False, default=False)

    def __post_init__(self):
        check_int("dac", "bits", self.bits, 0, 24)
        check_bool("dac", "signed", self.signed)
        check_bool("dac", "bit_serial", self.bit_serial)
        if self.bits == 1 and self.signed:
            raise ValueError("dac.bits must be >= 2 for signed inputs (one bit is the sign); "
                             "use dac.signed = false for binary inputs")
        if self.bit_serial and self.bits == 0:
            raise ValueError("dac.bit_serial needs dac.bits >= 1")
        check_range("dac", "v_read", self.v_read, 0.0, lo_open=True)
        check_choice("dac", "range_mode", self.range_mode, INPUT_RANGE_MODES)
        check_range("dac", "x_max", self.x_max, 0.0, lo_open=True)



@struct.dataclass
class ADCConfig:
    """Column-current analog-to-digital conversion.

    Attributes:
      bits: resolution including sign; 0 = ideal (no quantization, no clipping). Static.
      range_mode: ``"calibrated"`` (full scale = the largest |current| seen on calibration inputs times
        ``margin``, per array), ``"fixed"`` (full scale ``i_max``) or ``"full_scale"`` (the largest current
        the array can carry: rows * v_read * (g_max - g_min)). Static.
      i_max: full-scale current for ``range_mode="fixed"``, A.
      margin: calibrated range multiplier (>= 1 leaves headroom for drift and noise).
      offset_sigma: per-column offset error, standard deviation in LSB, sampled once per instance.
      gain_sigma: per-column relative gain error, standard deviation, sampled once per instance.
      circuit: an ADC circuit model (`jaxcim.circuit.adc`: SAR, flash, ramp, measured table) whose per-column INL,
        DNL and comparator noise replace the ideal quantizer; or a table ``{"type": "sar", ...}``. None (default):
        the ideal quantizer.
    """

    bits: int = struct.field(pytree_node=False, default=8)
    range_mode: str = struct.field(pytree_node=False, default="calibrated")
    i_max: Any = 1e-4
    margin: Any = 1.0
    offset_sigma: Any = 0.0
    gain_sigma: Any = 0.0
    circuit: Any = None

    def __post_init__(self):
        if isinstance(self.circuit, Mapping):
            from jaxcim.circuit.adc import circuit_from_dict  # local: jaxcim.circuit imports this module

            object.__setattr__(self, "circuit", circuit_from_dict(self.circuit))
        check_int("adc", "bits", self.bits, 0, 24)
        if self.bits == 1:
            raise ValueError("adc.bits must be 0 (ideal) or >= 2 (signed codes)")
        check_choice("adc", "range_mode", self.range_mode, ADC_RANGE_MODES)
        check_range("adc", "i_max", self.i_max, 0.0, lo_open=True)
        check_range("adc", "margin", self.margin, 0.0, lo_open=True)
        check_range("adc", "offset_sigma", self.offset_sigma, 0.0)
        check_range("adc", "gain_sigma", self.gain_sigma, 0.0)



@struct.dataclass
class CircuitConfig:
    """The array circuit that turns row voltages into column currents.

    Attributes:
      kind: ``"ideal"`` (I = V @ G) or ``"ir_drop"`` (exact nodal solve with wire resistance). Static.
      r_row: word-line wire resistance per cell pitch, ohm.
      r_col: bit-line wire resistance per cell pitch, ohm.
      r_driver: series resistance of each row driver, ohm.
      r_sense: series resistance of each column's sense input, ohm.
      nonlinear: cells follow I = g v0 sinh(V / v0) instead of I = g V. Static.
      v0: sinh i-v voltage scale, V.

    References:
      Wire resistance per segment (NeuroSim interconnect model): 22 nm ~1.9 ohm (row) / 5.6 ohm (column),
      14 nm 2.5 / 7.6, 7 nm 5.6 / 16.7.
    """

    kind: str = struct.field(pytree_node=False, default="ideal")
    r_row: Any = 1.9
    r_col: Any = 5.6
    r_driver: Any = 0.0
    r_sense: Any = 0.0
    nonlinear: bool = struct.field(pytree_node=False, default=False)
    v0: Any = 0.25

    def __post_init__(self):
        check_choice("circuit", "kind", self.kind, CIRCUIT_KINDS)
        check_bool("circuit", "nonlinear", self.nonlinear)
        for name in ("r_row", "r_col", "r_driver", "r_sense"):
            check_range("circuit", name, getattr(self, name), 0.0)
        check_range("circuit", "v0", self.v0, 0.0, lo_open=True)



@struct.dataclass
class CrossbarConfig:
    """Everything that defines a simulated crossbar, in readable nested sections.

    Attributes:
      device, programming, mapping, dac, adc, circuit: the sections above.
      drift_compensation: a `jaxcim.compensation.DriftCompensation` applied at read time, or None. ``True``
        is `jaxcim.compensation.GlobalDriftCompensation` (outputs rescaled by the ratio of an all-ones probe
        read right after programming to the same probe read at time t; Joshi et al., Nat. Commun. 2020),
        ``False`` is None. Static.
      name: a label for tables and files. Static.
    """

    device: DeviceModel = dataclasses.field(default_factory=DeviceConfig)
    programming: ProgrammingConfig = dataclasses.field(default_factory=ProgrammingConfig)
    mapping: MappingConfig = dataclasses.field(default_factory=MappingConfig)
    dac: DACConfig = dataclasses.field(default_factory=DACConfig)
    adc: ADCConfig = dataclasses.field(default_factory=ADCConfig)
    circuit: CircuitConfig = dataclasses.field(default_factory=CircuitConfig)
    drift_compensation: Any = struct.field(pytree_node=False, default=None)
    name: str = struct.field(pytree_node=False, default="custom")

    def __post_init__(self):
        object.__setattr__(self, "drift_compensation", as_drift_compensation(self.drift_compensation))
        if not isinstance(self.name, str):
            raise TypeError(f"name must be a string, got {type(self.name).__name__} {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (numbers as Python floats/ints), TOML/JSON serializable."""
        return to_dict(self)


def _crossbar_replace(self: CrossbarConfig, **changes: Any) -> CrossbarConfig:
    """A copy with fields changed; dotted names reach into sections: ``cfg.replace(**{"adc.bits": 6})``."""
    return replace_path(self, changes)


CrossbarConfig.replace = _crossbar_replace  # flax.struct installs a plain replace; extend it

SECTIONS: dict[str, type | None] = {
    "device": None,  # a jaxcim.devices.DeviceModel: its fields depend on the model
    "programming": ProgrammingConfig,
    "mapping": MappingConfig,
    "dac": DACConfig,
    "adc": ADCConfig,
    "circuit": CircuitConfig,
}
TOP_FIELDS = ("drift_compensation", "name")


def replace_path(cfg: CrossbarConfig, changes: Mapping[str, Any]) -> CrossbarConfig:
    """Apply ``{"section.field": value, "field": value}`` changes to a config, with clear errors.

    ``"device.model"`` switches the device model; the fields the new model shares with the old one carry over.
    """
    top: dict[str, Any] = {}
    per_section: dict[str, dict[str, Any]] = {}
    for path, value in changes.items():
        section, _, field = path.partition(".")
        if field:
            if section not in SECTIONS:
                raise KeyError(f"unknown config section {section!r}; valid: {', '.join(SECTIONS)}")
            if section != "device":
                valid = [f.name for f in dataclasses.fields(SECTIONS[section])]
                if field not in valid:
                    raise KeyError(f"unknown key {path!r}; valid keys in [{section}]: {', '.join(valid)}")
            per_section.setdefault(section, {})[field] = value
        else:
            if section not in SECTIONS and section not in TOP_FIELDS:
                raise KeyError(f"unknown config key {section!r}; valid: "
                               f"{', '.join([*SECTIONS, *TOP_FIELDS])}")
            top[section] = value
    for section, fields in per_section.items():
        base = top.get(section, getattr(cfg, section))
        if section == "device":
            from jaxcim.devices import base as device_models

            model = fields.pop("model", base.name)
            top[section] = device_models.build(model, fields, base=base)
        else:
            top[section] = dataclasses.replace(base, **fields)
    return dataclasses.replace(cfg, **top)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bool | int | str):
        return value
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()


def to_dict(cfg: CrossbarConfig) -> dict[str, Any]:
    out: dict[str, Any] = {k: getattr(cfg, k) for k in TOP_FIELDS}
    out["drift_compensation"] = to_plain(cfg.drift_compensation)
    for section in SECTIONS:
        sec = getattr(cfg, section)
        out[section] = {f.name: _plain(getattr(sec, f.name)) for f in dataclasses.fields(sec)}
    out["device"] = {"model": cfg.device.name, **out["device"]}
    circuit = cfg.adc.circuit
    if circuit is None:
        del out["adc"]["circuit"]  # the ideal quantizer: dicts (and study fingerprints) as before circuits existed
    else:
        out["adc"]["circuit"] = circuit.to_dict()
    return out


def static_zeros(cfg: CrossbarConfig) -> frozenset[str]:
    """Dotted names of the config's numeric leaves that are concrete zeros (features switched off).

    jit-compiled kernels take this set as a static argument and restore those leaves as Python zeros with
    `with_static_zeros`, so a model can skip the work (random draws) of a feature that is off although the
    config's leaves are traced inside the kernel. A value the caller traces (a vmapped sweep, a learned
    leaf) is never in the set; sweeping a leaf through exactly 0 compiles one more program for the zero.
    """
    zeros = []
    for section in SECTIONS:
        sec = getattr(cfg, section)
        for f in dataclasses.fields(sec):
            if f.metadata.get("pytree_node", True) and is_static_zero(getattr(sec, f.name)):
                zeros.append(f"{section}.{f.name}")
    return frozenset(zeros)


def with_static_zeros(cfg: CrossbarConfig, zeros: frozenset[str]) -> CrossbarConfig:
    """``cfg`` with the leaves named in ``zeros`` (from `static_zeros`) set to the Python number 0.0."""
    return replace_path(cfg, dict.fromkeys(zeros, 0.0)) if zeros else cfg


PRESETS: dict[str, Callable[[], CrossbarConfig]] = {}
"""Named configurations by name: a factory each (`register_preset`; `jaxcim.presets` registers the shipped ones)."""


def register_preset(name: str, factory: Callable[[], CrossbarConfig]) -> Callable[[], CrossbarConfig]:
    """Make ``factory()`` available as ``preset = "name"`` in TOML and as ``jaxcim.presets.get(name)``."""
    PRESETS[name] = factory
    return factory


def preset(name: str) -> CrossbarConfig:
    """The registered preset config called ``name``; unknown names list the valid ones."""
    if not isinstance(name, str):
        raise TypeError(f"preset name must be a string, got {type(name).__name__}")
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()


def from_dict(data: Mapping[str, Any], base: CrossbarConfig | None = None) -> CrossbarConfig:
    """Build a config from nested dicts (as read from TOML); unknown keys are an error.

    A top-level ``preset = "name"`` starts from that preset (`preset`); the other keys override it.
    """
    data = dict(data)
    name = data.pop("preset", None)
    cfg = preset(name) if name is not None else (base or CrossbarConfig())
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise TypeError(f"[{key}] must be a table of keys, got {type(value).__name__}")
            for field, v in value.items():
                changes[f"{key}.{field}"] = tuple(v) if isinstance(v, list) else v
        elif key in TOP_FIELDS:
            changes[key] = value
        else:
            raise KeyError(f"unknown config key {key!r}; valid: preset, {', '.join([*SECTIONS, *TOP_FIELDS])}")
    return replace_path(cfg, changes)


def load_config(path: str | Path, *, section: str | None = None) -> CrossbarConfig:
    """Read a `CrossbarConfig` from a TOML file; unknown keys raise ``KeyError`` listing the valid ones.

    Args:
      path: the TOML file: a config (its tables are the sections, ``[device]``, ``[adc]``, ...; a top-level
        ``preset = "reram-neurram"`` starts from a preset), or a study file, whose crossbar is its ``[crossbar]``
        table (a file with a ``[crossbar]`` table is read as a study file).
      section: read the config from this table of the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    if section is None and isinstance(data.get("crossbar"), Mapping):
        section = "crossbar"
    if section is not None:
        data = data.get(section, {})
    return from_dict(data)
