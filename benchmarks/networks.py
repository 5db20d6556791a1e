"""Imported networks over chips: chips per second of `jaxcim.nn.evaluate` for ResNet-18 (CIFAR-size inputs) and
a transformer encoder imported from PyTorch, next to the digital forward pass of the same network in the same
run (the analog overhead ratio), compile time apart; optionally peak memory (RSS) against the chip count.

One chip = program every analog layer (256x256 arrays, ReRAM NeuRRAM preset) and read the whole batch once
at t = 1 s. The overhead ratio is (analog seconds per chip) / (digital seconds per forward pass of the batch).

    python benchmarks/networks.py --quick                # batch 8, 4 chips
    python benchmarks/networks.py                        # batch 128, 16 chips
    python benchmarks/networks.py --memory 2,8,32        # peak RSS per chip count (one process each)

Needs PyTorch (``pip install 'jaxcim[torch]'``). Writes benchmarks/results/networks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import torch
from torch import nn

import jaxcim as jc

PRESET = "reram-neurram"


class _Block(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet18(num_classes: int = 10) -> nn.Module:
    """torchvision's resnet18 when torchvision is installed, else the same architecture defined here."""
    try:
        import torchvision

        return torchvision.models.resnet18(num_classes=num_classes)
    except Exception:  # not installed, or a CUDA build that does not load next to a CPU torch
        pass
    m = nn.Module()
    m.conv1, m.bn1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64)
    m.maxpool = nn.MaxPool2d(3, 2, 1)
    cin = 64
    for i, c in enumerate((64, 128, 256, 512)):
        setattr(m, f"layer{i + 1}", nn.Sequential(_Block(cin, c, 1 if i == 0 else 2), _Block(c, c, 1)))
        cin = c
    m.avgpool, m.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(512, num_classes)

    def forward(x):
        x = m.maxpool(torch.relu(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return m.fc(torch.flatten(m.avgpool(x), 1))

    m.forward = forward
    return m


class Transformer(nn.Module):
    """A 4-layer encoder (d_model 128, 4 heads, feed-forward 512) with a mean-pooled classification head."""

    def __init__(self, d=128, layers=4, classes=10, features=32):
        super().__init__()
        self.embed = nn.Linear(features, d)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(d, 4, 4 * d, batch_first=True), layers)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x)).mean(1))


def build(name: str, batch: int):
    torch.manual_seed(0)
    if name == "resnet18":
        model, x = resnet18(), torch.randn(batch, 3, 32, 32)
    else:
        model, x = Transformer(), torch.randn(batch, 16, 32)
    model.eval()
    t0 = time.perf_counter()
    net = jc.nn.from_torch(model, x[:2])
    import_s = time.perf_counter() - t0
    n_weights = sum(p.numel() for p in model.parameters())
    return net, np.asarray(x.numpy()), import_s, n_weights


def _timed(fn):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - t0


