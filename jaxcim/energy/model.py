"""Energy, latency and area of analog MVMs on crossbars: an itemized account per MVM and per inference.

One MVM of a layer (in_features x out_features) on weight-stationary arrays, all tiles working in parallel:

- input cycles: the input magnitude (``dac.bits`` minus the sign bit for signed inputs) is applied
  ``hw.input_bits_per_cycle`` bits at a time: ``cycles = ceil(magnitude_bits / bits_per_cycle)``;
- row groups: only ``k = hw.rows_per_read`` word lines are driven at once: ``groups = ceil(rows / k)``
  reads (and conversions) per cycle;
- array: E = sum over cycles and rows of V_i^2 * (sum of the conductances on row i) * t_read, with
  V_i = v_read * level (amplitude encoding) or a full-amplitude pulse of width level * t_read (PWM, so
  E ~ level * V^2 G t_read). Columns sit at virtual ground (the circuit of `jaxcim.circuit`), so this is
  the whole Joule dissipation of the cells. It is computed from the actual conductances of a programmed
  `CrossbarState` (or the target conductances of weights ``w``) and actual inputs ``x`` when given,
  otherwise from the expected conductances and the workload's input statistics;
- DAC/drivers: each driven row switches ``c_row_per_cell`` per cell it crosses at ``v_wordline``, plus a
  capacitive DAC of 2**b - 1 unit capacitors for b > 1 bits per cycle (amplitude encoding);
- bit lines: each used physical column line (rows x ``c_col_per_cell``) is charged to v_read once per read:
  NeuroSim's array read energy, ``capBL * readVoltage**2 * numReadCells`` (NeuroSim V1.4 SubArray.cpp,
  CalculatePower). NeuroSim's array term has no cell Joule heating, which jaxcim counts apart in ``array``
  (V^2 G t); NeuroSim charges the cell current instead inside its SAR ADC energy, for the conversion time
  (SarADC.cpp, GetColumnPower), and its CiMLoop build reports V^2 t / R per selected cell, which the ``array``
  term reproduces (tests/test_neurosim.py). See `jaxcim.energy.macros`, the NeuroSim VGG-8 row;
- which columns: every bit line of an array is held at virtual ground during a read (the circuit jaxcim
  simulates, IR drop included), so all cells on a driven row dissipate; only the columns that hold weights are
  sensed and converted, and only the row groups that hold inputs are read (`counts`);
- readout: a column front end (``e_sense``) per conversion;
- ADC: one conversion per used column (per column pair, differential) per slice (unless slices are combined
  in analog) per used row group per cycle; energy from the SAR, Walden or CCO model (`adc_energy`), or
  from the ADC circuit of ``cfg.adc.circuit`` (`jaxcim.circuit.adc`: energy, latency and area of the same
  circuit parameters that set its INL/DNL and noise);
- digital: one shift-and-add per conversion into an accumulator wide enough for the full result;
- latency: cycles * groups * (t_read + conversions per ADC * t_conversion), for the fullest array (at most
  ``adc_share`` conversions per ADC and read); digital work is pipelined behind it;
- area: cells (F^2 at the node), ADCs, row drivers, shift-and-add units.

Operations are counted the usual way: 2 per multiply-accumulate of the layer (2 * in * out per MVM).
Everything is a JAX function of the numeric leaves: ``jax.grad`` of the energy w.r.t. conductances, weights
or hardware parameters works, so a mapping optimizer can add an energy penalty.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxcim import mapping
from jaxcim.config import CrossbarConfig
from jaxcim.converters import dac, dac_levels
from jaxcim.core import CrossbarState
from jaxcim.energy.hardware import HardwareConfig, Workload, adc_energy

ENERGY_ITEMS = ("dac", "lines", "array", "sense", "adc", "digital")


@struct.dataclass
class EnergyReport:
    """An itemized energy/latency/area account (all leaves; vmapped reports carry a leading axis).

    Attributes:
      dac: row driver and DAC energy per MVM (word-line and access-gate charging included), J.
      lines: bit-line charging per MVM (C_BL V_read**2 per column and read, as NeuroSim's array energy), J.
      array: Joule energy in the cells per MVM (sum of V^2 G t), J.
      sense: column readout front end (integrator / current-to-voltage stage) per MVM, J.
      adc: ADC conversion energy per MVM, J.
      digital: shift-and-add and accumulation energy per MVM, J.
      total: sum of the items per MVM, J.
      energy: per inference (all layers, all their MVMs), J.
      latency_mvm: latency of one MVM, s.
      latency: per inference (layers and MVMs one after another on weight-stationary arrays), s.
      conversions: ADC conversions per MVM.
      reads: array read pulses per MVM (input cycles x row groups).
      ops: operations per inference (2 per multiply-accumulate).
      area_cells, area_adc, area_drivers, area_digital, area: silicon area, m^2.
      tops: throughput, 1e12 operations per second.
      tops_per_w: energy efficiency, 1e12 operations per joule.
      tops_per_mm2: throughput per mm^2 of the area above.

    For several layers, the per-MVM fields are averages over all MVMs of an inference.
    """

    dac: jax.Array
    lines: jax.Array
    array: jax.Array
    sense: jax.Array
    adc: jax.Array
    digital: jax.Array
    total: jax.Array
    energy: jax.Array
    latency_mvm: jax.Array
    latency: jax.Array
    conversions: jax.Array
    reads: jax.Array
    ops: jax.Array
    area_cells: jax.Array
    area_adc: jax.Array
    area_drivers: jax.Array
    area_digital: jax.Array
    area: jax.Array
    tops: jax.Array
    tops_per_w: jax.Array
    tops_per_mm2: jax.Array

    def as_dict(self) -> dict[str, float]:
        """Plain floats (for JSON and tables)."""
        return {k: float(np.asarray(v)) for k, v in self.__dict__.items()}

    def table(self) -> str:
        """A human-readable account."""
        d = self.as_dict()
        lines = ["energy per MVM"]
        for k in ENERGY_ITEMS:
            share = d[k] / d["total"] if d["total"] > 0 else 0.0
            lines.append(f"  {k:<10} {d[k] * 1e12:12.4f} pJ   {100 * share:5.1f} %")
        lines += [
            f"  {'total':<10} {d['total'] * 1e12:12.4f} pJ",
            f"per inference  {d['energy'] * 1e9:.4f} nJ, {d['latency'] * 1e6:.4f} us, {d['ops']:.4g} ops",
            f"latency/MVM    {d['latency_mvm'] * 1e9:.3f} ns  ({d['reads']:.0f} reads, "
            f"{d['conversions']:.0f} ADC conversions)",
            f"area           {d['area'] * 1e6:.5f} mm^2 (cells {d['area_cells'] * 1e6:.5f}, ADC "
            f"{d['area_adc'] * 1e6:.5f}, drivers {d['area_drivers'] * 1e6:.5f}, digital "
            f"{d['area_digital'] * 1e6:.5f})",
            f"TOPS           {d['tops']:.4g}",
            f"TOPS/W         {d['tops_per_w']:.4g}",
            f"TOPS/mm^2      {d['tops_per_mm2']:.4g}",
        ]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------- counts


def _magnitude_bits(cfg: CrossbarConfig) -> int:
    d = cfg.dac
    if d.bits == 0:
        return 0
    return d.bits - 1 if d.signed else d.bits


def _bits_per_cycle(cfg: CrossbarConfig, hw: HardwareConfig) -> int:
    mag = _magnitude_bits(cfg)
    if mag == 0:
        return 0
    b = hw.input_bits_per_cycle or (1 if cfg.dac.bit_serial else mag)
    if b > mag:
        raise ValueError(f"hardware.input_bits_per_cycle ({b}) must be <= the input magnitude bits ({mag}: "
                         f"dac.bits = {cfg.dac.bits}{', signed' if cfg.dac.signed else ''})")
    return b


def counts(cfg: CrossbarConfig, hw: HardwareConfig, workload: Workload) -> dict[str, int]:
    """Static event counts of one MVM of ``workload`` (Python ints).

    Returns:
      dict with ``row_tiles``, ``col_tiles``, ``slices``, ``cycles`` (input cycles times ``phases``, the read
      phases), ``bits_per_cycle``, ``rows_per_read``, ``groups`` (row groups per cycle of a full array),
      ``reads`` (cycles * row groups of the fullest array),
      ``phys_cols`` (physical columns a row line crosses in one array), ``conv_per_array`` (conversions per
      array per read), ``conversions`` (per MVM), ``adcs`` (number of ADCs), ``acc_bits`` (accumulator width),
      ``used_cols`` (columns holding weights, over all column tiles, with each tile's reference column for offset
      mapping), ``used_groups`` (row groups holding inputs, over all row tiles) and ``adc_turns`` (conversions
      each ADC makes in series per read).

    Only columns that hold weights are sensed and converted, and only row groups that hold inputs are read: a
    layer narrower or shorter than its arrays (the last tile of a layer, or a layer smaller than one array) pays
    for the bit lines it uses, as a controller that skips empty columns and row groups would. ``reads`` and
    ``adc_turns`` are those of the fullest array, which sets the latency.
    """
    m = cfg.mapping
    if hw.rows_per_read > m.rows:
        raise ValueError(f"hardware.rows_per_read ({hw.rows_per_read}) must be <= mapping.rows ({m.rows})")
    tr, tc = mapping.tile_counts(m, workload.in_features, workload.out_features)
    mag = _magnitude_bits(cfg)
    b = _bits_per_cycle(cfg, hw)
    cycles = (math.ceil(mag / b) if mag else 1) * hw.read_phases
    k = hw.rows_per_read or m.rows
    groups = math.ceil(m.rows / k)
    s_conv = 1 if hw.analog_slice_combine else m.slices
    diff = m.scheme == "differential"
    used_cols = workload.out_features + (tc if m.scheme == "offset" else 0)  # + one reference column per tile
    used_groups = (tr - 1) * groups + math.ceil((workload.in_features - (tr - 1) * m.rows) / k)
    conversions = cycles * used_groups * s_conv * used_cols
    adcs_per_array = math.ceil(m.cols / hw.adc_share)
    adcs = s_conv * tr * tc * adcs_per_array
    adc_turns = math.ceil(min(used_cols, m.cols) / adcs_per_array)
    groups_per_array = groups if tr > 1 else used_groups
    acc_bits = cfg.adc.bits + max(mag - b, 0) + m.weight_bits + math.ceil(math.log2(tr * groups))
    return dict(row_tiles=tr, col_tiles=tc, slices=m.slices, cycles=cycles, phases=hw.read_phases,
                bits_per_cycle=b, rows_per_read=k,
                groups=groups, reads=cycles * groups_per_array, phys_cols=2 * m.cols if diff else m.cols,
                conv_per_array=m.cols, conversions=conversions, adcs=adcs, acc_bits=max(acc_bits, 1),
                used_cols=used_cols, used_groups=used_groups, adc_turns=adc_turns)


# ----------------------------------------------------------------------------------------- drive levels


def _levels(cfg: CrossbarConfig, x: jax.Array, c: dict[str, int]) -> jax.Array:
    """Normalized drive level per cycle, (cycles, batch, in) in [0, 1]: the magnitude chunk applied per cycle."""
    u, _ = dac(cfg.dac, x)
    a = jnp.abs(u)
    mag, b = _magnitude_bits(cfg), c["bits_per_cycle"]
    if mag == 0:
        return a[None]
    if b == mag:
        return a[None]
    code = jnp.round(a * dac_levels(cfg.dac))
    code = jax.lax.stop_gradient(code)
    chunks = [jnp.floor(code / 2 ** (b * i)) % 2**b for i in range(c["cycles"] // c["phases"])]
    return jnp.stack(chunks) / (2**b - 1)


def _row_conductance(cfg: CrossbarConfig, g_pos: jax.Array, g_neg: jax.Array, in_features: int) -> jax.Array:
    """Sum of the conductances each input row drives, over all slices, column tiles and columns, S, (in,)."""
    tot = jnp.sum(g_pos, axis=(0, 2, 4)) + jnp.sum(g_neg, axis=(0, 2, 4))  # (row_tiles, rows)
    return tot.reshape(-1)[:in_features]


def _expected_row_conductance(cfg: CrossbarConfig, workload: Workload, c: dict[str, int]):
    """Expected summed conductance per input row from the weight statistics, S (scalar)."""
    dev, m = cfg.device, cfg.mapping
    span = dev.g_max - dev.g_min
    s, tc = c["slices"], c["col_tiles"]
    if m.scheme == "differential":
        # every physical pair holds 2 g_min; weight columns add span * |digit| (mean |w| used for each slice)
        per_slice = tc * m.cols * 2 * dev.g_min + workload.out_features * span * workload.weight_mean_abs
    else:
        # offset: cells at g_mid +- span/2 * digit, symmetric weights average to g_mid; reference at g_mid
        per_slice = tc * m.cols * (dev.g_min + 0.5 * span)
    return s * per_slice


# ----------------------------------------------------------------------------------------- one layer


def _layer(cfg, hw, workload, state, x, w) -> dict[str, Any]:
    c = counts(cfg, hw, workload)
    pwm = hw.input_encoding == "pwm"
    b = c["bits_per_cycle"]
    # --- conductances seen by each input row
    if state is not None:
        g_row = _row_conductance(cfg, state.g_pos, state.g_neg, workload.in_features)
    elif w is not None:
        t_pos, t_neg, _, _ = mapping.conductance_targets(cfg, w)
        g_row = _row_conductance(cfg, t_pos, t_neg, workload.in_features)
    else:
        g_row = None
    # --- input drive per cycle
    if x is not None:
        lv = _levels(cfg, jnp.atleast_2d(x), c)  # (cycles, batch, in)
        drive = lv if pwm else lv**2
        row_drive = c["phases"] * jnp.mean(jnp.sum(drive, axis=0), axis=0)  # (in,) sum over cycles, mean over batch
        active = c["phases"] * jnp.mean(jnp.sum(lv > 0, axis=(0, 2)).astype(lv.dtype))
    else:
        rho, mabs = workload.input_density, workload.input_mean_abs
        if pwm or b == 1:
            per_cycle = mabs
        else:
            per_cycle = jnp.minimum(4.0 / 3.0 * mabs**2, mabs)  # E[u^2] for u uniform on [0, 2 mabs]
        row_drive = rho * per_cycle * c["cycles"]
        active = workload.in_features * rho * (mabs if b == 1 else 1.0) * c["cycles"]
    if g_row is None:
        g_sum = _expected_row_conductance(cfg, workload, c) * jnp.sum(row_drive * jnp.ones(workload.in_features))
    else:
        g_sum = jnp.sum(row_drive * g_row)
    v = cfg.dac.v_read
    e_array = v**2 * hw.t_read * g_sum
    # --- drivers and DACs
    arrays_per_row = c["slices"] * c["col_tiles"]
    dac_units = 0 if (pwm or b <= 1) else 2**b - 1
    e_row = (hw.c_row_per_cell * c["phys_cols"] + hw.dac_c_unit * dac_units) * arrays_per_row * hw.v_wordline**2
    e_dac = active * e_row
    # --- bit lines: each used physical column's line (rows cells long) charged to the read voltage once per read
    n_arrays = c["slices"] * c["row_tiles"] * c["col_tiles"]
    used_phys = 2 * c["used_cols"] if cfg.mapping.scheme == "differential" else c["used_cols"]
    reads_used = c["cycles"] * c["used_groups"] * c["slices"]  # row-group reads summed over row tiles and slices
    e_lines = reads_used * used_phys * cfg.mapping.rows * hw.c_col_per_cell * v**2
    # --- readout, ADC and digital
    circuit = cfg.adc.circuit
    e_conv = adc_energy(hw, cfg.adc.bits) if circuit is None or not cfg.adc.bits else circuit.energy(cfg.adc.bits)
    e_sense = c["conversions"] * hw.e_sense
    e_adc = c["conversions"] * e_conv
    e_dig = c["conversions"] * c["acc_bits"] * hw.e_add_bit
    # --- latency
    t_conv = cfg.adc.bits * hw.t_adc_bit if circuit is None else circuit.latency(cfg.adc.bits)
    latency = c["reads"] * (hw.t_read + c["adc_turns"] * t_conv)
    # --- area
    f2 = hw.node**2
    area_cells = n_arrays * cfg.mapping.rows * c["phys_cols"] * hw.cell_area_f2 * f2
    if circuit is not None and cfg.adc.bits:
        area_adc = c["adcs"] * circuit.area(cfg.adc.bits)
    else:
        area_adc = c["adcs"] * hw.adc_area_8b * 2.0 ** (cfg.adc.bits - 8) if cfg.adc.bits else 0.0 * hw.adc_area_8b
    area_drv = n_arrays * cfg.mapping.rows * hw.driver_area
    area_dig = c["adcs"] * hw.shift_add_area
    return dict(dac=e_dac, lines=e_lines, array=e_array, sense=e_sense, adc=e_adc, digital=e_dig, latency_mvm=latency,
                conversions=c["conversions"], reads=c["reads"], ops=2.0 * workload.in_features *
                workload.out_features, area_cells=area_cells, area_adc=area_adc, area_drivers=area_drv,
                area_digital=area_dig, mvms=workload.mvms)


# ----------------------------------------------------------------------------------------- checks


def _check_args(cfg, workloads, hw, state, x, w):
    if not isinstance(cfg, CrossbarConfig):
        raise TypeError(f"cfg must be a jaxcim CrossbarConfig, got {type(cfg).__name__}")
    if not isinstance(hw, HardwareConfig):
        raise TypeError(f"hw must be a jaxcim.energy.HardwareConfig, got {type(hw).__name__}")
    for wl in workloads:
        if not isinstance(wl, Workload):
            raise TypeError(f"workload must be a jaxcim.energy.Workload (or a sequence of them), "
                            f"got {type(wl).__name__}")
    if not workloads:
        raise ValueError("workload sequence is empty")
    if len(workloads) > 1 and any(a is not None for a in (state, x, w)):
        raise ValueError("state, x and w describe one layer: pass a single Workload with them")
    wl = workloads[0]
    if state is not None:
        if not isinstance(state, CrossbarState):
            raise TypeError(f"state must be a CrossbarState from jc.program, got {type(state).__name__}")
        if (state.in_features, state.out_features) != (wl.in_features, wl.out_features):
            raise ValueError(f"state holds a {state.in_features} x {state.out_features} matrix but the workload "
                             f"is {wl.in_features} x {wl.out_features} (workload.in_features/out_features)")
        if state.g_pos.ndim != 5:
            raise ValueError(f"state.g_pos must have 5 dimensions (one instance), got shape {state.g_pos.shape}; "
                             "vmap estimate over instances")
    if w is not None:
        if not hasattr(w, "shape") or w.shape != (wl.in_features, wl.out_features):
            raise ValueError(f"w must have shape (workload.in_features, workload.out_features) = "
                             f"({wl.in_features}, {wl.out_features}), got {getattr(w, 'shape', type(w).__name__)}")
    if x is not None:
        if not hasattr(x, "shape"):
            raise TypeError(f"x must be an array, got {type(x).__name__}")
        if x.ndim not in (1, 2) or x.shape[-1] != wl.in_features:
            raise ValueError(f"x must have shape (batch, {wl.in_features}) or ({wl.in_features},) "
                             f"(workload.in_features), got {x.shape}")
        if not isinstance(x, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(x))):
            raise ValueError("x contains NaN or inf values")


def estimate(
    cfg: CrossbarConfig, workload: Workload | Sequence[Workload], hw: HardwareConfig | None = None, *,
    state: CrossbarState | None = None, x: jax.Array | None = None, w: jax.Array | None = None,
) -> EnergyReport:
    """Itemized energy, latency and area of running ``workload`` on crossbars configured by ``cfg``.

    Args:
      cfg: the crossbar config (mapping, DAC/ADC bits, read voltage, conductance range are used).
      workload: one layer, or a sequence of layers making one inference.
      hw: hardware parameters; default `HardwareConfig()` (22 nm 1T1R ReRAM, NeuroSim-derived).
      state: a programmed instance (one layer): the array energy uses its actual conductances, S,
        (slices, row_tiles, col_tiles, rows, cols).
      x: actual inputs, (batch, in_features) or (in_features,): the energy is the mean over the batch.
      w: weights (in_features, out_features) used when no ``state`` is given: the array energy uses their
        target conductances (differentiable in ``w``).

    Returns:
      An `EnergyReport` (J, s, m^2; TOPS, TOPS/W, TOPS/mm^2).

    References:
      Energy defaults: see `HardwareConfig`. The Joule term sum V^2 G t follows from Ohm's law with columns at
      virtual ground (the circuit of `jaxcim.circuit`).
    """
    hw = HardwareConfig() if hw is None else hw
    workloads = list(workload) if isinstance(workload, list | tuple) else [workload]
    _check_args(cfg, workloads, hw, state, x, w)
    layers = [_layer(cfg, hw, wl, state, x, w) for wl in workloads]
    n_mvm = sum(lay["mvms"] for lay in layers)

    def per_inf(name):
        return sum(lay["mvms"] * lay[name] for lay in layers)

    items = {k: per_inf(k) for k in ENERGY_ITEMS}
    energy = sum(items.values())
    latency = per_inf("latency_mvm")
    ops = per_inf("ops")
    areas = {k: sum(lay[k] for lay in layers) for k in ("area_cells", "area_adc", "area_drivers", "area_digital")}
    area = sum(areas.values())
    tops = ops / latency / 1e12
    f = lambda a: jnp.asarray(a, dtype=jnp.result_type(float))  # noqa: E731
    return EnergyReport(
        **{k: f(v / n_mvm) for k, v in items.items()}, total=f(energy / n_mvm), energy=f(energy),
        latency_mvm=f(latency / n_mvm), latency=f(latency), conversions=f(per_inf("conversions") / n_mvm),
        reads=f(per_inf("reads") / n_mvm), ops=f(ops), **{k: f(v) for k, v in areas.items()}, area=f(area),
        tops=f(tops), tops_per_w=f(ops / energy / 1e12), tops_per_mm2=f(tops / (area * 1e6)),
    )
