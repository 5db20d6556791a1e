"""jaxcim's energy terms against NeuroSim's own component models.

NeuroSim (V1.3, as compiled from hwcomponents-neurosim: tests/neurosim.py) prints the energy of each component of a
sub-array. jaxcim's defaults (`HardwareConfig`) cite NeuroSim for the SAR ADC and the line capacitances, and its
``array`` term is the cells' Joule heat V^2 G t, which NeuroSim's CiMLoop build reports apart as the selected
cell's read energy (``Memcell``: readPulseWidth * readVoltage^2 / column resistance).
"""

import os

import jax.numpy as jnp
import neurosim
import pytest

import jaxcim as jc
from jaxcim.energy import HardwareConfig, Workload, estimate
from jaxcim.energy.hardware import adc_energy

R_ON, R_OFF, R_ACCESS = 6e3, 102e3, 15e3  # NeuroSim V1.4's default 1T1R cell (Param.cpp), series access transistor


@pytest.fixture(scope="module")
def available():
    why = neurosim.unavailable()
    if why is not None:
        if "not installed" in why and os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI installs hwcomponents-neurosim (.ci/run): {why}")
        pytest.skip(why)


def _run(**kw):
    args = dict(rows=128, cols=128, cols_muxed=8, adc_bits=4, r_on=R_ON, r_off=R_OFF, v_read=0.5, t_read=10e-9,
                r_access=R_ACCESS)
    return neurosim.run(**{**args, **kw})


@pytest.mark.parametrize("bits", [3, 4, 5, 6, 7, 8])
def test_sar_adc_energy_per_conversion_is_neurosims(available, bits):
    # NeuroSim's 22 nm SAR ADC per column conversion (its fixed part: no cell current), vs jaxcim's two-term SAR
    # model with the defaults fitted to NeuroSim's 4- and 5-bit energies
    ns = _run(adc_bits=bits).components["col|adc(sar) celllo"].e_col
    assert float(adc_energy(HardwareConfig(), bits)) == pytest.approx(ns, rel=0.05)


@pytest.mark.parametrize("rows,cols", [(64, 64), (128, 128), (256, 128)])
def test_line_capacitances_per_cell(available, rows, cols):
    r = _run(rows=rows, cols=cols)
    hw = HardwareConfig()
    # bit line: jaxcim's per-cell value is NeuroSim's 128-row bit line / 128; NeuroSim's scales with the rows
    assert hw.c_col_per_cell * rows == pytest.approx(r.bitline_capacitance, rel=0.02)
    # word line: jaxcim's 0.1 fF per cell is its own estimate (wire over a 12 F pitch plus a gate), NeuroSim 0.084 fF
    assert hw.c_row_per_cell * cols == pytest.approx(r.wordline_capacitance, rel=0.25)


@pytest.mark.parametrize("v_read,t_read", [(0.5, 10e-9), (0.2, 10e-9), (0.5, 5e-9)])
def test_cell_joule_heat_is_neurosims_cell_read_energy(available, v_read, t_read):
    r = _run(v_read=v_read, t_read=t_read)
    e_hi = r.components["memcell cellhi sel."].e_cell
    e_lo = r.components["memcell celllo sel."].e_cell
    # jaxcim: one weight of +1 on a differential pair, G+ at the ON and G- at the OFF cell, the cell conductance
    # including its access transistor; one input at full scale for one read pulse
    cfg = jc.presets.get("ideal").replace(**{
        "device.g_min": 1 / (R_OFF + R_ACCESS), "device.g_max": 1 / (R_ON + R_ACCESS), "dac.v_read": v_read,
        "mapping.rows": 1, "mapping.cols": 1})
    rep = estimate(cfg, Workload(1, 1), HardwareConfig(t_read=t_read), w=jnp.ones((1, 1)), x=jnp.ones((1, 1)))
    # NeuroSim's column resistance adds the bit-line wire (~1 kOhm over 128 rows at 22 nm): a few % less energy
    assert float(rep.array) == pytest.approx(e_hi + e_lo, rel=0.07)
    assert float(rep.array) > e_hi + e_lo
