"""Calibration from measured cells: fit `jaxcim.devices.measured.MeasuredDevice` to a table of reads.

    result = jc.calibrate("cells.csv")                    # or .npz, or a dict of arrays
    print(result.table())                                 # estimates, standard errors, 95 % intervals
    result.plot()                                         # measured vs model quantiles per level, time, T
    cfg = cfg.replace(device=result.device)               # use it everywhere (program, read, nn.evaluate, ...)
    chips = result.sample_models(jax.random.key(0), 16)   # each chip's device drawn from the uncertainty

The table has one row per read: ``cell`` (any label: reads of one cell share its programming and retention draws),
``target`` (S) or ``level`` (integer, evenly spaced levels in [g_min, g_max]), ``time`` (s since programming),
``temperature`` (K; optional, default 298.15 K; or ``temperature_c`` in C) and ``conductance`` (S, measured). A
row (t, T) means "t seconds since programming, all spent at T".

The fit is maximum likelihood of the model's closed-form law of each cell's reads (a linear Gaussian random-effects
model, Laird & Ware 1982) through the differentiable device model, minimized with optax's L-BFGS and polished
with Newton steps on the exact Hessian. Uncertainty is the Laplace approximation: the inverse Hessian of the
negative log-likelihood (`jax.hessian`) on an unconstrained parameterization (polynomial coefficients as they
are, log of the activation energy), asymptotically the covariance of the maximum-likelihood estimate (MacKay 1992;
Bishop, Pattern Recognition and Machine Learning, 2006, Sec. 4.4). Goodness of fit compares the measured quantiles
of every (level, time, temperature) group with the model's.

References:
  N. M. Laird, J. H. Ware, "Random-effects models for longitudinal data", Biometrics 38, 963-974 (1982).
  D. J. C. MacKay, "A practical Bayesian framework for backpropagation networks", Neural Comput. 4, 448 (1992).
  D. C. Liu, J. Nocedal, "On the limited memory BFGS method for large scale optimization", Math. Program. 45,
  503-528 (1989).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcim.devices.custom import poly
from jaxcim.devices.measured import POLY_FIELDS, ROOM_TEMPERATURE, MeasuredDevice, cell_log_likelihood

COLUMNS = ("cell", "target", "level", "time", "temperature", "temperature_c", "conductance")
"""Column names a measurement table may have (``target`` or ``level``; ``temperature`` or ``temperature_c``)."""
DEFAULT_DEGREES = {"prog_mean": 2, "prog_sigma": 2, "drift_nu": 1, "spread_growth": 1, "read_noise": 1,
                   "read_noise_growth": 1}
"""Polynomial degrees fitted by default (lowered to the number of distinct targets - 1)."""
TERMS = (*POLY_FIELDS, "activation_energy")
"""The terms `calibrate` can fit."""
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
"""Quantiles compared in the goodness of fit."""
EXAMPLE_TABLE = Path(__file__).parent / "data" / "reram_retention.csv"
"""A SYNTHETIC retention-bake table of 8-level ReRAM cells at 25-150 C over a week (generated, not measured: see
``jaxcim/data/make_reram_retention.py``), shipped to try `calibrate` on."""
_VAR_FLOOR = 1e-12
"""Variance added to each read, in units of g_max^2 (a 1e-6 g_max floor keeps the covariance invertible)."""


# ----------------------------------------------------------------------------------------- the table


@dataclasses.dataclass(frozen=True)
class Measurements:
    """A validated measurement table (one entry per read).

    Attributes:
      cell: integer cell index per read, (n,); ``cell_labels[cell]`` is the label in the file.
      target: target conductance, S, (n,).
      time: time since programming, s, (n,).
      temperature: temperature the time was spent at, K, (n,).
      conductance: measured conductance, S, (n,).
      cell_labels: the distinct cell labels, (n_cells,).
      level: the level per read if the table gave levels, else None.
    """

    cell: np.ndarray
    target: np.ndarray
    time: np.ndarray
    temperature: np.ndarray
    conductance: np.ndarray
    cell_labels: np.ndarray
    level: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.cell.size)


def _where(source: str, row: int, line: int | None) -> str:
    return f"{source}: row {row}" + (f" (line {line})" if line is not None else "")


def _numbers(source: str, name: str, values: Sequence[Any], lines: Sequence[int] | None) -> np.ndarray:
    """Column ``name`` as float64, naming the first row that is not a finite number."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            if isinstance(v, bool | np.bool_):
                raise ValueError
            out[i] = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{_where(source, i + 1, lines[i] if lines else None)}, column {name!r}: "
                             f"{v!r} is not a number") from None
        if not math.isfinite(out[i]):
            raise ValueError(f"{_where(source, i + 1, lines[i] if lines else None)}, column {name!r}: "
                             f"{v!r} is not finite")
    return out


def _check_column_range(source, name, values, lines, ok: Callable[[np.ndarray], np.ndarray], what: str):
    bad = np.flatnonzero(~ok(values))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{_where(source, i + 1, lines[i] if lines else None)}, column {name!r}: "
                         f"{float(values[i])!r} {what}")


def _read_csv(path: Path) -> tuple[dict[str, list[str]], list[int]]:
    """Columns of a CSV file as lists of strings, and the file line of every row; '#' lines are comments."""
    with open(path, newline="") as f:
        rows = [(i + 1, r) for i, r in enumerate(csv.reader(f)) if r and not r[0].lstrip().startswith("#")]
    if not rows:
        raise ValueError(f"{path}: no header row (expected columns cell, target or level, time, conductance)")
    header = [h.strip() for h in rows[0][1]]
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: a column name appears twice in the header {header}")
    cols: dict[str, list[str]] = {h: [] for h in header}
    lines = []
    for n, (line, r) in enumerate(rows[1:], start=1):
        if len(r) != len(header):
            raise ValueError(f"{path}: row {n} (line {line}) has {len(r)} fields, the header has {len(header)} "
                             f"({', '.join(header)})")
        for h, v in zip(header, r, strict=True):
            cols[h].append(v.strip())
        lines.append(line)
    return cols, lines


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            cols = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable .npz file ({e})") from None
    for k, v in cols.items():
        if v.ndim != 1:
            raise ValueError(f"{path}: column {k!r} must be a 1-d array, got shape {v.shape}")
    return cols


