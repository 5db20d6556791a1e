"""Monte Carlo throughput over several local processes: instances per second of ``jc.monte_carlo_stats`` (256x256
NeuRRAM ReRAM array, 64 inputs, 8-bit DAC/ADC, read at 1 h) with 1, 2, 4 processes on this machine's CPU, each
process with its own CPU devices, joined by `jaxcim.distributed.initialize` on 127.0.0.1 (gloo collectives).

Every process compiles the chunk programs (compile time reported apart: the first call, one chunk), then all
run the same ``n`` instances, each computing its share of every chunk and receiving the whole result
(`jaxcim.engine.to_host`); the time is process 0's, from a barrier to the gathered result, best of ``--repeat``.
On one machine the processes share its cores: more processes than cores cannot run faster, and XLA's CPU
backend already spreads one process's work over all cores; what the numbers show is the cost of the
multi-process path (per-chunk gathers over gloo) on top of the same compute. Across hosts each process brings
its own cores or accelerators. On a shared machine the wall-clock rate also depends on the share of the cores the
processes get from other jobs; the rate per CPU-second (every process's CPU time during the timed run, threads
included) does not.

    python benchmarks/multiprocess.py                       # 1, 2, 4 processes x 1 CPU device, n = 2048
    python benchmarks/multiprocess.py --processes 1,2 --n 4096 --devices-per-process 2

Writes benchmarks/results/multiprocess.json. The file is also the worker (``--worker PORT ID P OUT``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = COLS = 256
BATCH = 64
T_READ = 3600.0
PRESET = "reram-neurram"
TIMEOUT_S = 900


def _worker(port: int, pid: int, n_processes: int, out: str, n: int, repeat: int) -> None:
    from jaxcim import distributed

    if n_processes > 1:
        distributed.initialize(f"127.0.0.1:{port}", n_processes, pid, timeout_s=120.0)
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    import jaxcim as jc
    from jaxcim import montecarlo as mc

    kw, kx = jax.random.split(jax.random.key(1))
    w = jax.random.normal(kw, (ROWS, COLS)) / np.sqrt(ROWS)
    x = jax.random.uniform(kx, (BATCH, ROWS), minval=-1.0, maxval=1.0)
    cfg = jc.presets.get(PRESET)
    chunk = mc.chunk_size_for(mc.default_memory_budget(), mc.instance_bytes(cfg, ROWS, COLS, BATCH), n,
                              len(jax.devices()))

    def run(m, seed):
        if n_processes > 1:
            multihost_utils.sync_global_devices("start")
        t0, c0 = time.perf_counter(), time.process_time()
        res = mc.monte_carlo_stats(cfg, w, x, key=jax.random.key(seed), n=m, t=T_READ, chunk_size=chunk)
        rel = np.asarray(jax.block_until_ready(res["rel_error"]))
        return time.perf_counter() - t0, time.process_time() - c0, rel

    first_s, _, _ = run(chunk, 2)
    run_s, cpu_s, rel = min((run(n, 3) for _ in range(repeat)), key=lambda r: r[0])
    if n_processes > 1:  # CPU seconds of every process (threads included) for the timed run
        cpu_s = float(np.sum(multihost_utils.process_allgather(np.float32(cpu_s))))
    rate = n / run_s
    if pid == 0:
        Path(out).write_text(json.dumps(dict(
            processes=n_processes, devices=len(jax.devices()), n=n, chunk=chunk, inst_per_s=rate, run_s=run_s,
            cpu_s=cpu_s, inst_per_cpu_s=n / cpu_s,
            compile_s=max(first_s - chunk / rate, 0.0), mean_rel_error=float(rel.mean()),
            device=str(jax.devices()[0].device_kind), jax_version=jax.__version__, jaxcim_version=jc.__version__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _measure(n_processes: int, devices: int, n: int, repeat: int, tmp: Path) -> dict:
    out = tmp / f"p{n_processes}.json"
    flags = os.environ.get("XLA_FLAGS", "")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
           "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={devices}".strip()}
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(port), str(i), str(n_processes), str(out),
                               "--n", str(n), "--repeat", str(repeat)], env=env, start_new_session=True)
             for i in range(n_processes)]
    try:
        codes = [p.wait(timeout=TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    if codes != [0] * n_processes:
        raise SystemExit(f"{n_processes} processes: exit statuses {codes}")
    return json.loads(out.read_text())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", default="1,2,4", help="comma-separated process counts")
    p.add_argument("--devices-per-process", type=int, default=1, help="CPU devices of each process")
    p.add_argument("--n", type=int, default=2048, help="instances per timed run")
    p.add_argument("--repeat", type=int, default=2, help="timed runs (best kept)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "multiprocess.json")
    p.add_argument("--worker", nargs=4, metavar=("PORT", "ID", "P", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        port, pid, n_proc, out = args.worker
        _worker(int(port), int(pid), int(n_proc), out, args.n, args.repeat)
        return
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_proc in (int(v) for v in args.processes.split(",")):
            r = _measure(n_proc, args.devices_per_process, args.n, args.repeat, Path(tmp))
            rows.append(r)
            print(f"{n_proc} process(es) x {args.devices_per_process} device(s): {r['inst_per_s']:8.1f} inst/s  "
                  f"{r['inst_per_cpu_s']:7.1f} inst/CPU-s (n = {r['n']}, chunk {r['chunk']}, run {r['run_s']:.2f} s, "
                  f"compile {r['compile_s']:.1f} s, mean error {r['mean_rel_error']:.6f})", flush=True)
    base = rows[0]
    print(f"\n{'processes':>9s} {'devices':>7s} {'inst/s':>9s} {'vs first':>8s} {'inst/CPU-s':>10s} {'vs first':>8s} "
          f"{'compile s':>9s}")
    for r in rows:
        rel, rel_cpu = r["inst_per_s"] / base["inst_per_s"], r["inst_per_cpu_s"] / base["inst_per_cpu_s"]
        print(f"{r['processes']:9d} {r['devices']:7d} {r['inst_per_s']:9.1f} {rel:8.2f} {r['inst_per_cpu_s']:10.1f} "
              f"{rel_cpu:8.2f} {r['compile_s']:9.1f}")
    meta = dict(benchmark="multiprocess", preset=PRESET, array=[ROWS, COLS], batch=BATCH, t_read_s=T_READ,
                devices_per_process=args.devices_per_process, cpu_count=os.cpu_count(), machine=platform.machine(),
                jax_version=rows[0]["jax_version"], jaxcim_version=rows[0]["jaxcim_version"],
                device=rows[0]["device"], load_average=os.getloadavg(),
                note="local processes on one machine share its cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(dict(meta=meta, results=rows), indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
