"""Learned variation-aware mapping vs the plain linear differential mapping vs a gradient-free search.

For each case (NeuRRAM ReRAM, 8-bit DAC/ADC, with 2-ohm wire IR drop when `jaxcim.circuit.ir_drop` is
available, else the ideal circuit; IBM PCM at t = 1 day with global drift compensation):

- plain: the linear differential mapping (``mapping=None``);
- gradient: `jaxcim.optimize_mapping` (Adam on the Monte Carlo expected loss, ``n_instances`` fresh device
  instances per step);
- ES: a (mu/mu, lambda) evolution strategy over the low-dimensional parameters (per-column range and
  digital gain/offset, the pre-distortion curve, the ADC range), every candidate scored on ONE fresh
  instance as aihwkit's optimizer does, with the same budget of simulated instances as the gradient run.

Errors are relative MVM errors ||y - x w|| / ||x w|| on held-out device instances and held-out inputs.
Run: ``python benchmarks/optimize_mapping.py [--size 256] [--steps 150] [--instances 8]``. Writes
``benchmarks/results/optimize_mapping.json``. The CPU this was measured on is shared and noisy: wall
times are indicative only.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

import jaxcim as jc
from jaxcim import optimize as jo

ES_LEARN = ("col_range", "curve", "digital", "adc_range")


def es_search(cfg, w, x_train, key, *, generations, lam, times, sigma0=0.02, sigma1=0.002, mu=None):
    """(mu/mu, lambda)-ES with weighted recombination and a decaying step; one instance per candidate.

    The candidates of a generation share their instance key (common random numbers), so their ranking
    compares mappings, not noise draws; the budget is still one simulated instance per candidate.
    """
    mu = mu or lam // 2
    m0 = jo.init_mapping(cfg, w, ES_LEARN)
    theta0, unravel = ravel_pytree(m0)
    weights = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
    weights = jnp.asarray(weights / weights.sum(), theta0.dtype)

    @jax.jit
    def generation(theta, sigma, k):
        k_eps, k_inst = jax.random.split(k)
        eps = jax.random.normal(k_eps, (lam, theta.size), theta.dtype)
        cands = theta + sigma * eps
        keys = jnp.broadcast_to(k_inst, (lam,))
        f = jax.vmap(lambda c, kk: jo.expected_loss(cfg, w, x_train, kk[None], mapping=jo.project(unravel(c)),
                                                    times=times))(cands, keys)
        order = jnp.argsort(f)[:mu]
        theta = ravel_pytree(jo.project(unravel(jnp.sum(weights[:, None] * cands[order], axis=0))))[0]
        return theta, jnp.mean(f)

    theta, history = theta0, []
    t0 = time.perf_counter()
    for g in range(generations):
        sigma = sigma0 * (sigma1 / sigma0) ** (g / max(generations - 1, 1))  # log-linear decay
        theta, f = generation(theta, sigma, jax.random.fold_in(key, g))
        history.append(float(f))
    return unravel(theta), np.asarray(history), time.perf_counter() - t0


def _ir_drop_works() -> bool:
    """True if the IR-drop solver is importable and runs (it is developed alongside this benchmark)."""
    try:
        from jaxcim.circuit.ir_drop import column_currents

        column_currents(jnp.full((4, 3), 1e-5), jnp.ones((1, 4)) * 0.1, r_row=2.0, r_col=2.0)
        return True
    except Exception as e:  # noqa: BLE001 - any failure: fall back to the ideal circuit and say so
        print(f"IR-drop solver not usable ({type(e).__name__}: {e}); the ReRAM case uses ideal wires")
        return False


def run_case(name, cfg, w, x_train, x_test, times, steps, n_instances, n_eval, seed):
    key = jax.random.key(seed)
    k_opt, k_es, k_eval = jax.random.split(key, 3)
    eval_keys = jax.random.split(k_eval, n_eval)
    common = dict(times=times, x_calib=x_train)
    t0 = time.perf_counter()
    e_plain = jo.mvm_errors(cfg, w, x_test, eval_keys, **common)
    t_eval = time.perf_counter() - t0

    res = jo.optimize_mapping(cfg, w, x_train, key=k_opt, steps=steps, n_instances=n_instances, times=times,
                              optimizer=optax.adam(2e-2), x_test=x_test, n_eval=0)
    e_grad = jo.mvm_errors(cfg, w, x_test, eval_keys, mapping=res.mapping, **common)

    lam = n_instances
    m_es, h_es, t_es = es_search(cfg, w, x_train, k_es, generations=steps, lam=lam, times=times)
    e_es = jo.mvm_errors(cfg, w, x_test, eval_keys, mapping=m_es, **common)

    s_plain, s_grad, s_es = (jo.error_stats(e) for e in (e_plain, e_grad, e_es))
    red = lambda s: {"mean": 1 - s["mean"] / s_plain["mean"], "p95": 1 - s["p95"] / s_plain["p95"]}
    return {
        "case": name, "circuit": cfg.circuit.kind, "times_s": list(times), "steps": steps,
        "instances_per_step": n_instances, "simulated_instances": steps * n_instances,
        "held_out_instances": n_eval, "held_out_inputs": int(x_test.shape[0]), "train_inputs": int(x_train.shape[0]),
        "plain": s_plain, "gradient": s_grad, "es": s_es,
        "reduction_gradient": red(s_grad), "reduction_es": red(s_es),
        "wall_s_gradient": res.wall_time_s, "compile_s_gradient": res.compile_time_s, "wall_s_es": t_es,
        "eval_wall_s": t_eval, "loss_first": float(res.loss_history[0]), "loss_last": float(res.loss_history[-1]),
        "es_loss_last": float(h_es[-1]),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--instances", type=int, default=8, help="device instances per step (and ES population)")
    p.add_argument("--eval", type=int, default=32, help="held-out device instances")
    p.add_argument("--train-inputs", type=int, default=64)
    p.add_argument("--test-inputs", type=int, default=32)
    p.add_argument("--ir-steps", type=int, default=None, help="steps for the IR-drop case (it is slower)")
    p.add_argument("--cases", default="reram,pcm")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "optimize_mapping.json"))
    a = p.parse_args()

    n = a.size
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((n, n)) * 0.1).astype(np.float32)
    x_train = rng.uniform(-1, 1, (a.train_inputs, n)).astype(np.float32)
    x_test = rng.uniform(-1, 1, (a.test_inputs, n)).astype(np.float32)
    have_ir = _ir_drop_works()
    rows = []
    for case in a.cases.split(","):
        if case == "reram":
            cfg = jc.presets.get("reram-neurram")
            if have_ir:
                cfg = cfg.replace(**{"circuit.kind": "ir_drop", "circuit.r_row": 2.0, "circuit.r_col": 2.0})
            steps = a.ir_steps if (have_ir and a.ir_steps) else a.steps
            rows.append(run_case("reram-neurram" + (" + 2-ohm IR drop" if have_ir else " (ideal wires)"), cfg, w,
                                 x_train, x_test, (1.0,), steps, a.instances, a.eval, 1))
        elif case == "pcm":
            cfg = jc.presets.get("pcm-ibm")
            rows.append(run_case("pcm-ibm, t = 1 day, drift compensation", cfg, w, x_train, x_test, (86400.0,),
                                 a.steps, a.instances, a.eval, 2))
        else:
            raise SystemExit(f"unknown case {case!r}; valid: reram, pcm")

    print(f"\nlearned mapping, {n}x{n}, 8-bit DAC/ADC; relative MVM error on held-out instances and inputs")
    print("(shared, noisy 2-core CPU: wall times are indicative)\n")
    hdr = f"{'case':44s} {'method':9s} {'mean':>7s} {'p95':>7s} {'d mean':>7s} {'d p95':>7s} {'wall s':>7s}"
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        for meth, s, d, t in (("plain", r["plain"], None, None),
                              ("gradient", r["gradient"], r["reduction_gradient"], r["wall_s_gradient"]),
                              ("ES", r["es"], r["reduction_es"], r["wall_s_es"])):
            dm = f"{-d['mean']:+7.1%}" if d else f"{'':7s}"
            dp = f"{-d['p95']:+7.1%}" if d else f"{'':7s}"
            ts = f"{t:7.1f}" if t is not None else f"{'':7s}"
            print(f"{r['case']:44s} {meth:9s} {s['mean']:7.4f} {s['p95']:7.4f} {dm} {dp} {ts}")
    out = {
        "benchmark": "optimize_mapping", "device": str(jax.devices()[0]), "platform": platform.platform(),
        "jax_version": jax.__version__, "size": [n, n], "ir_drop_available": have_ir,
        "note": "shared 2-core CPU, noisy; wall times include compilation (compile_s_gradient is the first step)",
        "cases": rows,
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"\nwrote {a.out}")


if __name__ == "__main__":
    jnp.zeros(())  # initialize the backend before timing
    main()