def load_measurements(
    data: str | os.PathLike | Mapping[str, Any], *, g_min: float | None = None, g_max: float | None = None,
    levels: int | None = None,
) -> Measurements:
    """Read and validate a measurement table from a CSV file, an NPZ file or a dict of 1-d arrays.

    Args:
      data: path of a ``.csv`` (header row of column names; lines starting with '#' are comments) or ``.npz``
        (one 1-d array per column), or a mapping {column: values}. Columns: ``cell``, ``target`` (S) or
        ``level``, ``time`` (s), ``conductance`` (S), optional ``temperature`` (K) or ``temperature_c`` (C).
      g_min, g_max: the conductance range, S; needed with ``level`` (levels are evenly spaced in it).
      levels: the number of levels (default: the largest level + 1).

    Returns:
      `Measurements`. Malformed input raises ValueError naming the file, row and column.
    """
    if isinstance(data, Mapping):
        source, cols, lines = "table", {k: list(np.asarray(v).ravel()) for k, v in data.items()}, None
    else:
        path = Path(data)
        if not path.is_file():
            raise ValueError(f"measurement table {str(path)!r} does not exist")
        source = str(path)
        if path.suffix.lower() == ".npz":
            cols, lines = {k: list(v) for k, v in _read_npz(path).items()}, None
        elif path.suffix.lower() == ".csv":
            cols, lines = _read_csv(path)
        else:
            raise ValueError(f"{path}: a measurement table is a .csv or .npz file, got suffix {path.suffix!r}")
    return _validate(source, cols, lines, g_min, g_max, levels)


def _required_columns(source: str, cols: Mapping[str, list]) -> None:
    unknown = [k for k in cols if k not in COLUMNS]
    if unknown:
        raise ValueError(f"{source}: unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
    for name in ("cell", "time", "conductance"):
        if name not in cols:
            raise ValueError(f"{source}: missing column {name!r} (columns: cell, target or level, time, "
                             f"temperature, conductance)")
    if ("target" in cols) == ("level" in cols):
        raise ValueError(f"{source}: give exactly one of the columns 'target' (S) and 'level'")
    if "temperature" in cols and "temperature_c" in cols:
        raise ValueError(f"{source}: give one of the columns 'temperature' (K) and 'temperature_c' (C)")
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"{source}: columns have different lengths {lengths}")
    if not next(iter(lengths.values())):
        raise ValueError(f"{source}: the table has no rows")


def _targets(source, cols, lines, g_min, g_max, levels):
    if "target" in cols:
        target = _numbers(source, "target", cols["target"], lines)
        _check_column_range(source, "target", target, lines, lambda v: v >= 0, "is negative (S)")
        return target, None
    level = _numbers(source, "level", cols["level"], lines)
    _check_column_range(source, "level", level, lines, lambda v: (v >= 0) & (v == np.round(v)),
                        "is not a level (an integer >= 0)")
    if g_min is None or g_max is None:
        raise ValueError(f"{source}: a table of levels needs g_min and g_max (the range the levels span, S)")
    n_levels = int(level.max()) + 1 if levels is None else int(levels)
    _check_column_range(source, "level", level, lines, lambda v: v < n_levels, f"is >= levels = {n_levels}")
    if n_levels < 2:
        raise ValueError(f"levels must be >= 2, got {n_levels}")
    return g_min + level / (n_levels - 1) * (g_max - g_min), level.astype(np.int64)


def _validate(source, cols, lines, g_min, g_max, levels) -> Measurements:
    _required_columns(source, cols)
    target, level = _targets(source, cols, lines, g_min, g_max, levels)
    time = _numbers(source, "time", cols["time"], lines)
    _check_column_range(source, "time", time, lines, lambda v: v >= 0, "is negative (s since programming)")
    g = _numbers(source, "conductance", cols["conductance"], lines)
    if "temperature_c" in cols:
        temp = _numbers(source, "temperature_c", cols["temperature_c"], lines) + 273.15
        _check_column_range(source, "temperature_c", temp - 273.15, lines, lambda v: v > -273.15,
                            "is below absolute zero (C)")
    elif "temperature" in cols:
        temp = _numbers(source, "temperature", cols["temperature"], lines)
        _check_column_range(source, "temperature", temp, lines, lambda v: v > 0, "is not > 0 K")
    else:
        temp = np.full(time.shape, ROOM_TEMPERATURE)
    labels = np.asarray([str(c).strip() for c in cols["cell"]])
    empty = np.flatnonzero(labels == "")
    if empty.size:
        i = int(empty[0])
        raise ValueError(f"{_where(source, i + 1, lines[i] if lines else None)}, column 'cell': empty cell label")
    cell_labels, cell = np.unique(labels, return_inverse=True)
    first = np.full(cell_labels.size, -1)
    for i, c in enumerate(cell):
        if first[c] < 0:
            first[c] = i
        elif target[i] != target[first[c]]:
            raise ValueError(f"{_where(source, i + 1, lines[i] if lines else None)}, column "
                             f"{'level' if level is not None else 'target'!r}: cell {str(cell_labels[c])!r} has "
                             f"target {float(target[i])!r} S here and {float(target[first[c]])!r} S in row "
                             f"{first[c] + 1}")
    return Measurements(cell=cell, target=target, time=time, temperature=temp, conductance=g,
                        cell_labels=cell_labels, level=level)


# ----------------------------------------------------------------------------------------- the likelihood


class Spec(NamedTuple):
    """The shape of the parameter vector (static): (polynomial field, number of coefficients) for every field of
    `POLY_FIELDS`, then log E_a. Which entries are fitted is a boolean mask beside it, so that fits of different
    terms share one compilation."""

    polys: tuple[tuple[str, int], ...]

    def names(self) -> list[str]:
        return [f"{name}[{k}]" for name, n in self.polys for k in range(n)] + ["activation_energy"]

    @property
    def size(self) -> int:
        return sum(n for _, n in self.polys) + 1


