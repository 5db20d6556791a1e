"""One simulated MVM: ``jc.simulate`` time per device instance, 256x256 weights, 64 input vectors, 8-bit DAC/ADC.

Single instance (no vmap), per preset; compile time reported apart (first call). Writes
benchmarks/results/mvm.json.

    python benchmarks/mvm.py [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import numpy as np

import jaxcim as jc

ROWS = COLS = 256
BATCH = 64
T_READ = 3600.0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=20, help="timed calls per preset (the median is reported)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mvm.json")
    args = p.parse_args(argv)
    kw, kx = jax.random.split(jax.random.key(1))
    w = jax.random.normal(kw, (ROWS, COLS)) / np.sqrt(ROWS)
    x = jax.random.uniform(kx, (BATCH, ROWS), minval=-1.0, maxval=1.0)
    ref = np.asarray(x) @ np.asarray(w)
    rows = []
    for preset in ("ideal", "reram-neurram", "pcm-ibm"):
        cfg = jc.presets.get(preset)
        t0 = time.perf_counter()
        jax.block_until_ready(jc.simulate(cfg, w, x, key=jax.random.key(0), t=T_READ))
        first = time.perf_counter() - t0
        ts = []
        for i in range(args.repeat):
            t0 = time.perf_counter()
            y = jax.block_until_ready(jc.simulate(cfg, w, x, key=jax.random.key(i + 1), t=T_READ))
            ts.append(time.perf_counter() - t0)
        run = float(np.median(ts))
        err = float(np.linalg.norm(np.asarray(y) - ref) / np.linalg.norm(ref))
        rows.append(dict(preset=preset, compile_s=first - run, ms_per_instance=1e3 * run,
                         min_ms=1e3 * min(ts), rel_error=err))
        print(f"{preset:14s} compile {first - run:6.2f} s   simulate {1e3 * run:7.2f} ms/instance "
              f"(min {1e3 * min(ts):.2f})   rel. error {err:.3%}", flush=True)
    meta = dict(benchmark="mvm", jax_version=jax.__version__, jaxcim_version=jc.__version__,
                device=str(jax.devices()[0].device_kind), platform=jax.default_backend(), cpu_count=os.cpu_count(),
                machine=platform.machine(), array=[ROWS, COLS], batch=BATCH, t_read_s=T_READ, repeat=args.repeat,
                note="single instance, eager jc.simulate (argument checks + jitted program + read); shared 2-core "
                     "CPU: timings noisy when other jobs run")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(meta=meta, results=rows), indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