def bench(name: str, batch: int, chips: int, chunk: int, budget_mib: float | None) -> dict:
    net, x, import_s, n_weights = build(name, batch)
    fwd = jax.jit(lambda v: net(v))
    xj = jnp.asarray(x)
    first = _timed(lambda: fwd(xj))
    digital_s = min(_timed(lambda: fwd(xj)) for _ in range(3))
    y = np.asarray(jnp.argmax(fwd(xj), -1), np.int32)
    cfg = jc.presets.get(PRESET)
    budget = None if budget_mib is None else int(budget_mib * 2**20)
    plan = jc.nn.plan_evaluation(net, cfg, (x, y), n_instances=chips, chunk_size=chunk, memory_budget=budget)

    def run(n, seed):
        return jc.nn.evaluate(net, cfg, (x, y), key=jax.random.key(seed), n_instances=n, chunk_size=chunk,
                              memory_budget=budget, progress=True)

    t_first = _timed(lambda: run(chunk, 0).accuracies)  # compiles the chunk program, runs one chunk
    run_s = _timed(lambda: run(chips, 1).accuracies)
    per_chip = run_s / chips
    return dict(network=name, weights=int(n_weights), batch=batch, chips=chips, chunk=chunk, import_s=import_s,
                digital_compile_s=first - digital_s, digital_forward_s=digital_s,
                analog_compile_s=max(t_first - chunk * per_chip, 0.0), analog_run_s=run_s,
                chips_per_s=chips / run_s, analog_s_per_chip=per_chip, overhead_ratio=per_chip / digital_s,
                streamed=plan.streamed, eval_batch=plan.batch_size, memory_budget_mib=plan.memory_budget / 2**20,
                peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def memory_point(name: str, batch: int, chips: int, budget_mib: float | None) -> dict:
    """Peak RSS of one process that imports the network and evaluates ``chips`` chips within the memory budget
    (default: `jaxcim.engine.default_memory_budget`), with the plan `evaluate` follows."""
    net, x, _, n_weights = build(name, batch)
    y = np.zeros(x.shape[0], np.int32)
    cfg = jc.presets.get(PRESET)
    budget = None if budget_mib is None else int(budget_mib * 2**20)
    plan = jc.nn.plan_evaluation(net, cfg, (x, y), n_instances=chips, memory_budget=budget)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def run(n):
        return jc.nn.evaluate(net, cfg, (x, y), key=jax.random.key(0), n_instances=n, memory_budget=budget,
                              chunk_size=plan.chunk_size, progress=True)

    t0 = time.perf_counter()
    run(plan.chunk_size)  # compiles the one-chunk program the run below reuses
    compiled_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _reset_peak_rss()
    t1 = time.perf_counter()
    res = run(chips)
    return dict(network=name, batch=batch, chips=chips, weights=int(n_weights), compile_and_chunk_s=t1 - t0,
                seconds=time.perf_counter() - t1, memory_budget_mib=plan.memory_budget / 2**20,
                streamed=plan.streamed, chunk_size=plan.chunk_size, eval_batch=plan.batch_size,
                planned_chunk_mib=plan.chunk_bytes / 2**20, rss_before_evaluate_mib=base,
                peak_rss_with_compile_mib=compiled_peak, peak_rss_mib=_peak_rss_mib(),
                accuracy_shape=list(res.accuracies.shape))


def _reset_peak_rss() -> None:
    """Reset the kernel's high-water mark of this process's RSS (Linux: VmHWM), so the peak after it is the run's."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak_rss_mib() -> float:
    """VmHWM of this process, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="batch 8, 4 chips in chunks of 2")
    p.add_argument("--batch", type=int, default=None, help="evaluation batch (default 128; 8 with --quick)")
    p.add_argument("--chips", type=int, default=None, help="chips timed (default 16; 4 with --quick)")
    p.add_argument("--chunk", type=int, default=None, help="chips per compiled chunk (default 4; 2 with --quick)")
    p.add_argument("--networks", default="resnet18,transformer")
    p.add_argument("--memory", default=None, help="comma-separated chip counts: peak RSS of ResNet-18 evaluation, "
                   "one child process per count")
    p.add_argument("--budget", type=float, default=None, help="memory_budget of evaluate, MiB (default: jaxcim's)")
    p.add_argument("--memory-point", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "networks.json")
    args = p.parse_args(argv)
    batch = args.batch or (8 if args.quick else 128)
    if args.memory_point:
        print(json.dumps(memory_point("resnet18", batch, int(args.memory_point), args.budget)))
        return
    rows, mem = [], []
    if args.memory:
        for n in args.memory.split(","):
            cmd = [sys.executable, __file__, "--memory-point", n, "--batch", str(batch)]
            cmd += [] if args.budget is None else ["--budget", str(args.budget)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            mem.append(json.loads(out.strip().splitlines()[-1]))
            m = mem[-1]
            print(f"resnet18 batch {batch} chips {m['chips']:5d}, budget {m['memory_budget_mib']:.0f} MiB "
                  f"({'streamed' if m['streamed'] else 'held'}, {m['chunk_size']} chips x {m['eval_batch']} examples "
                  f"per chunk, planned {m['planned_chunk_mib']:.0f} MiB): peak RSS {m['peak_rss_mib']:6.0f} MiB "
                  f"running, {m['peak_rss_with_compile_mib']:6.0f} MiB compiling (before evaluate "
                  f"{m['rss_before_evaluate_mib']:.0f} MiB); {m['compile_and_chunk_s']:.0f} s compile + one chunk, "
                  f"{m['seconds']:.1f} s run", flush=True)
    else:
        chips = args.chips or (4 if args.quick else 16)
        chunk = args.chunk or (2 if args.quick else 4)
        for name in args.networks.split(","):
            rows.append(bench(name, batch, chips, chunk, args.budget))
            r = rows[-1]
            print(f"{name:12s} {r['weights'] / 1e6:6.2f} M weights  batch {batch}: "
                  f"digital {r['digital_forward_s']:.3f} s "
                  f"(compile {r['digital_compile_s']:.1f} s); analog {r['chips_per_s']:.2f} chips/s = "
                  f"{r['analog_s_per_chip']:.2f} s/chip (compile {r['analog_compile_s']:.1f} s); overhead "
                  f"{r['overhead_ratio']:.1f}x; peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
    meta = dict(benchmark="networks", preset=PRESET, jax_version=jax.__version__, torch_version=torch.__version__,
                device=str(jax.devices()[0].device_kind), platform=jax.default_backend(),
                n_devices=len(jax.devices()), cpu_count=os.cpu_count(), machine=platform.machine(),
                load_average=os.getloadavg(),
                note="overhead = analog s/chip / digital s per forward of the same batch; shared CPU: noisy")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    out = dict(meta=meta, results=rows or old.get("results", []), memory=mem or old.get("memory", []))
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