class Cells(NamedTuple):
    """Reads grouped by cell and padded: arrays (n_cells, max_reads), in units of g_max; mask marks reads."""

    x: jax.Array
    y: jax.Array
    time: jax.Array
    temperature: jax.Array
    mask: jax.Array


def _cells(m: Measurements, g_max: float) -> tuple[Cells, np.ndarray]:
    """Pad the reads per cell; also returns the (cell, slot) position of every read."""
    counts = np.bincount(m.cell, minlength=m.cell_labels.size)
    order = np.argsort(m.cell, kind="stable")
    slot = np.empty(m.n, dtype=np.int64)
    slot[order] = np.arange(m.n) - np.repeat(np.cumsum(counts) - counts, counts)
    # cells padded to a power of two (>= 64): tables of similar size share one compilation
    shape = (max(64, 1 << (m.cell_labels.size - 1).bit_length()), int(counts.max()))

    def pad(values, fill):
        out = np.full(shape, fill, dtype=np.float64)
        out[m.cell, slot] = values
        return out

    cells = Cells(x=pad(m.target / g_max, 0.0), y=pad(m.conductance / g_max, 0.0), time=pad(m.time, 0.0),
                  temperature=pad(m.temperature, ROOM_TEMPERATURE), mask=pad(1.0, 0.0) > 0)
    return cells, slot


def with_theta(base: MeasuredDevice, theta: jax.Array, spec: Spec) -> MeasuredDevice:
    """``base`` with its polynomials and activation energy set from the unconstrained vector ``theta``
    (coefficients as they are, then log E_a)."""
    changes: dict[str, Any] = {}
    i = 0
    for name, n in spec.polys:
        changes[name] = tuple(theta[i + k] for k in range(n))
        i += n
    return base.replace(activation_energy=jnp.exp(theta[i]), **changes)


def neg_log_likelihood(theta: jax.Array, base: MeasuredDevice, cells: Cells, spec: Spec) -> jax.Array:
    """Negative log-likelihood of the reads (in units where g_max = 1: ``base.g_max`` must be 1)."""
    dev = with_theta(base, theta, spec)
    mean, a, b, q2 = dev.moments(cells.x, cells.time, cells.temperature)
    q2 = q2 + _VAR_FLOOR
    ll = jax.vmap(cell_log_likelihood)(cells.y - mean, a, b, q2, cells.mask)
    return -jnp.sum(ll)


# ----------------------------------------------------------------------------------------- the fit


def _lbfgs(f, theta0, max_steps: int, tol: float):
    """Minimize ``f`` from ``theta0`` with optax's L-BFGS (zoom line search) until the gradient's largest entry is
    below ``tol`` or ``max_steps``; returns (theta, steps)."""
    opt = optax.lbfgs(memory_size=20)
    value_and_grad = optax.value_and_grad_from_state(f)

    def step(carry):
        theta, state, _, i = carry
        value, grad = value_and_grad(theta, state=state)
        updates, state = opt.update(grad, state, theta, value=value, grad=grad, value_fn=f)
        return optax.apply_updates(theta, updates), state, jnp.max(jnp.abs(grad)), i + 1

    def go_on(carry):
        _, _, gmax, i = carry
        return (i < max_steps) & (gmax > tol)

    init = (theta0, opt.init(theta0), jnp.asarray(jnp.inf, theta0.dtype), jnp.asarray(0))
    theta, _, _, steps = jax.lax.while_loop(go_on, step, init)
    return theta, steps


@jax.jit(static_argnames=("spec",))
def _value_grad_hessian(theta, base, cells, spec: Spec):
    """Negative log-likelihood, its gradient and its Hessian at ``theta``."""

    def f(th):
        return neg_log_likelihood(th, base, cells, spec)

    return f(theta), jax.grad(f)(theta), jax.hessian(f)(theta)


@jax.jit(static_argnames=("spec", "max_steps"))
def _minimize(theta0, scale, base, cells, spec: Spec, max_steps: int):
    """L-BFGS from ``theta0`` in the coordinates phi = (theta - theta0) / scale; returns (theta, steps)."""

    def g(phi):
        return neg_log_likelihood(theta0 + scale * phi, base, cells, spec)

    phi, steps = _lbfgs(g, jnp.zeros_like(theta0), max_steps, 1e-6)
    return theta0 + scale * phi, steps


def _newton(vgh: Callable, theta: np.ndarray, max_steps: int = 10):
    """Newton steps with step halving on ``vgh(theta) -> (f, grad, hessian)`` until the Newton decrement
    grad^T H^-1 grad is below 1e-9: converges the L-BFGS result to the precision the Laplace approximation
    needs. Returns (theta, f, grad, hessian) at the last point."""
    f, grad, hess = vgh(theta)
    for _ in range(max_steps):
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or grad @ step < 1e-9:
            break
        for _ in range(20):
            f_new, g_new, h_new = vgh(theta - step)
            if np.isfinite(f_new) and f_new <= f + 1e-12 * abs(f):
                theta, f, grad, hess = theta - step, f_new, g_new, h_new
                break
            step = step / 2
        else:
            break
    return theta, f, grad, hess


def _fit(theta0: np.ndarray, free: np.ndarray, base: MeasuredDevice, cells: Cells, spec: Spec, max_steps: int):
    """Maximum likelihood over the ``free`` entries of the vector, from ``theta0``: L-BFGS (optax) on a vector
    preconditioned by the Hessian's diagonal at the start, then Newton steps. Returns (theta (all entries),
    negative log-likelihood, gradient and Hessian over the free entries, L-BFGS steps)."""

    def vgh(theta_free):
        theta = theta0.copy()
        theta[free] = theta_free
        f, g, h = (np.asarray(v, dtype=np.float64) for v in
                   _value_grad_hessian(jnp.asarray(theta), base, cells, spec=spec))
        return f, g[free], h[np.ix_(free, free)]

    h0 = np.abs(np.diag(vgh(theta0[free])[2]))
    scale = np.zeros(theta0.size)
    # unit curvature per free coordinate at the start; fixed entries do not move
    scale[free] = 1.0 / np.sqrt(np.where(h0 > 1e-12, h0, 1.0))
    theta, steps = _minimize(jnp.asarray(theta0), jnp.asarray(scale), base, cells, spec=spec, max_steps=max_steps)
    theta = np.asarray(theta, dtype=np.float64)
    if not np.all(np.isfinite(theta)):
        theta = theta0
    theta_free, f, grad, hess = _newton(vgh, theta[free])
    theta = theta0.copy()
    theta[free] = theta_free
    return theta, float(f), grad, hess, int(steps)


