"""The ``classifier`` study of ``jaxcim run``: a digits classifier on crossbars, over chip instances and time.

Study file (TOML; `jaxcim/studies/classifier.toml` is the embedded default)::

    study = "classifier"
    seed = 0
    instances = 256                                   # chip instances
    times = [1.0, 3600.0, 86400.0, 31557600.0]        # read times after programming, s
    chunk_size = 0                                    # chips per chunk (0: from memory_budget)
    memory_budget = 0                                 # bytes per chunk (0: jaxcim.montecarlo's default)
    [crossbar]                                        # a CrossbarConfig (jaxcim.config.from_dict)
    preset = "reram-neurram"
    [model]
    kind = "mlp"                                      # "mlp" (flat 8x8 digits) or "cnn" (8x8x1 images)
    features = [64, 64, 10]                           # mlp widths; cnn: channels = [8, 16]
    [train]                                           # digital training
    epochs = 30
    batch_size = 64
    learning_rate = 0.003
    [hwa]                                             # hardware-aware fine-tuning of the trained model
    epochs = 10                                       # 0 skips it
    learning_rate = 0.001
    clip_sigma = 2.5
    prog_noise_scale = 1.0                            # training noise relative to [crossbar]

The study trains the model digitally, fine-tunes a copy with hardware-aware training, and evaluates both on
``instances`` chips at every time; it prints a table and writes ``results.json``. With an output folder it
checkpoints into ``checkpoint/`` (atomic writes): the trained models, then every chunk of chips as it
completes; ``resume=True`` (``jaxcim run --resume``) continues from there and ends with the same results as
an uninterrupted run. The output folder is locked while the study runs, the model and chunk files carry the
study's fingerprint (damaged or foreign ones are computed again) and starting over deletes only the files jaxcim
writes in ``checkpoint/`` (`jaxcim.io`).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcim import io
from jaxcim.config import from_dict
from jaxcim.nn.convert import analogize
from jaxcim.nn.data import load_digits
from jaxcim.nn.evaluate import _saved_chunk_size, evaluate, format_time
from jaxcim.nn.models import CNN, MLP
from jaxcim.nn.train import fit

DEFAULT_TIMES = (1.0, 3600.0, 86400.0, 31557600.0)
"""1 s, 1 hour, 1 day, 1 year (Julian) after programming, s."""
TOP_KEYS = ("study", "name", "seed", "instances", "times", "chunk_size", "memory_budget", "crossbar", "model",
            "train", "hwa")
SECTION_KEYS = {
    "model": {"kind": "mlp", "features": [64, 64, 10], "channels": [8, 16]},
    "train": {"epochs": 30, "batch_size": 64, "learning_rate": 3e-3},
    "hwa": {"epochs": 10, "batch_size": 64, "learning_rate": 1e-3, "clip_sigma": 2.5, "prog_noise_scale": 1.0},
}


def _section(study: Mapping[str, Any], name: str) -> dict[str, Any]:
    table = study.get(name, {})
    if not isinstance(table, Mapping):
        raise TypeError(f"[{name}] must be a table, got {type(table).__name__}")
    unknown = set(table) - set(SECTION_KEYS[name])
    if unknown:
        raise KeyError(f"unknown key(s) {sorted(unknown)} in [{name}]; valid: {', '.join(SECTION_KEYS[name])}")
    return {**SECTION_KEYS[name], **table}


def _build_model(spec: dict[str, Any], seed: int) -> tuple[nnx.Module, bool]:
    rngs = nnx.Rngs(params=seed, noise=seed + 1)
    if spec["kind"] == "mlp":
        return MLP(tuple(spec["features"]), rngs=rngs), False
    if spec["kind"] == "cnn":
        return CNN(tuple(spec["channels"]), rngs=rngs), True
    raise ValueError(f"[model] kind must be 'mlp' or 'cnn', got {spec['kind']!r}")


MAX_INSTANCES = 2**31
"""Most chip instances of a study (instance indices are uint32 inside the compiled evaluation)."""
MAX_SEED = 2**32 - 1
"""Largest seed (32 bits: ``jax.random.key`` keeps 32 bits of a seed without x64; the data split's numpy seed)."""
MODEL_NAMES = ("digital-trained", "hwa-trained")
"""The models of a study; each one's chunks of chips are checkpointed in ``checkpoint/<name>/``."""


def _positive(name: str, value: Any, *, integer: bool = True, zero: bool = False, hi: int | None = None) -> Any:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be {kind}, got {type(value).__name__} {value!r}")
    finite = not isinstance(value, float) or math.isfinite(value)  # (math.isfinite overflows on huge ints)
    ok = finite and (value >= 0 if zero else value > 0)
    ok = ok and (not integer or isinstance(value, int) or value.is_integer())
    if not ok:
        raise ValueError(f"{name} must be {kind} {'>= 0' if zero else '> 0'}, got {value!r}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} must be <= {hi} ({hi:.3g}), got {value!r}")
    return int(value) if integer else float(value)


def _positive_ints(name: str, value: Any) -> list[int]:
    if not isinstance(value, list | tuple) or not value:
        raise TypeError(f"{name} must be a non-empty list of integers, got {type(value).__name__} {value!r}")
    return [_positive(name, v, hi=2**31 - 1) for v in value]


def check_classifier(study: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a classifier study table (keys, ranges) and fill in the defaults of its sections.

    Raises:
      KeyError: an unknown key (the message lists the valid ones). TypeError, ValueError: a bad value.
    """
    unknown = set(study) - set(TOP_KEYS)
    if unknown:
        raise KeyError(f"unknown key(s) {sorted(unknown)} in a classifier study; valid: {', '.join(TOP_KEYS)}")
    if study.get("study", "classifier") != "classifier":
        raise ValueError(f"a classifier study needs study = 'classifier', got {study.get('study')!r}")
    s = dict(study)
    s["seed"] = _positive("seed", s.get("seed", 0), zero=True, hi=MAX_SEED)
    s["instances"] = _positive("instances", s.get("instances", 256), hi=MAX_INSTANCES)
    s["chunk_size"] = _positive("chunk_size", s.get("chunk_size", 0), zero=True, hi=MAX_INSTANCES)
    s["memory_budget"] = _positive("memory_budget", s.get("memory_budget", 0), zero=True)
    times = s.get("times", DEFAULT_TIMES)
    if isinstance(times, int | float) and not isinstance(times, bool):
        times = [times]
    if not isinstance(times, list | tuple) or not times:
        raise ValueError(f"times must be a non-empty list of seconds, got {times!r}")
    s["times"] = [_positive("times", t, integer=False, zero=True) for t in times]
    for name in SECTION_KEYS:
        s[name] = _section(s, name)
    if not isinstance(s["model"]["kind"], str) or s["model"]["kind"] not in ("mlp", "cnn"):
        raise ValueError(f"[model] kind must be 'mlp' or 'cnn', got {s['model']['kind']!r}")
    s["model"]["features"] = _positive_ints("[model] features", s["model"]["features"])
    s["model"]["channels"] = _positive_ints("[model] channels", s["model"]["channels"])
    s["hwa"]["clip_sigma"] = _positive("[hwa] clip_sigma", s["hwa"]["clip_sigma"], integer=False)
    s["hwa"]["prog_noise_scale"] = _positive("[hwa] prog_noise_scale", s["hwa"]["prog_noise_scale"], integer=False,
                                             zero=True)
    for sec in ("train", "hwa"):
        s[sec]["epochs"] = _positive(f"[{sec}] epochs", s[sec]["epochs"], zero=sec == "hwa")
        s[sec]["batch_size"] = _positive(f"[{sec}] batch_size", s[sec]["batch_size"])
        s[sec]["learning_rate"] = _positive(f"[{sec}] learning_rate", s[sec]["learning_rate"], integer=False)
    return s


def _fingerprint(study: Mapping[str, Any], cfg: Any, times: Sequence[float]) -> str:
    """Hash of everything that determines the trained models and every chip's accuracy (not the chip count)."""
    keep = {k: v for k, v in study.items() if k not in ("instances", "name", "chunk_size", "memory_budget")}
    text = json.dumps({"study": keep, "crossbar": cfg.to_dict(), "times": list(times)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _model_arrays(models: Mapping[str, nnx.Module]) -> dict[str, np.ndarray]:
    """Every state leaf of every model as a numpy array (PRNG keys as their key data), keyed ``name__i``."""
    out = {}
    for name, m in models.items():
        for i, leaf in enumerate(jax.tree.leaves(nnx.state(m))):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            out[f"{name}__{i}"] = np.asarray(leaf)
    return out


def _restore_models(models: Mapping[str, nnx.Module], arrays: Mapping[str, np.ndarray]) -> None:
    """Load `_model_arrays` output into freshly built models of the same structure (in place).

    Every array is checked before any model changes (ValueError if one is missing or of another shape)."""
    updates = []
    for name, m in models.items():
        leaves, treedef = jax.tree.flatten(nnx.state(m))
        if any(f"{name}__{i}" not in arrays for i in range(len(leaves))):
            raise ValueError(f"checkpointed model {name!r} is incomplete")
        new = []
        for i, leaf in enumerate(leaves):
            a = arrays[f"{name}__{i}"]
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                if a.shape != jax.random.key_data(leaf).shape:
                    raise ValueError(f"checkpointed model {name!r} does not match the study's model")
                a = jax.random.wrap_key_data(a, impl=jax.random.key_impl(leaf))
            elif a.shape != leaf.shape or a.dtype != leaf.dtype:
                raise ValueError(f"checkpointed model {name!r} does not match the study's model")
            new.append(jnp.asarray(a))
        updates.append((m, jax.tree.unflatten(treedef, new)))
    for m, state in updates:
        nnx.update(m, state)


def _start_checkpoint(ckpt: Path, fp: str, resume: bool) -> dict[str, Any] | None:
    """The checkpoint state to resume from, or None: start over (jaxcim's files in ``ckpt`` deleted)."""
    from jaxcim.study import StudyError

    state = None
    if resume:
        state = io.read_state(ckpt / "state.json", {"fingerprint": io.is_str, "trained": io.is_bool,
                                                    "train_s": io.is_finite_nonnegative})
        if state is None:
            print("no checkpoint found: starting from the beginning", file=sys.stderr)
        elif state["fingerprint"] != fp:
            raise StudyError(f"--resume: the study in {ckpt.parent} was run with a different configuration "
                             "(crossbar, model, training, times or seed); run without --resume to start over, "
                             "or choose another --out folder")
        elif not state["trained"]:
            state = None
    if state is None:
        kept = io.clean_checkpoint(ckpt, MODEL_NAMES)
        if kept:
            print(f"{ckpt}: kept {len(kept)} file(s) that jaxcim did not write: "
                  f"{', '.join(p.name for p in kept[:5])}", file=sys.stderr)
    return state


def _load_models(models: Mapping[str, nnx.Module], path: Path, fp: str) -> str | None:
    """Restore trained models from ``path`` (written with `io.write_npz`); the reason it failed, or None."""
    try:
        _restore_models(models, io.read_npz(path, fp))
    except (io.CheckpointError, KeyError, ValueError, TypeError) as e:
        return f"{type(e).__name__}: {e}" if not isinstance(e, io.CheckpointError) else str(e)
    return None


def run_classifier_study(
    study: Mapping[str, Any], *, cfg: Any = None, instances: int | None = None, times: Sequence[float] | None = None,
    out_dir: str | Path | None = None, progress: bool | Callable | None = False, resume: bool = False,
) -> dict[str, Any]:
    """Run a ``classifier`` study: train, hardware-aware fine-tune, accuracy over chips and time.

    Args:
      study: the study table (as read from TOML, see the module docstring).
      cfg: the crossbar config; default built from ``study["crossbar"]`` (default the reram-neurram preset).
      instances: chip instances, overriding ``study["instances"]`` (default 256).
      times: read times in s, overriding ``study["times"]`` (default 1 s, 1 h, 1 day, 1 year).
      out_dir: folder for ``results.json`` and ``accuracy_vs_time.png`` (created); None writes nothing.
      progress: show progress bars over chunks of chips.
      resume: continue from the checkpoint in ``out_dir`` (trained models, finished chunks of chips); a
        checkpoint of a different study is an error (`jaxcim.study.StudyError`), none starts from the beginning.

    Returns:
      The results dict written to ``results.json``: the config, device, sizes, digital accuracies, and per
      model (``"digital-trained"``, ``"hwa-trained"``) the accuracy summary per time and every chip's accuracy.
    """
    study = check_classifier(study)
    if cfg is None:
        cfg = from_dict(study.get("crossbar", {"preset": "reram-neurram"}))
    n = _positive("instances", instances if instances is not None else study["instances"], hi=MAX_INSTANCES)
    ts = tuple(float(t) for t in (times if times is not None else study["times"]))
    if out_dir is None:
        return _run_study(study, cfg, n, ts, None, progress, resume)
    out = io.prepare_output(out_dir)
    with io.lock_output(out, name=io.job_lock_name()):
        return _run_study(study, cfg, n, ts, out, progress, resume)


def _run_study(study: dict[str, Any], cfg: Any, n: int, ts: tuple[float, ...], out: Path | None,
               progress: bool | Callable | None, resume: bool) -> dict[str, Any]:
    seed = study["seed"]
    model_spec, train, hwa = study["model"], study["train"], study["hwa"]
    key = jax.random.key(seed)
    t_start = time.perf_counter()

    ckpt = state = fp = None
    if out is not None:
        ckpt = out / "checkpoint"
        fp = _fingerprint(study, cfg, ts)
        state = _start_checkpoint(ckpt, fp, resume)

    model, images = _build_model(model_spec, seed)
    data = load_digits(images=images, seed=seed)
    train_data, test_data = (data.x_train, data.y_train), (data.x_test, data.y_test)
    models = {"digital-trained": model}
    with_hwa = int(hwa["epochs"]) > 0
    train_cfg = cfg.replace(**{"device.prog_noise_scale": cfg.device.prog_noise_scale * hwa["prog_noise_scale"]})
    if state is not None:  # same structures, weights from the checkpoint
        if with_hwa:
            models["hwa-trained"] = analogize(model, train_cfg, mode="hwa", rngs=nnx.Rngs(seed + 2))
        damage = _load_models(models, ckpt / "models.npz", fp)
        if damage is None:
            t_train = float(state["train_s"])
            print(f"resuming: trained models loaded from {ckpt}", file=sys.stderr)
        else:  # train again; the chunks of chips evaluated with the damaged models go too
            print(f"checkpoint {ckpt / 'models.npz'}: {damage}; training again", file=sys.stderr)
            state = None
            io.clean_checkpoint(ckpt, MODEL_NAMES)
            model, _ = _build_model(model_spec, seed)
            models = {"digital-trained": model}
    if state is None:
        fit(model, train_data, key=jax.random.fold_in(key, 1), epochs=int(train["epochs"]),
            batch_size=int(train["batch_size"]), learning_rate=float(train["learning_rate"]))
        if with_hwa:
            hwa_model = analogize(model, train_cfg, mode="hwa", rngs=nnx.Rngs(seed + 2))
            fit(hwa_model, train_data, key=jax.random.fold_in(key, 2), epochs=int(hwa["epochs"]),
                batch_size=int(hwa["batch_size"]), learning_rate=float(hwa["learning_rate"]),
                clip_sigma=hwa["clip_sigma"])
            models["hwa-trained"] = hwa_model
        t_train = time.perf_counter() - t_start
        if ckpt is not None:
            ckpt.mkdir(parents=True, exist_ok=True)
            io.write_npz(ckpt / "models.npz", fp, _model_arrays(models))
            io.atomic_write_json(ckpt / "state.json", {"fingerprint": fp, "trained": True, "train_s": t_train})

    x_calib = data.x_train[:128]
    results: dict[str, Any] = {
        "study": "classifier", "name": study.get("name", "classifier"), "config": cfg.to_dict(),
        "model": model_spec, "train": train, "hwa": hwa, "seed": seed, "instances": n, "times_s": list(ts),
        "n_test": int(len(data.y_test)), "device": str(jax.devices()[0].device_kind),
        "n_devices": jax.device_count(), "jax": jax.__version__, "python": platform.python_version(),
        "models": {},
    }
    print(f"classifier study: {model_spec['kind']} on digits, {cfg.name} crossbars "
          f"({cfg.mapping.rows}x{cfg.mapping.cols}), {n} chips, times {', '.join(map(format_time, ts))}")
    def chunk_size(name):  # a resumed evaluation keeps its saved chunk size, whatever the study says now
        saved = None if ckpt is None else _saved_chunk_size(ckpt / name, f"{fp}/{name}")
        return saved or study["chunk_size"] or None

    for name, m in models.items():
        res = evaluate(m, cfg, test_data, key=jax.random.fold_in(key, 3), n_instances=n, times=ts,
                       x_calib=x_calib, progress=bool(progress), checkpoint=None if ckpt is None else ckpt / name,
                       fingerprint=None if ckpt is None else f"{fp}/{name}",
                       chunk_size=chunk_size(name), memory_budget=study["memory_budget"] or None)
        results["models"][name] = {
            "digital_accuracy": res.digital_accuracy,
            "summary": res.summary(), "accuracies": np.round(res.accuracies, 6).tolist(),
        }
        print(f"\n{name}:\n{res.table()}")
    results["seconds"] = {"train": t_train, "total": time.perf_counter() - t_start}
    print(f"\n({results['seconds']['total']:.1f} s)")
    if out is not None:
        io.atomic_write_json(out / "results.json", results)
        results["files"] = ["results.json"]
        plot = accuracy_plot(results, out / "accuracy_vs_time.png")
        results["plots"] = [plot.name] if plot is not None else None
    return results


def accuracy_plot(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Accuracy vs read time: median and 5-95 % band across chips per model, digital accuracy dashed.
    Returns the PNG path, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ts = np.maximum(np.asarray(results["times_s"], float), 1e-3)
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (name, m) in enumerate(results["models"].items()):
        acc = 100 * np.asarray(m["accuracies"], float)
        p5, p50, p95 = np.percentile(acc, [5, 50, 95], axis=0)
        color = f"C{i}"
        ax.fill_between(ts, p5, p95, color=color, alpha=0.25)
        ax.plot(ts, p50, "o-", color=color, label=f"{name} (median, 5-95 % of chips)")
        ax.axhline(100 * m["digital_accuracy"], color=color, ls="--", lw=1)
    if len(ts) > 1 and ts.max() / ts.min() > 10:
        ax.set_xscale("log")
    ax.set_xlabel("time after programming (s)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{results['instances']} chips, {results['config']['name']} (dashed: digital)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["DEFAULT_TIMES", "accuracy_plot", "check_classifier", "run_classifier_study"]
