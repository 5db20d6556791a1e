"""A small ngspice driver for crossbar reference currents (used by tests/test_ir_drop.py and benchmarks).

The netlist is jaxcim.circuit.ir_drop's circuit convention, written out element by element: row sources, driver and
wire resistors, cells (a resistor 1/g, or a B-source I = g v0 sinh(V / v0)), column wire and sense resistors,
and a 0 V source in series with each column's ground connection whose current is the column output. All
input vectors are solved in one ngspice run (``alter`` + ``op`` per vector).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

NGSPICE = shutil.which("ngspice")


def require_ngspice() -> None:
    """Skip when ngspice is missing, except under CI (env CI set), where it must be installed."""
    if NGSPICE is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("ngspice is required in CI (apt-get install ngspice) but was not found on PATH")
        pytest.skip("ngspice not installed (apt-get install ngspice)")


def _num(x: float) -> str:
    return repr(float(x))


def netlist(g, v, r_row, r_col, v0=None, r_driver=0.0, r_sense=0.0) -> str:
    """SPICE netlist of the crossbar; the first input vector sets the sources, the rest are ``alter``ed.

    Args:
      g: (rows, cols) conductances, S. v: (K, rows) row voltages, V. r_row, r_col: > 0 (a 0-ohm wire is
        not a SPICE resistor). r_driver, r_sense: >= 0 (0 merges the nodes). v0: None (linear) or > 0.
    """
    g, v = np.asarray(g, float), np.atleast_2d(np.asarray(v, float))
    rows, cols = g.shape
    if r_row <= 0 or r_col <= 0:
        raise ValueError("ngspice reference needs r_row > 0 and r_col > 0")
    out = ["* crossbar IR drop"]
    for i in range(rows):
        src = f"s{i}"
        out.append(f"V{i} {src} 0 DC {_num(v[0, i])}")
        if r_driver > 0:
            out.append(f"RD{i} {src} d{i} {_num(r_driver)}")
            src = f"d{i}"
        out.append(f"RR{i}_0 {src} r{i}_0 {_num(r_row)}")
        for j in range(1, cols):
            out.append(f"RR{i}_{j} r{i}_{j - 1} r{i}_{j} {_num(r_row)}")
    for i in range(rows):
        for j in range(cols):
            a, b = f"r{i}_{j}", f"c{i}_{j}"
            if v0 is None:
                if g[i, j] > 0:
                    out.append(f"RG{i}_{j} {a} {b} {_num(1.0 / g[i, j])}")
            else:
                out.append(f"BG{i}_{j} {a} {b} I={_num(g[i, j] * v0)}*sinh(V({a},{b})/{_num(v0)})")
    for j in range(cols):
        for i in range(rows - 1):
            out.append(f"RC{i}_{j} c{i}_{j} c{i + 1}_{j} {_num(r_col)}")
        node = f"b{j}"
        out.append(f"RC{rows - 1}_{j} c{rows - 1}_{j} {node} {_num(r_col)}")
        if r_sense > 0:
            out.append(f"RS{j} {node} k{j} {_num(r_sense)}")
            node = f"k{j}"
        out.append(f"VS{j} {node} 0 DC 0")
    out.append(".options reltol=1e-12 abstol=1e-20 vntol=1e-15 itl1=500")
    out += [".control", "set numdgt=16"]
    probes = " ".join(f"i(vs{j})" for j in range(cols))
    for k in range(v.shape[0]):
        if k:
            out += [f"alter V{i} dc = {_num(v[k, i])}" for i in range(rows)]
        out += ["op", f"print {probes}"]
    out += [".endc", ".end"]
    return "\n".join(out) + "\n"


def spice_currents(g, v, r_row, r_col, v0=None, r_driver=0.0, r_sense=0.0, timeout: float = 120) -> np.ndarray:
    """Column currents (K, cols), A, from ``ngspice -b`` on `netlist`."""
    g = np.asarray(g, float)
    cols = g.shape[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crossbar.cir")
        with open(path, "w") as f:
            f.write(netlist(g, v, r_row, r_col, v0, r_driver, r_sense))
        run = subprocess.run([NGSPICE, "-b", path], capture_output=True, text=True, timeout=timeout)
    found = re.findall(r"^i\(vs(\d+)\)\s*=\s*(\S+)", run.stdout, flags=re.MULTILINE)
    k = np.atleast_2d(v).shape[0]
    if len(found) != k * cols:
        raise RuntimeError(f"ngspice returned {len(found)} of {k * cols} currents:\n{run.stdout[-2000:]}{run.stderr}")
    return np.array([float(x) for _, x in found]).reshape(k, cols)