def _initial_theta(m: Measurements, g_max: float, spec: Spec, free: np.ndarray,
                   activation_energy: float) -> np.ndarray:
    """A data-driven start: mean error and spread from the earliest reads, small retention and read noise; entries
    not fitted are 0 (log ``activation_energy`` for the activation energy)."""
    x, y = m.target / g_max, m.conductance / g_max
    early = m.time <= np.min(m.time)
    xs = np.unique(x[early])
    resid = y[early] - x[early]
    std0 = float(np.std(resid)) or 1e-3
    stds = np.asarray([np.std(resid[x[early] == v]) if np.sum(x[early] == v) > 1 else std0 for v in xs])
    u_max = float(np.log1p(np.max(m.time)))
    start = {
        "prog_mean": lambda k: np.polynomial.polynomial.polyfit(x[early], resid, k - 1) if xs.size >= k
        else np.r_[np.mean(resid), np.zeros(k - 1)],
        "prog_sigma": lambda k: np.polynomial.polynomial.polyfit(xs, np.maximum(stds, 0.1 * std0), k - 1)
        if xs.size >= k else np.r_[std0, np.zeros(k - 1)],
        "drift_nu": lambda k: np.zeros(k),
        "spread_growth": lambda k: np.r_[0.2 * std0 / max(u_max, 1.0), np.zeros(k - 1)],
        "read_noise": lambda k: np.r_[0.3 * std0, np.zeros(k - 1)],
        "read_noise_growth": lambda k: np.r_[0.1 * std0 / math.sqrt(max(u_max, 1.0)), np.zeros(k - 1)],
    }
    theta = np.zeros(spec.size)
    i = 0
    for name, n in spec.polys:
        k = int(np.sum(free[i:i + n]))
        if k:
            theta[i:i + k] = start[name](k)
        i += n
    theta[-1] = math.log(activation_energy)
    return theta


def _canonical_signs(theta: np.ndarray, spec: Spec, x_mid: float) -> np.ndarray:
    """Spreads enter the likelihood squared: the sign (+1/-1) per entry that makes every spread polynomial
    positive at ``x_mid``."""
    sign = np.ones(theta.size)
    i = 0
    for name, n in spec.polys:
        spread = name in ("prog_sigma", "spread_growth", "read_noise", "read_noise_growth")
        if spread and poly(theta[i:i + n], x_mid) < 0:
            sign[i:i + n] = -1.0
        i += n
    return sign


def _spec_for(m: Measurements, degrees: Mapping[str, int] | None,
              fit: Iterable[str] | None) -> tuple[Spec, np.ndarray, list[str]]:
    """What to fit: the requested terms, or those the data identify; the vector's shape, the mask of its fitted
    entries, and notes on what was left out and why."""
    notes = []
    deg = dict(DEFAULT_DEGREES)
    if degrees is not None:
        for k, v in degrees.items():
            if k not in DEFAULT_DEGREES:
                raise ValueError(f"degrees: unknown term {k!r}; terms are {', '.join(DEFAULT_DEGREES)}")
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise ValueError(f"degrees[{k!r}] must be an integer >= 0, got {v!r}")
            deg[k] = int(v)
    n_targets = np.unique(m.target).size
    for k in deg:
        if deg[k] > n_targets - 1:
            notes.append(f"{k}: degree lowered from {deg[k]} to {n_targets - 1} ({n_targets} distinct targets)")
            deg[k] = n_targets - 1
    terms = _auto_terms(m, notes) if fit is None else set(fit)
    unknown = terms - set(TERMS)
    if unknown:
        raise ValueError(f"fit: unknown term {sorted(unknown)[0]!r}; terms are {', '.join(TERMS)}")
    # at least 3 coefficients per polynomial: the default degrees and lower ones share one compilation
    spec = Spec(tuple((k, max(3, deg[k] + 1)) for k in POLY_FIELDS))
    free = np.concatenate([np.arange(n) < (deg[k] + 1 if k in terms else 0) for k, n in spec.polys]
                          + [np.asarray(["activation_energy" in terms])])
    return spec, free, notes


def _auto_terms(m: Measurements, notes: list[str]) -> set[str]:
    """The terms the data identify (notes get the others and why)."""
    # read_noise_growth only when asked: its maximum likelihood often sits at 0 (the boundary), where the
    # Laplace approximation does not apply
    terms = set(TERMS) - {"read_noise_growth"}
    if np.unique(m.time).size < 2:
        terms -= {"drift_nu", "spread_growth"}
        notes.append("drift_nu, spread_growth: not fitted (one time in the data)")
    if not _repeated_reads(m):
        terms.discard("read_noise")
        notes.append("read_noise: not fitted (no cell read 3 times or twice at one time: read noise cannot be told "
                     "from the programming and retention spreads); kept at 0")
    if np.unique(m.temperature).size < 2 or not {"drift_nu", "spread_growth"} & terms:
        terms.discard("activation_energy")
        notes.append("activation_energy: not fitted (one temperature, or no time evolution, in the data)")
    return terms


def _repeated_reads(m: Measurements) -> bool:
    counts = np.bincount(m.cell)
    if counts.max() >= 3:
        return True
    pairs = np.stack([m.cell, m.time, m.temperature], axis=1)
    return np.unique(pairs, axis=0).shape[0] < m.n


# ----------------------------------------------------------------------------------------- goodness of fit


