"""PNG plots of study results (matplotlib, the ``plots`` extra; every function returns None without it).

Time axes are logarithmic with ticks at 1 s, 1 min, 1 h, 1 d and 1 y; titles name the crossbar preset and the
instance count; lines are means (as in the printed tables) with the 5-95 % band across instances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jaxcim.progress import TIME_UNITS, format_time

TIME_TICKS = ((1.0, "1 s"), *((s, f"1 {u}") for u, s in reversed(TIME_UNITS)))
"""Tick positions (s) and labels of time axes."""


def pyplot():
    """matplotlib.pyplot with the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_times(times: Sequence[float]) -> np.ndarray:
    """Read times as x positions on a log axis: t = 0 (read right after programming) drawn at 0.1 s."""
    return np.maximum(np.asarray(times, float), 0.1)


def time_axis(ax, times: Sequence[float]) -> None:
    """A logarithmic time axis with ticks at 1 s, 1 min, 1 h, 1 d, 1 y (and "0" for t = 0) over the times."""
    tt = plot_times(times)
    ax.set_xscale("log")
    lo, hi = tt.min() / 2, tt.max() * 2
    ticks = [(s, label) for s, label in TIME_TICKS if lo <= s <= hi]
    if np.any(np.asarray(times, float) <= 0.1):
        ticks = [(0.1, "0"), *ticks]
    if len(ticks) < 2:  # a narrow range: label the read times themselves
        ticks = [(t, format_time(t)) for t in sorted(set(tt.tolist()))]
    ax.set_xticks([s for s, _ in ticks], [label for _, label in ticks])
    ax.minorticks_off()
    ax.set_xlim(lo, hi)
    ax.set_xlabel("time after programming")


def title(ax, what: str, cfg: Mapping[str, Any] | None, instances: int, unit: str = "instances") -> None:
    name = (cfg or {}).get("name") or "custom"
    ax.set_title(f"{what}\n{name} crossbar, {instances:,} {unit}", fontsize=9)


def save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path.name


def error_histogram(out: Path, rel_error: np.ndarray, times: Sequence[float], baseline: float,
                    cfg: Mapping[str, Any] | None) -> str | None:
    """Histogram of the relative MVM error across instances: one panel per read time, each on its own data range
    (distributions at different times, and the noise-free baseline, can lie far apart), mean marked, integer
    count ticks."""
    plt = pyplot()
    if plt is None:
        return None
    from matplotlib.ticker import MaxNLocator

    e = 100 * np.asarray(rel_error, float)
    cols = min(len(times), 2 if len(times) == 4 else 3)
    rows = -(-len(times) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols + 0.6, 2.6 * rows + 0.8), squeeze=False)
    for i, (ax, t) in enumerate(zip(axes.flat, times, strict=False)):
        lo, hi = np.percentile(e[:, i], [0.5, 99.5])
        pad = 0.05 * max(hi - lo, 1e-3 * max(abs(hi), 1e-9))
        bins = np.linspace(lo - pad, hi + pad, int(np.clip(2 * np.sqrt(len(e)), 8, 30)) + 1)
        ax.hist(np.clip(e[:, i], bins[0], bins[-1]), bins=bins, color=f"C{i}", alpha=0.8)
        ax.axvline(e[:, i].mean(), color="k", lw=1, label=f"mean {e[:, i].mean():.2f} %")
        ax.set_xlim(bins[0], bins[-1])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"read at t = {format_time(t)}", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
        if i % cols == 0:
            ax.set_ylabel("instances")
        if i >= len(times) - cols:
            ax.set_xlabel("relative MVM error (%)")
    for ax in list(axes.flat)[len(times):]:
        ax.set_visible(False)
    name = (cfg or {}).get("name") or "custom"
    fig.suptitle(f"MVM error ||y - xW|| / ||xW|| across {e.shape[0]:,} device instances, {name} crossbar\n"
                 f"(noise-free devices, converters only: {100 * baseline:.2f} %)", fontsize=9)
    return save(fig, out / "error_histogram.png")


def band_vs_time(ax, times, values: np.ndarray, color: str, label: str) -> None:
    """Mean line and 5-95 % band across instances (values: (n_instances, n_times)) on a time axis."""
    tt = plot_times(times)
    p5, p95 = np.percentile(values, [5, 95], axis=0)
    ax.fill_between(tt, p5, p95, color=color, alpha=0.25)
    ax.plot(tt, values.mean(axis=0), "o-", color=color, label=label)


