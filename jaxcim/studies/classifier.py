"""The ``classifier`` study of ``jaxcim run``: a digits classifier on crossbars, over chip instances and time.

Study file (TOML; `jaxcim/studies/classifier.toml` is the shipped default)::

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

The study trains the model digitally, fine-tunes a copy with hardware-aware training (Joshi et al., Nat.
Commun. 11, 2473 (2020)), and evaluates both on ``instances`` chips at every time; it prints a table and
writes ``results.json`` (`jaxcim.studies.results`). With an output folder it checkpoints into ``checkpoint/``
(atomic writes): the trained models, then every chunk of chips as it completes; ``resume=True`` (``jaxcim run
--resume``) continues from there and ends with the same results as an uninterrupted run. The output folder is
locked while the study runs, the model and chunk files carry the study's fingerprint (damaged or foreign ones
are computed again) and starting over deletes only the files jaxcim writes in ``checkpoint/`` (`jaxcim.io`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxcim import checks, distributed, io
from jaxcim.config import from_dict
from jaxcim.nn.convert import analogize
from jaxcim.nn.data import load_digits
from jaxcim.nn.evaluate import evaluate
from jaxcim.nn.models import CNN, MLP
from jaxcim.nn.train import fit
from jaxcim.progress import YEAR_S, format_time
from jaxcim.studies import plots
from jaxcim.studies import results as res_mod
from jaxcim.studies.base import MAX_INSTANCES, MAX_SEED, StudyType, register

DEFAULT_TIMES = (1.0, 3600.0, 86400.0, YEAR_S)
"""1 s, 1 hour, 1 day, 1 year (Julian) after programming, s."""
TOP_KEYS = ("study", "name", "seed", "instances", "times", "chunk_size", "memory_budget", "crossbar", "model",
            "train", "hwa")
SECTION_KEYS = {
    "model": {"kind": "mlp", "features": [64, 64, 10], "channels": [8, 16]},
    "train": {"epochs": 30, "batch_size": 64, "learning_rate": 3e-3},
    "hwa": {"epochs": 10, "batch_size": 64, "learning_rate": 1e-3, "clip_sigma": 2.5, "prog_noise_scale": 1.0},
}
CLASSIFIER_DEFAULTS: dict[str, Any] = {
    "study": "classifier", "name": "classifier", "seed": 0, "instances": 256, "chunk_size": 0, "memory_budget": 0,
    "times": list(DEFAULT_TIMES), "model": {}, "train": {}, "hwa": {},
}
MODEL_NAMES = ("digital-trained", "hwa-trained")
"""The models of a study; each one's chunks of chips are checkpointed in ``checkpoint/<name>/``."""


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