@dataclasses.dataclass(frozen=True)
class GoodnessOfFit:
    """Measured vs model quantiles of every (target, time, temperature) group of reads.

    Attributes:
      target: the group's target conductance (mean of its targets when targets are binned), S, (n_groups,).
      time: s, (n_groups,). temperature: K, (n_groups,). count: reads per group, (n_groups,).
      quantiles: the probabilities compared, (n_q,).
      measured: the group's empirical quantiles, S, (n_groups, n_q).
      model: the model's quantiles (of the mixture of the group's reads' laws), S, (n_groups, n_q).
      model_std: the model's standard deviation per group, S, (n_groups,).
    """

    target: np.ndarray
    time: np.ndarray
    temperature: np.ndarray
    count: np.ndarray
    quantiles: np.ndarray
    measured: np.ndarray
    model: np.ndarray
    model_std: np.ndarray

    @property
    def error_sigma(self) -> np.ndarray:
        """(measured - model) quantiles in units of the model's standard deviation, (n_groups, n_q)."""
        return (self.measured - self.model) / self.model_std[:, None]

    def table(self) -> str:
        """One line per group: target (uS), time, temperature (C), reads, largest quantile error (model sigmas)."""
        lines = [f"{'target uS':>10} {'time s':>10} {'T C':>6} {'reads':>6} {'max |err| / sigma':>18}"]
        for i in range(self.target.size):
            lines.append(f"{self.target[i] * 1e6:10.3f} {self.time[i]:10.3g} {self.temperature[i] - 273.15:6.1f} "
                         f"{self.count[i]:6d} {np.max(np.abs(self.error_sigma[i])):18.3f}")
        return "\n".join(lines)