def error_vs_time(out: Path, rel_error: np.ndarray, times: Sequence[float], baseline: float,
                  cfg: Mapping[str, Any] | None) -> str | None:
    """Mean relative MVM error and its 5-95 % band across instances vs read time."""
    plt = pyplot()
    if plt is None:
        return None
    e = 100 * np.asarray(rel_error, float)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    band_vs_time(ax, times, e, "C0", "mean, 5-95 % band across instances")
    ax.axhline(100 * baseline, color="k", ls="--", lw=1, label="noise-free devices")
    time_axis(ax, times)
    ax.set_ylabel("relative MVM error (%)")
    title(ax, "MVM error vs time after programming", cfg, e.shape[0])
    ax.legend(fontsize=8)
    return save(fig, out / "error_vs_time.png")


def accuracy_vs_time(path: Path, results: Mapping[str, Any]) -> str | None:
    """Mean test accuracy and 5-95 % band across chips per model vs read time; digital accuracy dashed."""
    plt = pyplot()
    if plt is None:
        return None
    times = results["study"]["times"]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    n = 0
    for i, (name, m) in enumerate(results["models"].items()):
        acc = 100 * np.asarray(m["accuracies"], float)
        n = acc.shape[0]
        band_vs_time(ax, times, acc, f"C{i}", f"{name}: mean, 5-95 % of chips")
        ax.axhline(100 * m["digital_accuracy"], color=f"C{i}", ls="--", lw=1, label=f"{name}: digital")
    time_axis(ax, times)
    ax.set_ylabel("test accuracy (%)")
    title(ax, "Classifier accuracy vs time after programming", results["crossbar"], n, "chips")
    fig.set_figheight(4.8)
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: the bands stay visible
    return save(fig, Path(path))


def series_style(i: int) -> dict[str, Any]:
    """Line style of the i-th series of a plot: marker, dash pattern and a shrinking hollow marker cycle together,
    so that series lying on top of each other (a knob with no effect) stay visible."""
    return dict(marker="osD^v<>p"[i % 8], linestyle=("-", "--", ":", "-.")[i % 4], markersize=7 - min(i, 4),
                fillstyle="full" if i == 0 else "none")


def sweep(out: Path, rows: Sequence[Mapping[str, Any]], names: Sequence[str], times: Sequence[float],
          cfg: Mapping[str, Any] | None, instances: int) -> str | None:
    """Mean error vs the first swept setting, one panel per read time, one line per value of the others; with
    no numeric setting, mean error vs read time, one line per configuration."""
    plt = pyplot()
    if plt is None:
        return None
    numeric = [n for n in names if all(isinstance(r[n], int | float) and not isinstance(r[n], bool) for r in rows)]
    if numeric:
        xname = numeric[0]
        others = [n for n in names if n != xname]
        fig, axes = plt.subplots(1, len(times), figsize=(min(4.2 * len(times), 14), 4), sharey=True, squeeze=False)
        for ax, t in zip(axes[0], times, strict=True):
            groups: dict[tuple, list] = {}
            for r in rows:
                if r["t"] == t:
                    groups.setdefault(tuple(r[n] for n in others), []).append(r)
            for i, (o, rs) in enumerate(groups.items()):
                label = ", ".join(f"{n} = {v}" for n, v in zip(others, o, strict=True)) or None
                ax.plot([r[xname] for r in rs], [100 * r["mean"] for r in rs], label=label, **series_style(i))
            ax.set_title(f"read at t = {format_time(t)}", fontsize=9)
            values = sorted({r[xname] for r in rows})
            if len(values) <= 12:  # tick the swept values themselves (no 4.5 bits)
                ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.set_xlabel(xname)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("mean relative MVM error (%)")
        if others:
            axes[0][-1].legend(fontsize=7)
        fig.suptitle(f"sweep of {', '.join(names)}: {(cfg or {}).get('name', 'custom')} crossbar, "
                     f"{instances:,} instances per point", fontsize=9)
    else:
        fig, ax = plt.subplots(figsize=(6.4, 4))
        groups = {}
        for r in rows:
            groups.setdefault(tuple(r[n] for n in names), []).append(r)
        for i, (o, rs) in enumerate(groups.items()):
            ax.plot(plot_times([r["t"] for r in rs]), [100 * r["mean"] for r in rs], **series_style(i),
                    label=", ".join(f"{n} = {v}" for n, v in zip(names, o, strict=True)) or None)
        time_axis(ax, times)
        ax.set_ylabel("mean relative MVM error (%)")
        title(ax, "sweep", cfg, instances)
        if names:
            ax.legend(fontsize=7)
    return save(fig, out / "sweep.png")


__all__ = ["TIME_TICKS", "accuracy_vs_time", "error_histogram", "error_vs_time", "sweep", "time_axis"]
