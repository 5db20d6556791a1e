"""The ``results.json`` schema shared by every study type, and the optional labelled-array (netCDF) output.

``results.json`` (schema `SCHEMA`) holds, for any study type:

- ``schema``: ``"jaxcim.results/1"``.
- ``study``: the validated study keys, defaults filled in (``study["study"]`` is the type, ``study["name"]``).
- ``crossbar``: the crossbar config (`jaxcim.CrossbarConfig.to_dict`, the ``[crossbar]`` table's full form).
- ``fingerprint``: hash of everything that determines the per-instance results (checkpoints carry it).
- ``versions``: jaxcim, jax, numpy, python. ``device``: platform, kind, count (all processes), processes.
- ``timings``: ``total_s``, ``instances_run``, ``resumed_from`` (instances taken from a checkpoint),
  ``instances_per_s``, ``chunk_size``, ``first_chunk_s_incl_compile`` (None where not measured) and, for
  studies that train, ``train_s``.
- ``metric``: ``{"name", "unit", "better"}``: what the statistics measure (relative MVM error, "lower";
  test accuracy, "higher"), as fractions.
- ``statistics``: one row per series and read time: ``{"series", "t" (s), "n", "mean", "std", "min", "p5",
  "p50", "p95", "max"}`` across instances (series: ``"analog"`` for mvm, the model name for classifier).
- ``files`` and ``plots``: the files written next to it (plots None without matplotlib).

plus the type's own details: mvm ``baseline_rel_error_noise_free``, ``column_statistics``, ``learned_mapping``;
classifier ``models`` (per model: ``digital_accuracy``, ``summary``, every chip's ``accuracies``) and ``n_test``.
Per-instance values are in ``instances.npz`` (mvm), and with ``--netcdf`` in ``results.nc``: an xarray Dataset
(dimensions instance x time [x column] or model x instance x time) with the study, crossbar and versions as
attributes (JSON strings), readable with ``xarray.open_dataset``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxcim import io
from jaxcim.version import __version__

SCHEMA = "jaxcim.results/1"
"""The version of the ``results.json`` layout (see the module docstring)."""

STAT_KEYS = ("mean", "std", "min", "p5", "p50", "p95", "max")


def versions() -> dict[str, str]:
    import jax

    return {"jaxcim": __version__, "jax": jax.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def device() -> dict[str, Any]:
    import jax

    return {"platform": jax.default_backend(), "kind": jax.devices()[0].device_kind, "count": len(jax.devices()),
            "processes": jax.process_count()}


def header(study: Mapping[str, Any], cfg, fingerprint: str | None) -> dict[str, Any]:
    """The keys every results.json starts with: schema, study, crossbar, fingerprint, versions, device."""
    return {"schema": SCHEMA, "study": dict(study), "crossbar": cfg.to_dict(), "fingerprint": fingerprint,
            "versions": versions(), "device": device()}


def timings(total_s: float, instances_run: int, *, resumed_from: int = 0, chunk_size: int | None = None,
            first_chunk_s: float | None = None, **extra: float) -> dict[str, Any]:
    """The ``timings`` entry (see the module docstring)."""
    return {"total_s": total_s, "instances_run": instances_run, "resumed_from": resumed_from,
            "instances_per_s": instances_run / total_s if instances_run and total_s > 0 else None,
            "chunk_size": chunk_size, "first_chunk_s_incl_compile": first_chunk_s, **extra}


def statistics(values: np.ndarray, times: Sequence[float], series: str) -> list[dict[str, Any]]:
    """Rows of ``statistics`` for per-instance values (n_instances, n_times): mean, std, percentiles per time."""
    v = np.asarray(values, np.float64)
    q = np.percentile(v, [5, 50, 95], axis=0)
    return [{"series": series, "t": float(t), "n": int(v.shape[0]), "mean": float(v[:, i].mean()),
             "std": float(v[:, i].std()), "min": float(v[:, i].min()), "p5": float(q[0, i]), "p50": float(q[1, i]),
             "p95": float(q[2, i]), "max": float(v[:, i].max())} for i, t in enumerate(times)]


def write_netcdf(path: str | Path, results: Mapping[str, Any], data_vars: Mapping[str, tuple[tuple[str, ...], Any]],
                 coords: Mapping[str, Any]) -> Path:
    """Write per-instance arrays as a netCDF file (an xarray Dataset), atomically, the study as attributes.

    Args:
      results: the results dict (its study, crossbar, versions, fingerprint become attributes).
      data_vars: ``{name: (dimension names, array)}``. coords: ``{dimension: values}``.

    Raises:
      StudyError: xarray (or its netCDF engine, scipy) is not installed.
    """
    try:
        import xarray as xr
    except ImportError:
        raise io.StudyError('netCDF output needs xarray: pip install "jaxcim[netcdf]"') from None
    attrs = {"schema": SCHEMA, "fingerprint": str(results.get("fingerprint")),
             **{k: json.dumps(results[k], default=io.json_default) for k in ("study", "crossbar", "versions")
                if k in results}}
    ds = xr.Dataset({k: (dims, np.asarray(v)) for k, (dims, v) in data_vars.items()}, coords=dict(coords),
                    attrs=attrs)
    path = Path(path)
    try:
        data = ds.to_netcdf()  # bytes (netCDF3 through scipy; netCDF4 engines need a file name)
    except (ValueError, ImportError) as e:
        raise io.StudyError(f"cannot write netCDF ({e}); pip install scipy (or netCDF4)") from None
    io.atomic_write_bytes(path, bytes(data))
    return path


__all__ = ["SCHEMA", "STAT_KEYS", "device", "header", "statistics", "timings", "versions", "write_netcdf"]
