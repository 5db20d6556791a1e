"""The study registry and study files: `StudyType`, `register`, `load_study`, the shipped studies.

See `jaxcim.studies` for the file format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from jaxcim import io
from jaxcim.io import StudyError

MAX_INSTANCES = 2**31
"""Most device instances of a study (instance indices are uint32 inside the compiled chunks)."""
MAX_SEED = 2**32 - 1
"""Largest seed: ``jax.random.key`` keeps 32 bits of a seed (without x64), larger ones would repeat smaller ones."""
MAX_SIZE = 2**31 - 1
"""Largest batch, in_features, out_features and chunk_size."""

DEFAULT_STUDY = "classifier"
"""The study ``jaxcim run`` runs without arguments: a digits classifier on NeuRRAM-like ReRAM crossbars."""


@dataclass(frozen=True)
class StudyType:
    """A kind of study.

    Attributes:
      defaults: its keys with their default values (a key not listed is an error in a study file).
      run: ``run(study, cfg, out, *, resume, progress, log, **extra) -> results`` (the content of results.json).
      check: ``check(study, folder) -> study``: validates and normalizes the keys (``folder``: the study file's,
        for relative paths); raises `StudyError`, TypeError, ValueError or KeyError.
      table: ``table(results) -> str``: the summary printed after a run.
    """

    defaults: Mapping[str, Any]
    run: Callable[..., dict[str, Any]]
    check: Callable[[dict[str, Any], Path | None], dict[str, Any]] | None = None
    table: Callable[[Mapping[str, Any]], str] | None = None


STUDY_TYPES: dict[str, StudyType] = {}
"""The registered study types by name (`register`)."""
OTHER_COMMANDS = ("energy", "pareto")
"""Study types that have a command of their own instead of ``jaxcim run``."""


def register(name: str, stype: StudyType) -> StudyType:
    """Make a study type known to study files (``study = NAME``) and to ``jaxcim run``."""
    if not isinstance(stype, StudyType):
        raise TypeError(f"register({name!r}, ...) needs a StudyType, got {type(stype).__name__}")
    STUDY_TYPES[name] = stype
    return stype


# ----------------------------------------------------------------------------------------- shipped studies


def embedded_studies() -> list[str]:
    """Names of the studies shipped with jaxcim (``jaxcim run NAME``): `jaxcim/studies/NAME.toml`."""
    return sorted(p.name[:-5] for p in resources.files("jaxcim.studies").iterdir() if p.name.endswith(".toml"))


def embedded_study_path(name: str) -> Path:
    """The file of an embedded study (`embedded_studies`)."""
    return Path(str(resources.files("jaxcim.studies") / f"{name}.toml"))


def default_study_path() -> Path:
    """The embedded default study (`jaxcim/studies/classifier.toml`)."""
    return embedded_study_path(DEFAULT_STUDY)


def resolve_study(path: str | Path | None, default: str = DEFAULT_STUDY) -> Path:
    """A study file: ``path`` itself if it exists, else the embedded study of that name, else StudyError.

    Args:
      path: a file, an embedded study's name, or None for the embedded study ``default``.
    """
    if path is None:
        return embedded_study_path(default)
    p = Path(path)
    if not p.is_file() and p.suffix == "" and str(p) in embedded_studies():
        return embedded_study_path(str(p))
    if not p.is_file():
        raise StudyError(f"study file not found: {p} (embedded studies: {', '.join(embedded_studies())})")
    return p


def is_embedded(path: str | Path) -> bool:
    """Whether ``path`` is inside jaxcim's own studies folder (where nothing may be written)."""
    return Path(path).resolve().parent == default_study_path().resolve().parent


# ----------------------------------------------------------------------------------------- loading


def crossbar(data: Mapping[str, Any], where: str):
    """The `CrossbarConfig` of a study's ``[crossbar]`` table (StudyError naming the field if it is bad)."""
    from jaxcim.config import from_dict

    table = data.get("crossbar", {})
    if not isinstance(table, Mapping):
        raise StudyError(f"{where}: [crossbar] must be a table")
    try:
        return from_dict(table)
    except KeyError as e:
        raise StudyError(f"{where}: [crossbar]: {e.args[0]}") from None
    except (TypeError, ValueError) as e:
        raise StudyError(f"{where}: [crossbar]: {e}") from None


def as_study_error(e: Exception) -> StudyError:
    """A check's TypeError, ValueError or KeyError as the one-line `StudyError` of the command line."""
    return StudyError(e.args[0] if isinstance(e, KeyError) and e.args else str(e))


def load_study(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
               default: str = DEFAULT_STUDY):
    """Read a study file (default: the embedded study ``default``) and apply command-line overrides.

    Returns:
      (study, cfg): the study keys (all of them, defaults filled in, validated) and the `CrossbarConfig`.

    Raises:
      StudyError: missing/bad file, unknown key (the message lists the valid ones), out-of-range value.
    """
    path = resolve_study(path, default)
    data = io.read_toml(path)
    kind = data.get("study", "mvm")
    if kind not in STUDY_TYPES:
        hint = f" (run it with `jaxcim {kind} {path}`)" if kind in OTHER_COMMANDS else ""
        raise StudyError(f"{path}: unknown study type {kind!r}{hint}; valid: {', '.join(sorted(STUDY_TYPES))}")
    stype = STUDY_TYPES[kind]
    study = dict(stype.defaults)
    for key, value in data.items():
        if key == "crossbar":
            continue
        if key not in stype.defaults:
            raise StudyError(f"{path}: unknown key {key!r}; valid keys: crossbar, {', '.join(stype.defaults)}")
        study[key] = value
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in stype.defaults:
            raise StudyError(f"--{key.replace('_', '-')} does not apply to a {kind!r} study")
        study[key] = value
    cfg = crossbar(data, str(path))
    if stype.check is not None:
        try:
            study = stype.check(study, path.parent)
        except (KeyError, TypeError, ValueError) as e:
            raise as_study_error(e) from None
    return study, cfg


__all__ = [
    "DEFAULT_STUDY", "MAX_INSTANCES", "MAX_SEED", "MAX_SIZE", "STUDY_TYPES", "StudyError", "StudyType",
    "as_study_error", "crossbar", "default_study_path", "embedded_studies", "embedded_study_path", "is_embedded",
    "load_study", "register", "resolve_study",
]