def check_classifier(study: Mapping[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Validate a classifier study table (keys, ranges) and fill in the defaults of its sections.

    Raises:
      KeyError: an unknown key (the message lists the valid ones). TypeError, ValueError: a bad value.
    """
    unknown = set(study) - set(TOP_KEYS)
    if unknown:
        raise KeyError(f"unknown key(s) {sorted(unknown)} in a classifier study; valid: {', '.join(TOP_KEYS)}")
    if study.get("study", "classifier") != "classifier":
        raise ValueError(f"a classifier study needs study = 'classifier', got {study.get('study')!r}")
    num = checks.check_number
    s = dict(study)
    s["seed"] = num("seed", s.get("seed", 0), 0, integer=True, hi=MAX_SEED)
    s["instances"] = num("instances", s.get("instances", 256), 0, lo_open=True, integer=True, hi=MAX_INSTANCES)
    s["chunk_size"] = num("chunk_size", s.get("chunk_size", 0), 0, integer=True, hi=MAX_INSTANCES)
    s["memory_budget"] = num("memory_budget", s.get("memory_budget", 0), 0, integer=True)
    s["times"] = checks.check_times(s.get("times", DEFAULT_TIMES))
    for name in SECTION_KEYS:
        s[name] = _section(s, name)
    if not isinstance(s["model"]["kind"], str) or s["model"]["kind"] not in ("mlp", "cnn"):
        raise ValueError(f"[model] kind must be 'mlp' or 'cnn', got {s['model']['kind']!r}")
    for key in ("features", "channels"):
        s["model"][key] = checks.check_int_list(f"[model] {key}", s["model"][key])
    s["hwa"]["clip_sigma"] = num("[hwa] clip_sigma", s["hwa"]["clip_sigma"], 0, lo_open=True)
    s["hwa"]["prog_noise_scale"] = num("[hwa] prog_noise_scale", s["hwa"]["prog_noise_scale"], 0)
    for sec in ("train", "hwa"):
        s[sec]["epochs"] = num(f"[{sec}] epochs", s[sec]["epochs"], 0, lo_open=sec == "train", integer=True)
        s[sec]["batch_size"] = num(f"[{sec}] batch_size", s[sec]["batch_size"], 0, lo_open=True, integer=True)
        s[sec]["learning_rate"] = num(f"[{sec}] learning_rate", s[sec]["learning_rate"], 0, lo_open=True)
    return s


def fingerprint(study: Mapping[str, Any], cfg: Any, times: Sequence[float]) -> str:
    """Hash of everything that determines the trained models and every chip's accuracy (not the chip count)."""
    keep = {k: v for k, v in study.items() if k not in ("instances", "name", "chunk_size", "memory_budget")}
    return io.fingerprint({"study": keep, "crossbar": cfg.to_dict(), "times": list(times)})


# ----------------------------------------------------------------------------------------- model checkpoints


def model_arrays(models: Mapping[str, nnx.Module]) -> dict[str, np.ndarray]:
    """Every state leaf of every model as a numpy array (PRNG keys as their key data), keyed ``name__i``."""
    out = {}
    for name, m in models.items():
        for i, leaf in enumerate(jax.tree.leaves(nnx.state(m))):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            out[f"{name}__{i}"] = np.asarray(leaf)
    return out


def restore_models(models: Mapping[str, nnx.Module], arrays: Mapping[str, np.ndarray]) -> None:
    """Load `model_arrays` output into freshly built models of the same structure (in place).

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


def _load_models(models: Mapping[str, nnx.Module], path: Path, fp: str) -> str | None:
    """Restore trained models from ``path`` (written with `io.write_npz`); the reason it failed, or None."""
    try:
        restore_models(models, io.read_npz(path, fp))
    except (io.CheckpointError, KeyError, ValueError, TypeError) as e:
        return f"{type(e).__name__}: {e}" if not isinstance(e, io.CheckpointError) else str(e)
    return None


def _log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------- the job


def run_classifier_study(
    study: Mapping[str, Any], *, cfg: Any = None, instances: int | None = None, times: Sequence[float] | None = None,
    out_dir: str | Path | None = None, progress: bool | Callable | None = False, resume: bool = False,
    netcdf: bool = False,
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
        checkpoint of a different study is an error (`jaxcim.io.StudyError`), none starts from the beginning.
      netcdf: also write ``results.nc`` (model x instance x time accuracies; needs xarray).

    Returns:
      The results dict written to ``results.json`` (`jaxcim.studies.results`): per model
      (``"digital-trained"``, ``"hwa-trained"``) the digital accuracy, the summary per time and every chip's
      accuracy under ``models``.
    """
    study = check_classifier(study)
    if cfg is None:
        cfg = from_dict(study.get("crossbar", {"preset": "reram-neurram"}))
    study.pop("crossbar", None)
    n = checks.check_number("instances", instances if instances is not None else study["instances"], 0,
                            lo_open=True, integer=True, hi=MAX_INSTANCES)
    study["instances"] = n
    study["times"] = checks.check_times(times if times is not None else study["times"])
    if out_dir is None:
        return _run(study, cfg, None, progress, resume, netcdf)
    out = io.prepare_output(out_dir)
    with io.lock_output(out, name=io.job_lock_name()):
        return _run(study, cfg, out, progress, resume, netcdf)


def _run(study: dict[str, Any], cfg: Any, out: Path | None, progress, resume: bool, netcdf: bool) -> dict[str, Any]:
    t_start = time.perf_counter()
    fp = fingerprint(study, cfg, study["times"])
    ckpt = None if out is None else out / "checkpoint"
    state = None
    if ckpt is not None:
        state = io.start_checkpoint(ckpt, fp, resume, {"trained": io.is_bool, "train_s": io.is_finite_nonnegative},
                                    _log, MODEL_NAMES, what="crossbar, model, training, times or seed")
        if state is not None and not state["trained"]:
            state = None
    data = load_digits(images=study["model"]["kind"] == "cnn", seed=study["seed"])
    models, t_train = _trained_models(study, cfg, data, ckpt, fp, state)
    t_train = t_train if t_train is not None else time.perf_counter() - t_start
    results = res_mod.header(study, cfg, fp)
    results.update({"metric": {"name": "test accuracy", "unit": "1", "better": "higher"}, "statistics": [],
                    "n_test": int(len(data.y_test)), "models": {}})
    ts, n = study["times"], study["instances"]
    print(f"classifier study: {study['model']['kind']} on digits, {cfg.name} crossbars "
          f"({cfg.mapping.rows}x{cfg.mapping.cols}), {n} chips, times {', '.join(map(format_time, ts))}")
    for name, m in models.items():
        res = _evaluate(m, name, study, cfg, data, ckpt, fp, progress)
        results["models"][name] = {"digital_accuracy": res.digital_accuracy, "summary": res.summary(),
                                   "accuracies": np.round(res.accuracies, 6).tolist()}
        results["statistics"] += res_mod.statistics(res.accuracies, ts, name)
        print(f"\n{name}:\n{res.table()}")
    total = time.perf_counter() - t_start
    results["timings"] = res_mod.timings(total, n * len(models), train_s=t_train)
    print(f"\n({total:.1f} s)")
    if out is not None:
        _write(results, out, netcdf)
    return results


def _trained_models(study, cfg, data, ckpt: Path | None, fp: str, state) -> tuple[dict[str, nnx.Module], float | None]:
    """The study's models, restored from the checkpoint (with the training time it recorded) or trained now
    (then checkpointed; training time None: measured by the caller)."""
    seed, hwa = study["seed"], study["hwa"]
    model, _ = _build_model(study["model"], seed)
    models = {"digital-trained": model}
    with_hwa = int(hwa["epochs"]) > 0
    train_cfg = cfg.replace(**{"device.prog_noise_scale": cfg.device.prog_noise_scale * hwa["prog_noise_scale"]})
    if state is not None:  # same structures, weights from the checkpoint
        if with_hwa:
            models["hwa-trained"] = analogize(model, train_cfg, mode="hwa", rngs=nnx.Rngs(seed + 2))
        damage = _load_models(models, ckpt / "models.npz", fp)
        if damage is None:
            _log(f"resuming: trained models loaded from {ckpt}")
            return models, float(state["train_s"])
        # train again; the chunks of chips evaluated with the damaged models go too
        _log(f"checkpoint {ckpt / 'models.npz'}: {damage}; training again")
        io.clean_checkpoint(ckpt, MODEL_NAMES)
        model, _ = _build_model(study["model"], seed)
        models = {"digital-trained": model}
    t0 = time.perf_counter()
    _train(models, model, study, train_cfg, data, with_hwa)
    t_train = time.perf_counter() - t0
    if ckpt is not None and distributed.is_primary():
        ckpt.mkdir(parents=True, exist_ok=True)
        io.write_npz(ckpt / "models.npz", fp, model_arrays(models))
        io.atomic_write_json(ckpt / "state.json", {"fingerprint": fp, "trained": True, "train_s": t_train})
    return models, None


def _train(models: dict[str, nnx.Module], model: nnx.Module, study, train_cfg, data, with_hwa: bool) -> None:
    """Digital training of ``model``, then (``with_hwa``) hardware-aware fine-tuning of an analog copy."""
    key, seed, train, hwa = jax.random.key(study["seed"]), study["seed"], study["train"], study["hwa"]
    train_data = (data.x_train, data.y_train)
    fit(model, train_data, key=jax.random.fold_in(key, 1), epochs=int(train["epochs"]),
        batch_size=int(train["batch_size"]), learning_rate=float(train["learning_rate"]))
    if with_hwa:
        hwa_model = analogize(model, train_cfg, mode="hwa", rngs=nnx.Rngs(seed + 2))
        fit(hwa_model, train_data, key=jax.random.fold_in(key, 2), epochs=int(hwa["epochs"]),
            batch_size=int(hwa["batch_size"]), learning_rate=float(hwa["learning_rate"]),
            clip_sigma=hwa["clip_sigma"])
        models["hwa-trained"] = hwa_model


def _evaluate(model, name: str, study, cfg, data, ckpt: Path | None, fp: str, progress):
    """Accuracy of ``study["instances"]`` chips of ``model`` at every time (`jaxcim.nn.evaluate`), resumable."""
    folder = None if ckpt is None else ckpt / name
    sub_fp = None if ckpt is None else f"{fp}/{name}"
    # a resumed evaluation keeps its saved chunk size, whatever the study says now
    chunk = io.saved_chunk_size(folder, sub_fp) or study["chunk_size"] or None
    return evaluate(model, cfg, (data.x_test, data.y_test), key=jax.random.fold_in(jax.random.key(study["seed"]), 3),
                    n_instances=study["instances"], times=tuple(study["times"]), x_calib=data.x_train[:128],
                    progress=bool(progress), checkpoint=folder, fingerprint=sub_fp, chunk_size=chunk,
                    memory_budget=study["memory_budget"] or None)


def _write(results: dict[str, Any], out: Path, netcdf: bool) -> None:
    """results.json, optionally results.nc, and accuracy_vs_time.png (process 0 only)."""
    results["files"] = ["results.json"] + (["results.nc"] if netcdf else [])
    if not distributed.is_primary():
        results["plots"] = None
        return
    if netcdf:
        acc = np.asarray([m["accuracies"] for m in results["models"].values()])
        res_mod.write_netcdf(out / "results.nc", results, {"accuracy": (("model", "instance", "time"), acc)},
                             {"model": list(results["models"]), "instance": np.arange(acc.shape[1]),
                              "time": np.asarray(results["study"]["times"], float)})
    io.atomic_write_json(out / "results.json", results)
    plot = plots.accuracy_vs_time(out / "accuracy_vs_time.png", results)
    results["plots"] = [plot] if plot is not None else None


def accuracy_plot(results: Mapping[str, Any], path: str | Path) -> Path | None:
    """Accuracy vs read time (`jaxcim.studies.plots.accuracy_vs_time`); the PNG path, or None without matplotlib."""
    return Path(path) if plots.accuracy_vs_time(Path(path), results) is not None else None


def _run_type(study, cfg, out, *, resume=False, log=None, progress=True, netcdf=False):
    return run_classifier_study(study, cfg=cfg, out_dir=out, progress=progress, resume=resume, netcdf=netcdf)


register("classifier", StudyType(CLASSIFIER_DEFAULTS, _run_type, check_classifier))

__all__ = ["CLASSIFIER_DEFAULTS", "DEFAULT_TIMES", "MODEL_NAMES", "accuracy_plot", "check_classifier", "fingerprint",
           "model_arrays", "restore_models", "run_classifier_study"]
