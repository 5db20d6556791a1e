"""IR-drop solve: time per 256x256 instance with 64 input vectors, next to scipy's sparse direct solver.

For each dtype (float32, float64) and cell model (linear, sinh), times ``jc.circuit.column_currents`` on one
instance (jit-compiled, compile time apart) and under ``vmap`` over a chunk of instances (instances/s), and
measures its accuracy against a float64 reference. The reference, in the same run on the same machine:
scipy's sparse LU (SuperLU, ``scipy.sparse.linalg.splu``) of the 2RC x 2RC nodal matrix, factorized once and
solved for the 64 right-hand sides (linear cells only: scipy has no sinh cell).

    python benchmarks/ir_drop.py              # 256x256, 64 inputs
    python benchmarks/ir_drop.py --quick      # 64x64 (a smoke run)
    python benchmarks/ir_drop.py --vmap 256   # instances per vmapped chunk (GPU)

Writes benchmarks/results/ir_drop.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import jaxcim as jc

BATCH = 64
R_WIRE = 2.0  # ohm per cell segment (NeuroSim 22 nm word line ~1.9 ohm)
G_MIN, G_MAX = 1e-6, 40e-6  # S, NeuRRAM-like range
V_READ = 0.2  # V
V0 = 0.25  # V, sinh scale


def nodal_matrix(g: np.ndarray, r_row: float, r_col: float):
    """Sparse nodal matrix (row nodes then column nodes, 2RC x 2RC) and row-source map (2RC, R), float64."""
    rows, cols = g.shape
    n = rows * cols
    rid = np.arange(n).reshape(rows, cols)
    cid = n + rid
    i_, j_, val = [], [], []

    def link(a, b, c):
        i_.extend([a, b, a, b])
        j_.extend([a, b, b, a])
        val.extend([c, c, -c, -c])

    link(rid.ravel(), cid.ravel(), g.ravel())  # cells
    link(rid[:, :-1].ravel(), rid[:, 1:].ravel(), np.full(rows * (cols - 1), 1 / r_row))  # word lines
    link(cid[:-1].ravel(), cid[1:].ravel(), np.full((rows - 1) * cols, 1 / r_col))  # bit lines
    i_.append(rid[:, 0])
    j_.append(rid[:, 0])
    val.append(np.full(rows, 1 / r_row))  # first word-line segment to the source
    i_.append(cid[-1])
    j_.append(cid[-1])
    val.append(np.full(cols, 1 / r_col))  # last bit-line segment to virtual ground
    flat = lambda parts: np.concatenate([np.ravel(p) for p in parts])
    a = sp.csc_matrix((flat(val), (flat(i_), flat(j_))), shape=(2 * n, 2 * n))
    f = sp.csc_matrix((np.full(rows, 1 / r_row), (rid[:, 0], np.arange(rows))), shape=(2 * n, rows))
    return a, f, cid[-1]


def scipy_currents(g, v, r_row, r_col):
    a, f, out = nodal_matrix(g, r_row, r_col)
    lu = spla.splu(a)
    u = lu.solve(np.asarray(f @ v.T.astype(float)))
    return (u[out] / r_col).T  # current through the last bit-line segment into ground


def best_of(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return min(ts), float(np.median(ts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256, help="rows = cols of the array")
    p.add_argument("--quick", action="store_true", help="64x64 array, fewer repeats")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--vmap", type=int, default=8, help="instances per vmapped chunk")
    p.add_argument("--vmap-sinh", type=int, default=8, help="instances per vmapped chunk, sinh cells (each keeps "
                   "its block factors: rows * cols^2 floats)")
    p.add_argument("--cells", default="linear,sinh", help="cell models to time: linear, sinh or both")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ir_drop.json")
    args = p.parse_args(argv)
    size = 64 if args.quick else args.size
    jax.config.update("jax_enable_x64", True)  # float64 available; each case picks its dtype explicitly

    rng = np.random.default_rng(0)
    gs = rng.uniform(G_MIN, G_MAX, (args.vmap, size, size))
    v = rng.uniform(-V_READ, V_READ, (BATCH, size))
    g0 = gs[0]

    t_scipy, t_scipy_med = best_of(lambda: scipy_currents(g0, v, R_WIRE, R_WIRE), args.repeat)
    ref = scipy_currents(g0, v, R_WIRE, R_WIRE)
    ideal = v @ g0
    ir_drop_effect = float(np.max(np.abs(ref - ideal)) / np.max(np.abs(ideal)))
    print(f"{size}x{size}, {BATCH} inputs, r_row = r_col = {R_WIRE} ohm, g in [{G_MIN:g}, {G_MAX:g}] S "
          f"(IR drop changes currents by up to {ir_drop_effect:.1%})")
    print(f"scipy splu (float64, factorize + solve): {1e3 * t_scipy:9.1f} ms/instance")

    rows = []
    for dtype in (jnp.float32, jnp.float64):
        for v0 in [None] * ("linear" in args.cells) + [V0] * ("sinh" in args.cells):
            name = f"{jnp.dtype(dtype).name} {'sinh' if v0 else 'linear'}"
            gj, vj = jnp.asarray(g0, dtype), jnp.asarray(v, dtype)
            one = jax.jit(lambda g, x, v0=v0: jc.circuit.column_currents(g, x, R_WIRE, R_WIRE, v0=v0))
            t0 = time.perf_counter()
            y = jax.block_until_ready(one(gj, vj))
            first = time.perf_counter() - t0
            t_one, _ = best_of(lambda one=one, gj=gj, vj=vj: one(gj, vj), args.repeat)
            if v0 is None:
                err = float(np.max(np.abs(np.asarray(y, float) - ref)) / np.max(np.abs(ref)))
            else:  # sinh reference: the same solver in float64 (checked against ngspice in tests/test_ir_drop.py)
                y64 = jc.circuit.column_currents(jnp.asarray(g0), jnp.asarray(v), R_WIRE, R_WIRE, v0=v0)
                err = float(np.max(np.abs(np.asarray(y, float) - np.asarray(y64))) / np.max(np.abs(y64)))
            many = jax.jit(jax.vmap(lambda g, x=vj, v0=v0: jc.circuit.column_currents(g, x, R_WIRE, R_WIRE, v0=v0)))
            chunk = args.vmap if v0 is None else min(args.vmap, args.vmap_sinh)
            gsj = jnp.asarray(gs[:chunk], dtype)
            t0 = time.perf_counter()
            jax.block_until_ready(many(gsj))
            compile_vmap = time.perf_counter() - t0
            t_many, _ = best_of(lambda many=many, gsj=gsj: many(gsj), args.repeat)
            row = dict(case=name, compile_s=first - t_one, ms_per_instance=1e3 * t_one,
                       speedup_vs_scipy=t_scipy / t_one, rel_error_vs_reference=err,
                       vmap_chunk=chunk, vmap_compile_s=compile_vmap - t_many,
                       vmap_instances_per_s=chunk / t_many)
            rows.append(row)
            print(f"{name:16s} {1e3 * t_one:9.1f} ms/instance  ({t_scipy / t_one:5.2f}x scipy)  "
                  f"error {err:.1e}  vmap x{chunk}: {chunk / t_many:8.1f} instances/s  "
                  f"(compile {first - t_one:.1f} s)", flush=True)

    meta = dict(benchmark="ir_drop", jax_version=jax.__version__, jaxcim_version=jc.__version__,
                device=str(jax.devices()[0].device_kind), platform=jax.default_backend(),
                cpu_count=os.cpu_count(), machine=platform.machine(), array=[size, size], batch=BATCH,
                r_wire_ohm=R_WIRE, g_range_S=[G_MIN, G_MAX], v0_V=V0, ir_drop_effect=ir_drop_effect,
                scipy_ms_per_instance=1e3 * t_scipy, scipy_ms_median=1e3 * t_scipy_med,
                note="error: max |I - I_ref| / max |I_ref|; reference = scipy splu float64 (linear) or jaxcim "
                     "float64 (sinh, itself checked against ngspice in the tests)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(meta=meta, results=rows), indent=2))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