def _mixture_quantiles(mean: np.ndarray, std: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Quantiles of an equal-weight mixture of normals N(mean_i, std_i^2), by bisection on its CDF."""
    from scipy.special import ndtr, ndtri

    if np.ptp(mean) == 0 and np.ptp(std) == 0:
        return mean[0] + std[0] * ndtri(qs)
    lo = np.full(qs.shape, np.min(mean - 10 * std))
    hi = np.full(qs.shape, np.max(mean + 10 * std))
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        below = np.mean(ndtr((mid[:, None] - mean[None]) / std[None]), axis=1) < qs
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def _target_groups(target: np.ndarray, bins: int) -> np.ndarray:
    """Group index per read: the distinct targets if there are at most ``bins``, else quantile bins."""
    uniq = np.unique(target)
    if uniq.size <= bins:
        return np.searchsorted(uniq, target)
    edges = np.quantile(target, np.linspace(0, 1, bins + 1))
    return np.clip(np.searchsorted(edges, target, side="right") - 1, 0, bins - 1)


def goodness_of_fit(device: MeasuredDevice, m: Measurements, *, quantiles: Sequence[float] = QUANTILES,
                    bins: int = 16) -> GoodnessOfFit:
    """Compare the measured quantiles of every (target, time, temperature) group with ``device``'s.

    Args:
      device: a `MeasuredDevice` (e.g. ``result.device``). m: the `Measurements`.
      quantiles: probabilities to compare. bins: most target groups (continuous targets are binned).

    Returns:
      `GoodnessOfFit`.
    """
    qs = np.asarray(quantiles, dtype=np.float64)
    with jax.enable_x64(True):
        mean, a, b, q2 = (np.asarray(v, dtype=np.float64) for v in device.moments(
            jnp.asarray(m.target), jnp.asarray(m.time), jnp.asarray(m.temperature)))
    std = np.sqrt(a * a + b * b + q2 + _VAR_FLOOR * float(device.g_max) ** 2)
    keys = np.stack([_target_groups(m.target, bins), m.time, m.temperature], axis=1)
    groups, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    rows = [np.flatnonzero(inverse == k) for k in range(groups.shape[0])]
    measured = np.stack([np.quantile(m.conductance[r], qs) for r in rows])
    model = np.stack([_mixture_quantiles(mean[r], std[r], qs) for r in rows])
    model_std = np.asarray([math.sqrt(np.mean(std[r] ** 2 + mean[r] ** 2) - np.mean(mean[r]) ** 2) for r in rows])
    return GoodnessOfFit(
        target=np.asarray([m.target[r].mean() for r in rows]), time=groups[:, 1], temperature=groups[:, 2],
        count=np.asarray([r.size for r in rows]), quantiles=qs, measured=measured, model=model, model_std=model_std)


def plot_goodness(gof: GoodnessOfFit, path: str | os.PathLike | None = None, *, show: Sequence[float] = (0.05, 0.5,
                  0.95)):
    """Measured (markers) and model (lines) quantiles of every target vs time, one panel per temperature.

    Args:
      gof: from `goodness_of_fit` (``result.goodness``). path: save the figure there (PNG, PDF, ...) if given.
      show: which of ``gof.quantiles`` to draw.

    Returns:
      the matplotlib figure (matplotlib is imported here, only when plotting).
    """
    import matplotlib.pyplot as plt

    cols = [int(np.argmin(np.abs(gof.quantiles - q))) for q in show]
    temps = np.unique(gof.temperature)
    fig, axes = plt.subplots(1, temps.size, figsize=(4.2 * temps.size, 4.0), sharey=True, squeeze=False)
    targets = np.unique(gof.target)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, targets.size))
    for ax, temp in zip(axes[0], temps, strict=True):
        for color, target in zip(colors, targets, strict=True):
            sel = (gof.temperature == temp) & (gof.target == target)
            order = np.argsort(gof.time[sel])
            t = gof.time[sel][order]
            for j, c in enumerate(cols):
                style = "-" if gof.quantiles[c] == 0.5 else ":"
                ax.plot(t, gof.model[sel][order, c] * 1e6, style, color=color, lw=1)
                ax.plot(t, gof.measured[sel][order, c] * 1e6, "o" if j == len(cols) // 2 else ".", color=color,
                        ms=4 if j == len(cols) // 2 else 3)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("time since programming (s)")
        ax.set_title(f"{temp - 273.15:.0f} C")
    axes[0, 0].set_ylabel("conductance (uS)")
    fig.suptitle(f"measured (markers) vs model (lines): quantiles {', '.join(f'{q:g}' for q in show)}", fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


# ----------------------------------------------------------------------------------------- the result


@dataclasses.dataclass(frozen=True)
class CalibrationResult:
    """A fitted `MeasuredDevice` with its uncertainty and goodness of fit (from `calibrate`).

    Attributes:
      device: the maximum-likelihood device: use it everywhere (``cfg.replace(device=result.device)``).
      names: the fitted parameters, e.g. ``"prog_sigma[1]"`` (coefficient 1 of that polynomial), (n_p,).
      estimate: their values (activation energy in eV), (n_p,).
      theta: the unconstrained estimate (log of the activation energy), (n_p,).
      covariance: Laplace covariance of ``theta``: the inverse Hessian of the negative log-likelihood, (n_p, n_p).
      log_likelihood: at the estimate (densities in 1/S).
      gradient_max: largest entry of the gradient at the estimate (a converged fit has ~0).
      converged: the gradient vanished and the Hessian is positive definite (the uncertainty is then usable).
      steps: L-BFGS iterations.
      n_reads, n_cells: the data's size.
      notes: what was not fitted or was changed, and why.
      measurements: the data (`Measurements`).
      bins: most target groups of the goodness of fit.
      spec: the shape of the full parameter vector (`with_theta`).
      full_theta: the full unconstrained vector at the estimate (fitted and fixed entries), (spec.size,).
      free: which entries of ``full_theta`` were fitted, (spec.size,).
    """

    device: MeasuredDevice
    names: tuple[str, ...]
    estimate: np.ndarray
    theta: np.ndarray
    covariance: np.ndarray
    log_likelihood: float
    gradient_max: float
    converged: bool
    steps: int
    n_reads: int
    n_cells: int
    notes: tuple[str, ...]
    measurements: Measurements
    bins: int
    spec: Spec
    full_theta: np.ndarray
    free: np.ndarray

    @functools.cached_property
    def goodness(self) -> GoodnessOfFit:
        """`GoodnessOfFit` of the fitted device on the data (computed when first asked for)."""
        return goodness_of_fit(self.device, self.measurements, bins=self.bins)

    @property
    def stderr(self) -> np.ndarray:
        """Standard errors of ``estimate`` (delta method for the activation energy), (n_p,)."""
        se = np.sqrt(np.diag(self.covariance))
        if self.free[-1]:
            se = se.copy()
            se[-1] = self.estimate[-1] * se[-1]
        return se

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Two-sided Laplace (Wald) intervals at ``level`` for ``estimate``: (low, high), each (n_p,); the
        activation energy's interval is taken on its log and is positive."""
        from scipy.special import ndtri

        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        z = float(ndtri(0.5 + level / 2))
        se = np.sqrt(np.diag(self.covariance))
        lo, hi = self.theta - z * se, self.theta + z * se
        if self.free[-1]:
            lo[-1], hi[-1] = math.exp(lo[-1]), math.exp(hi[-1])
        return lo, hi

    def table(self, level: float = 0.95) -> str:
        """The estimates with standard errors and intervals, and the notes."""
        lo, hi = self.interval(level)
        lines = [f"{'parameter':<22} {'estimate':>12} {'std err':>11} {f'{level:.0%} interval':>26}"]
        for name, e, s, a, b in zip(self.names, self.estimate, self.stderr, lo, hi, strict=True):
            lines.append(f"{name:<22} {e:12.5g} {s:11.3g}   [{a:11.5g}, {b:11.5g}]")
        lines.append(f"log-likelihood {self.log_likelihood:.6g} ({self.n_reads} reads of {self.n_cells} cells), "
                     f"{'converged' if self.converged else 'NOT converged'} after {self.steps} L-BFGS steps")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def plot(self, path: str | os.PathLike | None = None, **kwargs):
        """`plot_goodness` of this fit."""
        return plot_goodness(self.goodness, path, **kwargs)

    def sample_models(self, key: jax.Array, n: int) -> MeasuredDevice:
        """``n`` devices with the fitted parameters drawn from the Laplace approximation N(theta, covariance)
        (chip-to-chip spread of the model itself), stacked: every leaf has a leading axis n (vmappable; one
        chip's model is ``model_at(models, i)``).

        Args:
          key: a `jax.random.key`. n: number of models.
        """
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if not self.converged:
            raise ValueError("the fit did not converge (see result.notes): its uncertainty cannot be sampled")
        with jax.enable_x64(True):
            chol = np.linalg.cholesky(self.covariance)
            z = np.asarray(jax.random.normal(key, (int(n), self.theta.size), jnp.float64))
        thetas = np.repeat(self.full_theta[None], n, axis=0)
        thetas[:, self.free] += z @ chol.T
        leaves = _device_values(self.device, thetas, self.spec)
        return self.device.replace(**{k: jnp.asarray(np.broadcast_to(v, (n,)) if np.ndim(v) == 0 else v)
                                      if not isinstance(v, tuple) else tuple(jnp.asarray(c) for c in v)
                                      for k, v in leaves.items()})


def _device_values(device: MeasuredDevice, thetas: np.ndarray, spec: Spec) -> dict[str, Any]:
    """Every leaf field of ``device`` stacked over the rows of ``thetas`` (n, n_p): fitted ones from thetas,
    the others broadcast to (n,)."""
    n = thetas.shape[0]
    out: dict[str, Any] = {}
    for f in dataclasses.fields(device):
        if f.metadata.get("pytree_node", True):
            v = getattr(device, f.name)
            out[f.name] = tuple(np.full(n, float(c)) for c in v) if isinstance(v, tuple) else np.full(n, float(v))
    i = 0
    for name, k in spec.polys:
        out[name] = tuple(thetas[:, i + j].copy() for j in range(k))
        i += k
    out["activation_energy"] = np.exp(thetas[:, i])
    return out


def model_at(models: MeasuredDevice, i: int) -> MeasuredDevice:
    """Model ``i`` of a stacked device (from `CalibrationResult.sample_models`), its leaves Python floats (a
    config of `jaxcim.nn` layers holds plain numbers). Inside jit or vmap index the leaves instead:
    ``jax.tree.map(lambda a: a[i], models)``."""
    return jax.tree.map(lambda a: float(a[i]), models)


def n_models(models: Any) -> int:
    """The number of models in a stacked device (the leading axis of its leaves)."""
    return int(jax.tree.leaves(models)[0].shape[0])


# ----------------------------------------------------------------------------------------- entry points


def _check_range_args(m: Measurements, g_min, g_max) -> tuple[float, float]:
    g_max = float(np.max(m.target)) if g_max is None else float(g_max)
    g_min = 0.0 if g_min is None else float(g_min)
    if not (math.isfinite(g_max) and g_max > 0):
        raise ValueError(f"g_max must be a finite conductance > 0 S, got {g_max!r}")
    if not (math.isfinite(g_min) and 0 <= g_min < g_max):
        raise ValueError(f"g_min must be in [0, g_max), got {g_min!r}")
    if np.max(m.target) > g_max * (1 + 1e-9):
        raise ValueError(f"targets go up to {np.max(m.target)!r} S, above g_max = {g_max!r} S")
    return g_min, g_max


def _uncertainty(hess: np.ndarray, grad: np.ndarray, names: list[str]) -> tuple[np.ndarray, bool, list[str]]:
    """Laplace covariance (inverse Hessian) and whether the fit converged, with notes on what failed."""
    notes = []
    evals, evecs = np.linalg.eigh(hess)
    ok = bool(np.all(evals > 1e-12 * max(float(np.max(np.abs(evals))), 1e-300)))
    if not ok:
        worst = names[int(np.argmax(np.abs(evecs[:, 0])))]
        notes.append(f"the Hessian is not positive definite (smallest eigenvalue {evals[0]:.3g}): the data do not "
                     f"identify every parameter (most affected: {worst}); fit fewer terms (fit=, degrees=)")
        return np.full(hess.shape, np.nan), False, notes
    cov = (evecs / evals) @ evecs.T
    # a converged fit's Newton step is tiny compared with the parameters' standard errors
    step = np.abs(cov @ grad) / np.sqrt(np.diag(cov))
    if np.max(step, initial=0.0) > 1e-3:
        notes.append(f"not converged: the remaining Newton step is {np.max(step):.3g} standard errors")
        return cov, False, notes
    return cov, True, notes


def calibrate(
    data: str | os.PathLike | Mapping[str, Any] | Measurements, *, g_min: float | None = None,
    g_max: float | None = None, levels: int | None = None, degrees: Mapping[str, int] | None = None,
    fit: Iterable[str] | None = None, t0: float = 1.0, reference_temperature: float = ROOM_TEMPERATURE,
    activation_energy: float = 1.0, max_steps: int = 500, bins: int = 16,
) -> CalibrationResult:
    """Fit a `MeasuredDevice` to measured cells by maximum likelihood, with Laplace uncertainty.

    Args:
      data: the measurement table: a ``.csv``/``.npz`` path, a dict of columns, or `Measurements` (see
        `load_measurements` for the columns).
      g_min, g_max: the device's conductance range, S (default 0 and the largest target; required with levels).
      levels: number of levels of a multi-level cell when the table gives ``level`` (default the largest + 1); the
        fitted device then quantizes targets to them.
      degrees: polynomial degree per term (`DEFAULT_DEGREES`), lowered to the distinct targets - 1.
      fit: the terms to fit (`TERMS`); default those the data identify: the time terms need two times, the read
        noise a cell read three times (or twice at one time), the activation energy two temperatures. Terms not
        fitted are 0 (no activation energy: ``activation_energy``).
      t0: time scale of the log-time axis, s (not fitted; e.g. 20 s for PCM as in Joshi 2020).
      reference_temperature: temperature the fitted time evolution refers to, K.
      activation_energy: start of the activation energy, eV (its value when it is not fitted).
      max_steps: most L-BFGS iterations. bins: most target groups of the goodness of fit.

    Returns:
      `CalibrationResult`. The fit runs in float64 whatever ``jax_enable_x64`` says; the device's leaves are
      Python floats.
    """
    m = data if isinstance(data, Measurements) else load_measurements(data, g_min=g_min, g_max=g_max, levels=levels)
    g_min, g_max = _check_range_args(m, g_min, g_max)
    for name, v, lo in (("t0", t0, 0.0), ("reference_temperature", reference_temperature, 0.0),
                        ("activation_energy", activation_energy, 0.0)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= lo:
            raise ValueError(f"{name} must be a finite number > {lo:g}, got {v!r}")
    spec, free, notes = _spec_for(m, degrees, fit)
    if not free.any():
        raise ValueError("nothing to fit: fit= names no term")
    n_levels = 0 if m.level is None else (int(m.level.max()) + 1 if levels is None else int(levels))
    unit = MeasuredDevice(g_max=1.0, t0=t0, reference_temperature=reference_temperature)
    theta0 = _initial_theta(m, g_max, spec, free, activation_energy)
    with jax.enable_x64(True):
        cells, _ = _cells(m, g_max)
        theta, nll, grad, hess, steps = _fit(theta0, free, unit, jax.tree.map(jnp.asarray, cells), spec,
                                             int(max_steps))
    sign = _canonical_signs(theta, spec, float(np.mean(m.target)) / g_max)
    theta, s_free = sign * theta, sign[free]
    grad, hess = s_free * grad, hess * s_free[:, None] * s_free[None, :]
    names = [n for n, f in zip(spec.names(), free, strict=True) if f]
    cov, converged, more = _uncertainty(hess, grad, names)
    values = _device_values(unit, theta[None], spec)
    device = MeasuredDevice(g_min=g_min, g_max=g_max, levels=n_levels, t0=t0,
                            reference_temperature=reference_temperature,
                            activation_energy=float(values["activation_energy"][0]),
                            **{k: tuple(float(c[0]) for c in values[k]) for k in POLY_FIELDS})
    estimate = theta[free].copy()
    if free[-1]:
        estimate[-1] = math.exp(estimate[-1])
    return CalibrationResult(
        device=device, names=tuple(names), estimate=estimate, theta=theta[free], covariance=cov,
        log_likelihood=float(-nll - m.n * math.log(g_max)), gradient_max=float(np.max(np.abs(grad))),
        converged=converged, steps=int(steps), n_reads=m.n, n_cells=int(m.cell_labels.size),
        notes=tuple(notes + more), measurements=m, bins=int(bins), spec=spec, full_theta=theta,
        free=free)


def _per_model(models: MeasuredDevice, temperature: float | None):
    if not isinstance(models, MeasuredDevice):
        raise TypeError(f"models must be a stacked MeasuredDevice (CalibrationResult.sample_models), got "
                        f"{type(models).__name__}")
    for j in range(n_models(models)):
        dev = model_at(models, j)
        yield j, (dev if temperature is None else dev.replace(temperature=temperature))


def monte_carlo_models(cfg: Any, models: MeasuredDevice, w: jax.Array, x: jax.Array, *, key: jax.Array, n: int,
                       temperature: float | None = None, **kwargs: Any) -> jax.Array:
    """`jaxcim.monte_carlo` over chips whose device models differ: ``n`` instances for each sampled model.

    Args:
      cfg: a `jaxcim.CrossbarConfig`; its device is replaced by each model.
      models: stacked models (`CalibrationResult.sample_models`). w, x: as in `jaxcim.monte_carlo`.
      key: the study's key; model j runs `jaxcim.monte_carlo` with ``jax.random.fold_in(key, j)``.
      n: instances per model. temperature: the cells' temperature, K (default each model's own).
      **kwargs: passed to `jaxcim.monte_carlo` (t, times, reduce, ...).

    Returns:
      the `jaxcim.monte_carlo` results stacked: leading axis n_models, then n.
    """
    from jaxcim.montecarlo import monte_carlo

    outs = [monte_carlo(cfg.replace(device=dev), w, x, key=jax.random.fold_in(key, j), n=n, **kwargs)
            for j, dev in _per_model(models, temperature)]
    return jax.tree.map(lambda *a: jnp.stack(a), *outs)


def evaluate_models(model: Any, cfg: Any, data: tuple[Any, Any], models: MeasuredDevice, *, key: jax.Array,
                    n_instances: int = 16, times: Sequence[float] = (1.0,), temperature: float | None = None,
                    **kwargs: Any):
    """`jaxcim.nn.evaluate` over chips whose device models differ: ``n_instances`` chips for each sampled model.

    Args:
      model: a trained nnx classifier, as in `jaxcim.nn.evaluate`.
      cfg: a `jaxcim.CrossbarConfig` for every layer; its device is replaced by each model.
      data: (inputs, labels). models: stacked models (`CalibrationResult.sample_models`).
      key: the study's key; model j runs `jaxcim.nn.evaluate` with ``jax.random.fold_in(key, j)``.
      n_instances: chips per model. times: read times, s. temperature: the chips' temperature, K (default each
        model's own): e.g. ``times=(3.156e8,), temperature=358.15`` asks for 10 years at 85 C.
      **kwargs: passed to `jaxcim.nn.evaluate`.

    Returns:
      a `jaxcim.nn.evaluate` result whose ``accuracies`` are (n_models * n_instances, n_times), model-major.
    """
    from jaxcim.nn import evaluate

    results = [evaluate(model, cfg.replace(device=dev), data, key=jax.random.fold_in(key, j),
                        n_instances=n_instances, times=times, **kwargs) for j, dev in _per_model(models, temperature)]
    return dataclasses.replace(results[0], accuracies=np.concatenate([r.accuracies for r in results]))


def sample_measurements(device: Any, targets: Any, times: Sequence[float], *, key: jax.Array,
                        temperature: float = ROOM_TEMPERATURE, first_cell: int = 0) -> dict[str, np.ndarray]:
    """A measurement table drawn from any device model through the simulator's own steps: cells programmed with
    `jaxcim.programming.write` (open loop), aged with the model's ``at_time`` and read once at every time with
    its read noise (independent reads). For tests, examples and synthetic data sets.

    Args:
      device: a `jaxcim.devices.DeviceModel`.
      targets: target conductance of every cell, S, (n_cells,).
      times: read times after programming, s, (n_times,).
      key: a `jax.random.key`.
      temperature: the cells' temperature, K (set on the device's ``temperature`` leaf; a device without one
        accepts only 298.15 K).
      first_cell: label of the first cell (cells are numbered from it).

    Returns:
      {column: array} with n_cells * n_times rows (columns cell, target, time, temperature, conductance), ready
      for `calibrate`.
    """
    if hasattr(device, "temperature"):
        device = device.replace(temperature=temperature)
    elif temperature != ROOM_TEMPERATURE:
        raise ValueError(f"device {type(device).__name__} has no temperature leaf: only {ROOM_TEMPERATURE} K")
    g_t = jnp.asarray(targets, dtype=jnp.float32).ravel()
    ts = np.asarray(times, dtype=np.float64).ravel()
    g = np.asarray(_draw(device, g_t, jnp.asarray(ts, jnp.float32), key), dtype=np.float64)
    n = g_t.size
    return {
        "cell": np.tile(np.arange(first_cell, first_cell + n), ts.size),
        "target": np.tile(np.asarray(g_t, dtype=np.float64), ts.size),
        "time": np.repeat(ts, n),
        "temperature": np.full(n * ts.size, float(temperature)),
        "conductance": g.ravel(),
    }


@jax.jit
def _draw(device, g_t, ts, key):
    """Program cells to ``g_t``, age them to every time of ``ts`` and read each once: (n_times, n_cells), S."""
    from jaxcim import devices, programming
    from jaxcim.config import CrossbarConfig

    k_write, k_time, k_read = jax.random.split(key, 3)
    g_prog, _ = programming.write(CrossbarConfig(device=device), g_t, k_write)
    params = devices.sample_time_params(device, k_time, g_t)

    def at(t, k):
        g = devices.at_time(device, g_prog, g_t, params, t)
        return g + devices.read_sigma(device, g, g_t, t) * jax.random.normal(k, g.shape, g.dtype)

    return jax.vmap(at)(ts, jax.random.split(k_read, ts.size))
