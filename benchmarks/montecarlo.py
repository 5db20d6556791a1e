"""Monte Carlo throughput: device instances per second for 256x256 arrays, 64 inputs, 8-bit DAC/ADC.

For each preset (NeuRRAM ReRAM, IBM PCM, read 1 h after programming) and instance count n, runs
``jc.monte_carlo_stats`` (per-instance relative errors only) and reports instances/s, next to the floor:
the time to merely draw the same number of normal random numbers per instance (5 x 65536: programming
noise and drift/relaxation parameters of G+ and G-, and one read-noise draw per pair: on an ideal differential
circuit only G+ - G- is observable, so `jaxcim.core` draws the pair's read noise once with the combined
deviation), once with ``jax.random.normal`` (threefry; summed per instance) and once with jaxcim's sampler
as the simulation draws them (`jaxcim.rng.normals`: G+ and G- as Box-Muller pairs, two pairs and one single;
kept in memory, since summing them in the same program hits a slow XLA CPU reduction: ~560 vs ~1400
instances/s on 2 cores). Compile time is reported apart (the first call at each chunk size).

    python benchmarks/montecarlo.py --quick      # n = 256, 1024
    python benchmarks/montecarlo.py              # n = 256 ... 65536
    python benchmarks/montecarlo.py --programs one --sizes 4096   # compare one fused program per chunk

Writes benchmarks/results/montecarlo.json.
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

import jaxcim as jc
from jaxcim import engine, rng
from jaxcim import montecarlo as mc

ROWS = COLS = 256
BATCH = 64
DRAWS = (5, ROWS * COLS)
T_READ = 3600.0


def _time(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def floor_rate(sampler, n, chunk):
    """Instances/s of ``sampler(key)`` drawing DRAWS normals per instance (vmapped over instance keys in chunks)."""
    @jax.jit
    def draw(key, start):
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(start + jnp.arange(chunk, dtype=jnp.uint32))
        return jax.vmap(sampler)(keys)

    key = jax.random.key(0)
    t0 = time.perf_counter()
    jax.block_until_ready(draw(key, jnp.uint32(0)))
    compile_s = time.perf_counter() - t0

    def run():  # keep only the last chunk's draws alive (all of them would be n x 1.3 MB)
        out = None
        for s in range(0, n, chunk):
            out = draw(key, jnp.uint32(s))
        return out

    return n / _time(run), compile_s


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small n only (256, 1024)")
    p.add_argument("--sizes", type=str, default=None, help="comma-separated instance counts")
    p.add_argument("--budget", type=float, default=None,
                   help="memory budget per chunk, B (default: jaxcim's, 256 MiB on CPU, 1/4 of GPU memory)")
    p.add_argument("--repeat", type=int, default=2, help="timed runs per size (best kept; the first call at a "
                   "new n also pays one-time costs)")
    p.add_argument("--presets", default="reram-neurram,pcm-ibm", help="comma-separated preset names")
    p.add_argument("--programs", choices=("auto", "one", "two"), default="auto",
                   help="compiled programs per chunk: jaxcim's choice (two on CPUs: programming, then reading; one "
                   "fused program on accelerators), or force one or two to compare them on this machine")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "montecarlo.json")
    args = p.parse_args(argv)
    stages = {"auto": "auto", "one": 1, "two": 2}[args.programs]  # jaxcim.engine's stages= argument
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else (
        [256, 1024] if args.quick else [256, 1024, 4096, 16384, 65536])

    kw, kx = jax.random.split(jax.random.key(1))
    w = jax.random.normal(kw, (ROWS, COLS)) / np.sqrt(ROWS)
    x = jax.random.uniform(kx, (BATCH, ROWS), minval=-1.0, maxval=1.0)
    rows = []
    for preset in args.presets.split(","):
        cfg = jc.presets.get(preset)
        per = mc.instance_bytes(cfg, ROWS, COLS, BATCH)
        budget = args.budget or mc.default_memory_budget()
        for n in sizes:
            chunk = mc.chunk_size_for(budget, per, n, len(jax.devices()))
            t0 = time.perf_counter()
            jax.block_until_ready(mc.monte_carlo_stats(cfg, w, x, key=jax.random.key(2), n=chunk, t=T_READ,
                                                       chunk_size=chunk, stages=stages))
            first_s = time.perf_counter() - t0
            run_s = _time(lambda cfg=cfg, n=n, chunk=chunk: mc.monte_carlo_stats(
                cfg, w, x, key=jax.random.key(3), n=n, t=T_READ, chunk_size=chunk, stages=stages), args.repeat)
            rate = n / run_s
            compile_s = max(first_s - chunk / rate, 0.0)
            f_jax, _ = floor_rate(lambda k: jnp.sum(jax.random.normal(k, DRAWS)), n, chunk)
            f_jc, _ = floor_rate(lambda k: rng.normals(k, [DRAWS[1:]] * DRAWS[0]), n, chunk)
            rows.append(dict(preset=preset, n=n, chunk=chunk, compile_s=compile_s, run_s=run_s, inst_per_s=rate,
                             ms_per_inst=1e3 / rate, floor_jax_random_inst_per_s=f_jax,
                             floor_jaxcim_rng_inst_per_s=f_jc, ratio_to_jax_floor=f_jax / rate,
                             ratio_to_jaxcim_floor=f_jc / rate))
            r = rows[-1]
            print(f"{preset:14s} n={n:6d} chunk={chunk:4d} compile {compile_s:5.1f} s  run {run_s:7.2f} s  "
                  f"{rate:8.1f} inst/s  ({r['ms_per_inst']:.2f} ms/inst)  floor jax.random {f_jax:7.1f}/s  "
                  f"jaxcim.rng {f_jc:7.1f}/s", flush=True)

    print()
    print(f"{'preset':14s} {'n':>6s} {'inst/s':>9s} {'ms/inst':>8s} {'compile s':>9s} {'jax.random floor/s':>19s} "
          f"{'MC/floor time':>16s} {'rng floor/s':>12s}")
    for r in rows:
        print(f"{r['preset']:14s} {r['n']:6d} {r['inst_per_s']:9.1f} {r['ms_per_inst']:8.2f} {r['compile_s']:9.1f} "
              f"{r['floor_jax_random_inst_per_s']:19.1f} {r['ratio_to_jax_floor']:16.2f} "
              f"{r['floor_jaxcim_rng_inst_per_s']:12.1f}")
    meta = dict(
        benchmark="montecarlo", jax_version=jax.__version__, jaxcim_version=jc.__version__,
        device=str(jax.devices()[0].device_kind), platform=jax.default_backend(), n_devices=len(jax.devices()),
        cpu_count=os.cpu_count(), machine=platform.machine(), array=[ROWS, COLS], batch=BATCH, t_read_s=T_READ,
        draws_per_instance=int(np.prod(DRAWS)), memory_budget_bytes=args.budget or mc.default_memory_budget(),
        programs_per_chunk=engine.check_stages(stages, mc.default_mesh()),
        note="MC/floor time = MC time / time to draw the same normals with jax.random (< 1: faster);"
             " shared 2-core CPU: timings noisy when other jobs run",
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(meta=meta, results=rows), indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
