"""Exact IR-drop solve of a resistive crossbar: wire resistance, terminal resistances, sinh cells.

Circuit: R word lines driven at their left end through
``r_driver`` and one ``r_row`` segment, C bit lines sensed at their bottom end through one ``r_col`` segment and
``r_sense`` into a virtual ground; cell (i, j) joins row node (i, j) and column node (i, j) with a conductance
``g[i, j]`` (I = g V) or a sinh element (I = g v0 sinh(V / v0)), V = row node minus column node.

Method: structured exact elimination, O(n m^3) for n lines of m nodes, independent of conditioning.

1. Every line of one family (the "P lines", e.g. the rows) is a tridiagonal chain whose nodes couple only to
   each other and, through their cells, to the crossing nodes of the other family ("Q lines"). Eliminating a P
   line leaves a dense m x m block D = G - G T^-1 G on its Q nodes, T the chain's tridiagonal matrix. T^-1 is
   semiseparable: T^-1[j, k] = Z[max(j, k)] * prod of voltage dividers between j and k, so D costs O(m^2) from
   O(m) ladder quantities (impedance looking towards the terminal, admittance looking away), computed in
   resistance form: every quantity stays finite when a wire or terminal resistance is exactly 0.
2. The Q nodes then form a block-tridiagonal system over the n lines with off-diagonal blocks -I / r_q. Block
   elimination carries E_k, the SPD conductance matrix the part above line k presents to it, through
   E_k = D_k + F(E_{k-1}), F(E) = E (I + r_q E)^-1 = E - r_q E (I + r_q E)^-1 E, E seen through r_q
   (``lax.scan``, so compile time does not grow with n). F comes from a 2 x 2 block recursion whose work is
   4/3 m^3 in matrix products (`_series`), instead of a Cholesky factorization, a triangular solve and a
   product (~3.3 m^3, the solves slow on GPUs): 1.7x faster on a 2-core CPU and 2.8x on an H100
   (benchmarks/README.md). Every block is formed as a block of E plus r_q times a product, so there is no
   cancellation when the wires are good conductors (r_q E << 1, the usual case), unlike S_k = D_k - S^-1 / r^2,
   and no pivoting (every block inverted is I + r_q (SPD) with eigenvalues >= 1).
3. The outputs (terminal currents of the Q lines) need only the forward sweep: no factor is stored and the
   memory is O(m^2) per instance. Inputs enter as right-hand-side columns; when there are more input vectors
   than rows, the R x C transfer matrix M (I = v @ M) is swept instead and reused for every input.
4. Either family can play P: rows (blocks of size C) or, after transposing and flipping the array, columns
   (blocks of size R; by reciprocity the sweep then yields M directly). The cheaper one is picked from the
   shapes. Conductances are scaled by their maximum (resistances by its inverse) so float32 stays accurate.

Iterative alternatives were measured and rejected: conjugate gradients preconditioned by row/column line solves
did not reach 1e-10 in ten minutes at 256 x 256, 2 ohm, 100 uS (the Laplacian is highly anisotropic). A sparse
direct solver (SuperLU) needs no fixed structure but is sequential and not differentiable in JAX.

Nonlinear sinh cells: from the linear solution, chord iterations for the whole batch on ONE factorization:
every cell is replaced by its companion model with a frozen conductance c g, c = (1 + cosh(s/v0)) / 2 for the
largest possible cell voltage s, and a current source carrying the rest of its sinh current; since the true
slopes g cosh(V/v0) lie in [g, g cosh(s/v0)], the iteration contracts by at least tanh^2(s / 2 v0) < 1 per step
for every input (it cannot diverge), and each step is one block solve with stored factors. Inputs that the
chord iteration leaves unconverged go on with Newton's method (companion conductance g cosh(V/v0), one
factorization per input vector and iteration, each step limited so that no cell voltage moves by more than
2 v0, SPICE-style). Convergence is declared when the largest node-voltage step is below ``tol`` times max |v|
(``tol / 100`` for the linearly converging chord steps). The result reports a flag, the
step, the residual (largest cell-current mismatch over the largest cell current) and the iteration count;
``throw=True`` raises ``RuntimeError`` when not converged: directly when called eagerly, through
``jax.debug.callback`` under ``jit`` (the error then surfaces as a ``JaxRuntimeError`` quoting the message).

Derivatives (w.r.t. g, v, r_row, r_col, r_driver, r_sense, v0) are implicit: a ``jax.custom_jvp`` rule solves
the linearized network J du = -dF/dtheta dtheta with the same exact elimination (the factors of the primal
solve, or of the Jacobian g cosh(V/v0) at the Newton solution) and JAX transposes that linear solve for
reverse mode; no iteration is differentiated. Derivatives w.r.t. a wire or terminal resistance that is exactly
zero are not defined (NaN); derivatives w.r.t. everything else stay finite there.

References:
  Chen et al., "Technological benchmark of analog synaptic devices for neuro-inspired architectures",
  IEEE Design & Test 2019 (NeuroSim wire-resistance model: ~1.9-16.7 ohm per cell segment).
  G. Meurant, "A review on the inverse of symmetric tridiagonal and block tridiagonal matrices",
  SIAM J. Matrix Anal. Appl. 13 (1992) (semiseparable inverse, block-tridiagonal elimination).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.custom_derivatives import SymbolicZero

HIGHEST = lax.Precision.HIGHEST
Array = jax.Array

__all__ = ["IRDropSolution", "column_currents", "solve", "transfer_matrix"]


class IRDropSolution(NamedTuple):
    """Node voltages and column currents of one crossbar solve.

    Attributes:
      currents: current into each column's virtual ground, A, (..., cols).
      row_voltages: word-line node voltages, V, (..., rows, cols).
      col_voltages: bit-line node voltages, V, (..., rows, cols).
      converged: whether Newton met ``tol`` (always True for linear cells), bool, (...).
      step: last Newton step over max |v| (0 for linear cells), (...).
      residual: largest cell-current mismatch over the largest cell current (0 for linear cells), (...).
      iterations: Newton iterations taken (0 for linear cells), int, (...).
    """

    currents: Array
    row_voltages: Array
    col_voltages: Array
    converged: Array
    step: Array
    residual: Array
    iterations: Array


# ------------------------------------------------------------------------------------------------------------
# Canonical frame: n "P lines" of m nodes (terminal at node 0 through rp0, segments rp, far end open) and
# m "Q lines" of n nodes (terminal at node n-1 through rq0, segments rq, node 0 open); cell (k, l) joins
# P node (k, l) and Q node (k, l). Rows as P lines is the physical frame; columns as P lines is `_flip_t`.
# ------------------------------------------------------------------------------------------------------------


class _Lines(NamedTuple):
    """Ladder quantities of the P lines with the Q nodes grounded, each (n, m)."""

    zd: Array  # diagonal of T^-1: 1 / (admittance to ground at the node), ohm
    lam: Array  # log of the product of voltage dividers from node 0 to the node (non-increasing)
    beta: Array  # divider between node l and l+1 (the last entry is unused)
    dd: Array  # diagonal of D = G - G T^-1 G
    phi: Array  # node voltage for a unit terminal potential


class _Factor(NamedTuple):
    g: Array  # (n, m) conductances the factors belong to
    rp: Array
    rq: Array
    rq0: Array
    lines: _Lines
    f: Array  # (n, m, m) F_k = E_{k-1} (I + rq E_{k-1})^-1, `_series` (the first is 0)
    e_last: Array  # (m, m) E_{n-1}
    t_last: Array  # (m, m) (I + rq0 E_{n-1})^-1, the sense terminal (`_spd_solve`)


def _flip_t(a: Array) -> Array:
    """(..., R, C) -> (..., C, R) with both axes reversed; its own inverse (rows <-> columns as P lines)."""
    return jnp.swapaxes(a[..., ::-1, ::-1], -1, -2)


def _safe_div(a, b):
    """a / b, with 0 where b == 0 (and a gradient that stays finite there)."""
    nz = b != 0
    return jnp.where(nz, a / jnp.where(nz, b, 1), 0)


def _lines(g: Array, rp: Array, rp0: Array) -> _Lines:
    n, m = g.shape
    gt = g.T  # scan along the line

    def left(zl, gl):  # impedance looking towards the terminal, without the node's own cell
        p = zl / (1 + gl * zl)
        return rp + p, (zl, p)

    _, (zl, p) = lax.scan(left, jnp.broadcast_to(rp0, (n,)).astype(g.dtype), gt)

    def right(fr, gl):  # admittance looking away from the terminal, without the node's own cell
        y = gl + fr
        return y / (1 + rp * y), fr

    _, fr = lax.scan(right, jnp.zeros((n,), g.dtype), gt, reverse=True)
    zl, p, fr = zl.T, p.T, fr.T
    y = g + fr
    zd = zl / (1 + zl * y)
    dd = g * (1 + zl * fr) / (1 + zl * y)
    log_beta = -jnp.log1p(_safe_div(rp, p))  # p == 0 only when the line is ideal and then zd == 0
    lam = jnp.concatenate([jnp.zeros((n, 1), g.dtype), jnp.cumsum(log_beta[:, :-1], axis=1)], axis=1)
    seg = jnp.concatenate([jnp.broadcast_to(rp0, (n, 1)), jnp.broadcast_to(rp, (n, m - 1))], axis=1)
    phi = jnp.cumprod(1 / (1 + seg.astype(g.dtype) * y), axis=1)
    return _Lines(zd=zd, lam=lam, beta=jnp.exp(log_beta), dd=dd, phi=phi)


def _schur_block(g: Array, zd: Array, lam: Array, dd: Array) -> Array:
    """D = G - G T^-1 G of one P line, (m, m), from its O(m) ladder quantities."""
    m = g.shape[0]
    idx = jnp.arange(m)
    upper = idx[:, None] <= idx[None, :]
    z = jnp.where(upper, zd[None, :], zd[:, None]) * jnp.exp(-jnp.abs(lam[:, None] - lam[None, :]))
    return jnp.where(idx[:, None] == idx[None, :], dd[:, None], -(g[:, None] * g[None, :]) * z)


_LEAF = 32
"""Blocks of at most this size go through Cholesky factorization in `_series`; larger ones through 2 x 2 block
recursion, whose work is all matrix products."""


def _series(e: Array, r) -> Array:
    """F = E (I + r E)^-1 for an SPD conductance matrix E (m, m) and a resistance r >= 0.

    F is the conductance matrix of the network E seen through a resistance r in series with every node;
    (I + r E)^-1 = I - r F (`_series_apply`). Block recursion on E = [[A, B], [B^T, C]]: with F_A the result
    for A, W = (I + r A)^-1 B = B - r F_A B; the Schur complement of I + r E is I + r C' with
    C' = C - r B^T W (SPD, so no pivoting is needed); with F_C the result for C' and X = W - r W F_C,

        F = [[F_A - r X W^T, X], [X^T, F_C]].

    Every quantity is formed as a block of E plus r times a product, never as a product with (I + r E)^-1
    itself, so rounding errors scale with r E (small for good wires) rather than with E: float32 keeps the
    accuracy of the Cholesky form E - r E (I + r E)^-1 E, which the leaves (m <= ``_LEAF``) use. Work
    4/3 m^3, all in matrix products (the Cholesky form costs ~3.3 m^3, much of it in triangular solves).
    """
    m = e.shape[-1]
    if m <= _LEAF:
        y = _cholesky_solve_leaf(jnp.eye(m, dtype=e.dtype) + r * e, e)
        return e - r * _mm(y.T, y)
    h = m // 2
    a, b, c = e[:h, :h], e[:h, h:], e[h:, h:]
    fa = _series(a, r)
    w = b - r * _mm(fa, b)
    fc = _series(c - r * _mm(b.T, w), r)
    x = w - r * _mm(w, fc)
    return jnp.block([[fa - r * _mm(x, w.T), x], [x.T, fc]])


def _cholesky_solve_leaf(a: Array, b: Array) -> Array:
    """L^-1 b for the Cholesky factor L of an SPD matrix a (m, m) whose eigenvalues are >= 1, b (m, k).

    Gaussian elimination without pivoting on [a | b] (stable for SPD matrices), written as a ``fori_loop`` of
    rank-1 updates in plain XLA operations: row i of the eliminated matrix, scaled by 1 / sqrt(its pivot), is
    row i of [L^T | L^-1 b]. LAPACK's batched potrf/trsm are not used here: under ``vmap`` on CPU, jaxlib 0.10
    splits their batch over XLA's intra-op thread pool and waits inside a pool thread, which deadlocks when two
    such calls run at once and the pool has no free thread (a Monte Carlo chunk of 8 IR-drop instances hung on a
    2-core machine; tools/xla_reproducers/README.md).
    """
    m = a.shape[-1]
    rows = jnp.arange(m)

    def step(k, w):
        row = lax.dynamic_index_in_dim(w, k, axis=0, keepdims=False)
        factor = jnp.where(rows > k, lax.dynamic_index_in_dim(w, k, axis=1, keepdims=False) / row[k], 0.0)
        return w - factor[:, None] * row[None, :]

    w = lax.fori_loop(0, m, step, jnp.concatenate([a, b], axis=1), unroll=min(m, 8))
    return w[:, m:] / jnp.sqrt(jnp.diagonal(w[:, :m]))[:, None]


def _terminal(e: Array, r) -> Array:
    """I + r E: the network E seen through the terminal resistance r of every Q line (SPD, eigenvalues >= 1)."""
    return jnp.eye(e.shape[-1], dtype=e.dtype) + r * e


def _spd_solve(a: Array, b: Array) -> Array:
    """a^-1 b for an SPD matrix a (m, m) whose eigenvalues are >= 1 (`_terminal`), b (m, k).

    The terminal step solves with I + r E directly instead of forming x - r F x (`_series_apply`), which loses
    every digit when r E >> 1 (a sense resistance of 1 Mohm on 100 uS cells: 66 % error in float32). Gauss-Jordan
    elimination without pivoting (stable for SPD matrices) as a ``fori_loop`` of rank-1 updates, for the reason
    given in `_cholesky_solve_leaf`.
    """
    m = a.shape[-1]
    rows = jnp.arange(m)

    def step(k, w):
        row = lax.dynamic_index_in_dim(w, k, axis=0, keepdims=False)
        row = row / row[k]
        col = lax.dynamic_index_in_dim(w, k, axis=1, keepdims=False)
        w = w - jnp.where(rows != k, col, 0.0)[:, None] * row[None, :]
        return lax.dynamic_update_index_in_dim(w, row, k, axis=0)

    return lax.fori_loop(0, m, step, jnp.concatenate([a, b], axis=1))[:, m:]


def _series_apply(f: Array, r, x: Array) -> Array:
    """(I + r E)^-1 x = x - r F x, F = `_series`(E, r)."""
    return x - r * _mm(f, x)


def _mm(a: Array, b: Array) -> Array:
    return jnp.matmul(a, b, precision=HIGHEST)


def _eliminate_step(rq, e, gk, zd, lam, dd):
    """One block of the forward sweep: (E_{k-1}) -> (E_k, F_{k-1} = `_series`(E_{k-1}, rq))."""
    f = _series(e, rq)
    return _schur_block(gk, zd, lam, dd) + f, f


def _sweep(g: Array, rp, rp0, rq, rq0, u: Array) -> Array:
    """Q-terminal currents for P-terminal potentials u, forward sweep only (no factor kept).

    Args:
      g: (n, m) conductances (canonical frame); u: (n, K) P-terminal potentials.

    Returns:
      (m, K) currents from the network into the (grounded) Q terminals.
    """
    n, m = g.shape
    ln = _lines(g, rp, rp0)

    def step(carry, xs):
        e, h = carry
        gk, zd, lam, dd, phi, uk = xs
        e_new, f = _eliminate_step(rq, e, gk, zd, lam, dd)
        return (e_new, (gk * phi)[:, None] * uk[None, :] + _series_apply(f, rq, h)), None

    init = (jnp.zeros((m, m), g.dtype), jnp.zeros((m, u.shape[1]), g.dtype))
    (e, h), _ = lax.scan(step, init, (g, ln.zd, ln.lam, ln.dd, ln.phi, u))
    return _spd_solve(_terminal(e, rq0), h)


def _factor(g: Array, rp, rp0, rq, rq0) -> _Factor:
    """Block factorization of the canonical network (keeps n blocks F_k: n m^2 memory)."""
    m = g.shape[1]
    ln = _lines(g, rp, rp0)

    def step(e, xs):
        return _eliminate_step(rq, e, *xs)

    e, f = lax.scan(step, jnp.zeros((m, m), g.dtype), (g, ln.zd, ln.lam, ln.dd))
    t_last = _spd_solve(_terminal(e, rq0), jnp.eye(m, dtype=g.dtype))
    return _Factor(g=g, rp=rp, rq=rq, rq0=rq0, lines=ln, f=f, e_last=e, t_last=t_last)


def _thomas(ln: _Lines, rp, b: Array) -> Array:
    """T^-1 b for every P line at once (Q nodes grounded, terminal at 0 V); b, result (n, m, K)."""
    bt = jnp.moveaxis(b, 1, 0)  # (m, n, K)
    beta = ln.beta.T[:, :, None]

    def fwd(s, xs):  # s = current carried towards the open end
        bl, bel = xs
        s = (bl + s) * bel
        return s, s

    _, s = lax.scan(fwd, jnp.zeros_like(bt[0]), (bt, beta))
    s_prev = s[-2] if b.shape[1] > 1 else jnp.zeros_like(bt[0])
    x_last = ln.zd[:, -1, None] * (bt[-1] + s_prev)

    def bwd(x, xs):
        sl, bel = xs
        x = rp * sl + bel * x
        return x, x

    _, x = lax.scan(bwd, x_last, (s[:-1], beta[:-1]), reverse=True)
    return jnp.moveaxis(jnp.concatenate([x, x_last[None]], axis=0), 0, 1)


def _solve(fac: _Factor, vp: Array, vq: Array, bp: Array, bq: Array):
    """Node voltages and terminal currents of the factorized network for general sources.

    Args:
      vp: (n, K) P-terminal potentials; vq: (m, K) Q-terminal potentials; bp, bq: (n, m, K) currents
        injected into the P and Q nodes.

    Returns:
      p, q: (n, m, K) node voltages; ip: (n, K), iq: (m, K) currents from the network into the terminals.
    """
    ln, g = fac.lines, fac.g[:, :, None]
    drive = ln.phi[:, :, None] * vp[:, None, :]
    f = bq + g * (drive + _thomas(ln, fac.rp, bp))

    def fwd(h, xs):
        fk, fe = xs
        h = fk + _series_apply(fe, fac.rq, h)
        return h, h

    h_last, h = lax.scan(fwd, jnp.zeros_like(f[0]), (f, fac.f))
    iq = _mm(fac.t_last, h_last - _mm(fac.e_last, vq))
    q_last = _mm(fac.t_last, fac.rq0 * h_last + vq)

    def bwd(qn, xs):
        hk, fe = xs
        qk = _series_apply(fe, fac.rq, fac.rq * hk + qn)
        return qk, qk

    _, q = lax.scan(bwd, q_last, (h[:-1], fac.f[1:]), reverse=True)
    q = jnp.concatenate([q, q_last[None]], axis=0)
    p = drive + _thomas(ln, fac.rp, bp + g * q)
    ip = jnp.sum(bp + g * (q - p), axis=1)
    return p, q, ip, iq


# ------------------------------------------------------------------------------------------------------------
# Physical frame <-> canonical frame, orientation choice.
# ------------------------------------------------------------------------------------------------------------


class _Static(NamedTuple):
    nonlinear: bool
    transposed: bool
    max_iterations: int
    tol: float
    batch_size: int


def _canon_r(theta, transposed: bool):
    """Segment and terminal resistances (rp, rp0, rq, rq0) of the canonical frame."""
    _, r_row, r_col, r_driver, r_sense, _ = theta
    rows = (r_row, r_driver + r_row)
    cols = (r_col, r_sense + r_col)
    return (*cols, *rows) if transposed else (*rows, *cols)


def _canon_g(g: Array, transposed: bool) -> Array:
    return _flip_t(g) if transposed else g


def _drives(v2: Array, shape, transposed: bool):
    """Row potentials (K, R) -> (vp (n, K), vq (m, K)) of the canonical frame."""
    n, m = shape
    if transposed:
        return jnp.zeros((n, v2.shape[0]), v2.dtype), v2[:, ::-1].T
    return v2.T, jnp.zeros((m, v2.shape[0]), v2.dtype)


def _to_physical(p: Array, q: Array, ip: Array, iq: Array, transposed: bool):
    """Canonical (n, m, K) fields and terminal currents -> currents (K, C), x and y (K, R, C)."""
    p, q = jnp.moveaxis(p, -1, 0), jnp.moveaxis(q, -1, 0)
    if transposed:
        return ip.T[:, ::-1], _flip_t(q), _flip_t(p)
    return iq.T, p, q


def _full_transposed(rows: int, cols: int, k: int) -> bool:
    """Whether a full solve (factors kept, K right-hand sides) is cheaper with columns as the P lines."""
    cost_rows = rows * (1.33 * cols**3 + 4 * cols**2 * k)  # `_series` per line, two applies per input
    cost_cols = cols * (1.33 * rows**3 + 4 * rows**2 * k)
    return cost_cols < cost_rows


def _newton_batch(rows: int, cols: int, itemsize: int) -> int:
    """Input vectors solved side by side in Newton: keeps their factors within ~256 MB."""
    n, m = (cols, rows) if _full_transposed(rows, cols, 1) else (rows, cols)
    return max(1, (1 << 28) // (n * m * m * itemsize))


# ------------------------------------------------------------------------------------------------------------
# Solves in normalized units (conductances / max g, resistances * max g).
# ------------------------------------------------------------------------------------------------------------


def _cell(g, v0, volts, nonlinear: bool):
    """Cell current (row to column node) and its conductance dI/dV."""
    if not nonlinear:
        return g * volts, jnp.broadcast_to(g, volts.shape)
    x = volts / v0
    return g * v0 * jnp.sinh(x), g * jnp.cosh(x)


def _chord(st: _Static, gc, rs, v0, vp, vq, p, q, vref):
    """Chord iterations for all input vectors at once, on one factorization.

    Every cell is frozen at the conductance c g, c = (1 + cosh(s / v0)) / 2, s the largest voltage any cell
    can see (the source span: node voltages lie between the extreme source potentials and ground). The
    cells' true slopes g cosh(V / v0) lie in [g, g cosh(s / v0)], so the iteration contracts in the energy norm
    of the frozen network by at least tanh^2(s / (2 v0)) < 1 per step (e.g. 0.14 at s / v0 = 0.8): it converges
    for any input, linearly, with no voltage limiting. Each step is one solve with the stored factors, shared
    by the whole batch, instead of one factorization per input vector and Newton step.

    Returns:
      p, q (n, m, K); iterations (); step (K,) (last step over max |v|); residual (K,) (last change of the
      cell currents over the largest cell current).
    """
    rp, rp0, rq, rq0 = rs
    lo = jnp.minimum(jnp.minimum(jnp.min(vp), jnp.min(vq)), 0)
    span = jnp.maximum(jnp.maximum(jnp.max(vp), jnp.max(vq)), 0) - lo
    c = (1 + jnp.cosh(span / v0)) / 2
    gl = c * gc
    fac = _factor(gl, rp, rp0, rq, rq0)
    target = _CHORD_TOL * st.tol

    def body(state):
        p, q, it, _, _ = state
        volts = p - q
        i, _ = _cell(gc[:, :, None], v0, volts, True)
        jc = i - gl[:, :, None] * volts  # companion current source, row node -> column node
        p1, q1, _, _ = _solve(fac, vp, vq, -jc, jc)
        step = jnp.maximum(jnp.max(jnp.abs(p1 - p), axis=(0, 1)), jnp.max(jnp.abs(q1 - q), axis=(0, 1))) / vref
        i1, _ = _cell(gc[:, :, None], v0, p1 - q1, True)
        scale = jnp.max(jnp.abs(i1), axis=(0, 1))
        res = jnp.max(jnp.abs(i1 - i), axis=(0, 1)) / jnp.where(scale > 0, scale, 1)
        return p1, q1, it + 1, step, res

    def cond(state):
        _, _, it, step, _ = state
        return (it < st.max_iterations) & jnp.any(~(step <= target))

    inf = jnp.full(vref.shape, jnp.inf, p.dtype)
    return lax.while_loop(cond, body, (p, q, jnp.asarray(0, jnp.int32), inf, inf))


_CHORD_TOL = 1e-2
"""The chord iteration stops at a step of ``_CHORD_TOL * tol``: its error is then ~ rho / (1 - rho) times that
step (rho < 1 the contraction), well below the error ~tol^2 that Newton leaves after a step of ``tol``."""


def _newton(st: _Static, gc, rs, v0, vp, vq, p, q):
    """Sinh cells: chord iterations for the whole batch (`_chord`); inputs it leaves unconverged (or
    non-finite) go on with Newton from the linear solution, one factorization per input and iteration."""
    rp, rp0, rq, rq0 = rs
    vref = jnp.maximum(jnp.max(jnp.abs(vp), axis=0), jnp.max(jnp.abs(vq), axis=0))
    vref = jnp.where(vref > 0, vref, 1)
    pc, qc, it_c, step_c, res_c = _chord(st, gc, rs, v0, vp, vq, p, q, vref)
    ok = (step_c <= _CHORD_TOL * st.tol) & jnp.all(jnp.isfinite(pc), axis=(0, 1)) & jnp.all(
        jnp.isfinite(qc), axis=(0, 1))
    p, q = jnp.where(ok, pc, p), jnp.where(ok, qc, q)
    inf = jnp.asarray(jnp.inf, p.dtype)
    step0, res0 = jnp.where(ok, step_c, inf), jnp.where(ok, res_c, inf)

    def one(args):
        p, q, vp, vq, vref, step0, res0 = args

        def body(state):
            p, q, it, _, _ = state
            volts = p - q
            i, gl = _cell(gc, v0, volts, True)
            jc = (i - gl * volts)[:, :, None]  # companion source, row node -> column node
            p1, q1, _, _ = _solve(_factor(gl, rp, rp0, rq, rq0), vp[:, None], vq[:, None], -jc, jc)
            dp, dq = p1[:, :, 0] - p, q1[:, :, 0] - q
            dv = jnp.max(jnp.abs(dp - dq))
            alpha = jnp.minimum(1, 2 * v0 / jnp.where(dv > 0, dv, 1))  # voltage limiting
            p, q = p + alpha * dp, q + alpha * dq
            step = jnp.maximum(jnp.max(jnp.abs(dp)), jnp.max(jnp.abs(dq))) / vref
            i_new, _ = _cell(gc, v0, p - q, True)
            mismatch = jnp.max(jnp.abs(i_new - jc[:, :, 0] - gl * (p - q)))
            scale = jnp.max(jnp.abs(i_new))
            return p, q, it + 1, step, mismatch / jnp.where(scale > 0, scale, 1)

        def cond(state):
            _, _, it, step, _ = state
            return (it < st.max_iterations) & ~(step <= st.tol)

        return lax.while_loop(cond, body, (p, q, jnp.asarray(0, jnp.int32), step0, res0))

    xs = (jnp.moveaxis(p, -1, 0), jnp.moveaxis(q, -1, 0), vp.T, vq.T, vref, step0, res0)
    p, q, it, step, res = lax.map(one, xs, batch_size=st.batch_size)
    return jnp.moveaxis(p, 0, -1), jnp.moveaxis(q, 0, -1), it + it_c, step, res


def _primal(st: _Static, theta, v2):
    """Full solve: outputs (currents, x, y, converged, step, residual, iterations) and tangent-solve data."""
    g, v0 = theta[0], theta[5]
    gc = _canon_g(g, st.transposed)
    rs = _canon_r(theta, st.transposed)
    vp, vq = _drives(v2, gc.shape, st.transposed)
    zeros = jnp.zeros((*gc.shape, v2.shape[0]), g.dtype)
    fac = _factor(gc, *rs)
    p, q, ip, iq = _solve(fac, vp, vq, zeros, zeros)
    k = v2.shape[0]
    if st.nonlinear:
        p, q, it, step, res = _newton(st, gc, rs, v0, vp, vq, p, q)
        i, _ = _cell(gc[:, :, None], v0, p - q, True)
        ip, iq = -jnp.sum(i, axis=1), jnp.sum(i, axis=0)  # terminal currents by KCL along each line
        fac = None
        converged = step <= st.tol
    else:
        it = jnp.zeros((k,), jnp.int32)
        step = res = jnp.zeros((k,), g.dtype)
        converged = jnp.ones((k,), bool)
    currents, x, y = _to_physical(p, q, ip, iq, st.transposed)
    return (currents, x, y, converged, step, res, it), (fac, p, q)


def _tangent(st: _Static, theta, v2, aux, theta_dot, v_dot, currents):
    """Implicit tangent: solve the linearized network for the parameter and input perturbations."""
    fac, p, q = aux
    gc = _canon_g(theta[0], st.transposed)
    rs = _canon_r(theta, st.transposed)
    vp, vq = _drives(v2, gc.shape, st.transposed)
    live = [i for i, t in enumerate(theta_dot) if not isinstance(t, SymbolicZero)]

    def kcl(*live_theta):  # net current leaving every node, at fixed node voltages
        th = list(theta)
        for i, t in zip(live, live_theta, strict=True):
            th[i] = t
        gcc = _canon_g(th[0], st.transposed)[:, :, None]
        rp, rp0, rq, rq0 = _canon_r(th, st.transposed)
        i, _ = _cell(gcc, th[5], p - q, st.nonlinear)
        wp = (p[:, :-1] - p[:, 1:]) / rp
        wq = (q[:-1] - q[1:]) / rq
        fp = i + jnp.pad(wp, ((0, 0), (0, 1), (0, 0))) - jnp.pad(wp, ((0, 0), (1, 0), (0, 0)))
        fp = fp.at[:, 0].add((p[:, 0] - vp) / rp0)
        fq = -i + jnp.pad(wq, ((0, 1), (0, 0), (0, 0))) - jnp.pad(wq, ((1, 0), (0, 0), (0, 0)))
        return fp, fq.at[-1].add((q[-1] - vq) / rq0)

    if live:
        _, (fp_dot, fq_dot) = jax.jvp(kcl, [theta[i] for i in live], [theta_dot[i] for i in live])
        bp, bq = -fp_dot, -fq_dot
    else:
        bp = bq = jnp.zeros_like(p)
    if isinstance(v_dot, SymbolicZero):
        v_dot = jnp.zeros_like(v2)
    vp_dot, vq_dot = _drives(v_dot, gc.shape, st.transposed)
    if st.nonlinear:  # the Jacobian is the network with conductances g cosh(V / v0): one factor per input
        rp, rp0, rq, rq0 = rs

        def one(args):
            p, q, vp_d, vq_d, bp_k, bq_k = args
            _, gl = _cell(gc, theta[5], p - q, True)
            out = _solve(_factor(gl, *rs), vp_d[:, None], vq_d[:, None], bp_k[:, :, None], bq_k[:, :, None])
            return tuple(o[..., 0] for o in out)

        xs = (p, q, vp_dot, vq_dot, bp, bq)
        xs = tuple(jnp.moveaxis(a, -1, 0) for a in xs)
        pd, qd, ipd, iqd = lax.map(one, xs, batch_size=st.batch_size)
        pd, qd, ipd, iqd = jnp.moveaxis(pd, 0, -1), jnp.moveaxis(qd, 0, -1), ipd.T, iqd.T
    else:
        pd, qd, ipd, iqd = _solve(fac, vp_dot, vq_dot, bp, bq)
    i_dot, x_dot, y_dot = _to_physical(pd, qd, ipd, iqd, st.transposed)
    # the output is the current through the sense terminal r_col + r_sense: add its explicit dependence
    r_out = theta[2] + theta[4]
    r_out_dot = sum(theta_dot[i] for i in (2, 4) if not isinstance(theta_dot[i], SymbolicZero))
    if not isinstance(r_out_dot, int):
        i_dot = i_dot - currents * (r_out_dot / r_out)
    return i_dot, x_dot, y_dot


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _fields(st: _Static, theta, v2):
    return _primal(st, theta, v2)[0]


@partial(_fields.defjvp, symbolic_zeros=True)
def _fields_jvp(st: _Static, primals, tangents):
    (theta, v2), (theta_dot, v_dot) = primals, tangents
    outs, aux = _primal(st, theta, v2)
    dots = _tangent(st, theta, v2, aux, theta_dot, v_dot, outs[0])
    return outs, (*dots, *(_zero_tangent(o) for o in outs[3:]))


def _zero_tangent(x):
    if jnp.issubdtype(x.dtype, jnp.floating):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)


def _sweep_currents(theta, v2) -> Array:
    """Linear-cell currents (K, C) by a forward sweep in the cheaper orientation (O(m^2) memory)."""
    g = theta[0]
    rows, cols = g.shape
    k = v2.shape[0]
    cost_rows = rows * (3.3 * cols**3 + 2 * cols**2 * min(k, rows))
    cost_cols = cols * (3.3 * rows**3 + 2 * rows**2 * cols)
    if cost_cols < cost_rows:  # columns as P lines: reciprocity gives the transfer matrix
        out = _sweep(_flip_t(g), *_canon_r(theta, True), jnp.eye(cols, dtype=g.dtype))
        return jnp.matmul(v2, out[::-1, ::-1], precision=HIGHEST)
    if k > rows:
        m = _sweep(g, *_canon_r(theta, False), jnp.eye(rows, dtype=g.dtype)).T
        return jnp.matmul(v2, m, precision=HIGHEST)
    return _sweep(g, *_canon_r(theta, False), v2.T).T


@jax.custom_jvp
def _linear_currents(theta, v2):
    return _sweep_currents(theta, v2)


@partial(_linear_currents.defjvp, symbolic_zeros=True)
def _linear_currents_jvp(primals, tangents):
    theta, v2 = primals
    theta_dot, v_dot = tangents
    rows, cols = theta[0].shape
    st = _Static(False, _full_transposed(rows, cols, v2.shape[0]), 0, 0.0, 1)
    outs, aux = _primal(st, theta, v2)
    i_dot = _tangent(st, theta, v2, aux, theta_dot, v_dot, outs[0])[0]
    return outs[0], i_dot


# ------------------------------------------------------------------------------------------------------------
# Public API.
# ------------------------------------------------------------------------------------------------------------


def _check(name: str, x, *, positive: bool = False, scalar: bool = True) -> None:
    """ValueError naming the field when a concrete value is out of range (traced values pass through)."""
    if isinstance(x, jax.core.Tracer):
        return
    a = np.asarray(x)
    if scalar and a.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise TypeError(f"{name} must be real, got dtype {a.dtype}")
    bad = ~np.isfinite(a) | ((a <= 0) if positive else (a < 0))
    if np.any(bad):
        where = "" if a.ndim == 0 else f" (at index {tuple(int(i) for i in np.argwhere(bad)[0])})"
        what = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be finite and {what}, got {a[bad].ravel()[0]!r}{where}")


def _prepare(g, v, r_row, r_col, r_driver, r_sense, v0):
    """Validate, pick the dtype, flatten v to (K, rows); return (theta, v2, batch shape, all wires ideal)."""
    g, v = jnp.asarray(g), jnp.asarray(v)
    if g.ndim != 2:
        raise ValueError(f"g must have shape (rows, cols), got {g.shape}")
    if v.ndim < 1 or v.shape[-1] != g.shape[0]:
        raise ValueError(f"v must have shape (..., rows) with rows = {g.shape[0]} (from g), got {v.shape}")
    if g.size == 0:
        raise ValueError(f"g is empty (shape {g.shape})")
    _check("g", g, scalar=False)
    if not isinstance(v, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(v))):
        raise ValueError("v contains NaN or inf values")
    rs = {"r_row": r_row, "r_col": r_col, "r_driver": r_driver, "r_sense": r_sense}
    for name, r in rs.items():
        _check(name, r)
    if v0 is not None:
        _check("v0", v0, positive=True)
    dtype = jnp.result_type(g.dtype, v.dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    ideal = all(not isinstance(r, jax.core.Tracer) and float(np.asarray(r)) == 0 for r in rs.values())
    theta = tuple(jnp.asarray(x, dtype) for x in (g, r_row, r_col, r_driver, r_sense, 1.0 if v0 is None else v0))
    return theta, v.astype(dtype).reshape(-1, g.shape[0]), v.shape[:-1], ideal


def _normalize(theta):
    """Conductances in units of max g (resistances in units of 1 / max g); returns (theta, scale in S)."""
    g, r_row, r_col, r_driver, r_sense, v0 = theta
    s = lax.stop_gradient(jnp.max(g))
    s = jnp.where(s > 0, s, 1)
    return (g / s, r_row * s, r_col * s, r_driver * s, r_sense * s, v0), s


@partial(jax.jit, static_argnums=0)
def _fields_scaled(st: _Static, theta, v2):
    theta_n, s = _normalize(theta)
    cur, x, y, *diag = _fields(st, theta_n, v2)
    return cur * s, x, y, *diag


@jax.jit
def _linear_currents_scaled(theta, v2):
    theta_n, s = _normalize(theta)
    return _linear_currents(theta_n, v2) * s


def _check_tol(tol) -> float:
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.floating | np.integer):
        raise TypeError(f"tol must be a number, got {type(tol).__name__} {tol!r}")
    if not (np.isfinite(tol) and 0 < tol < 1):
        raise ValueError(f"tol must be finite and in (0, 1) (a relative voltage step), got {tol!r}")
    return float(tol)


def _default_tol(dtype) -> float:
    return float(np.sqrt(np.finfo(dtype).eps))


def _raise_not_converged(converged, step, residual, iterations, tol) -> None:
    converged = np.asarray(converged)
    if np.all(converged):
        return
    bad = ~converged
    raise RuntimeError(
        f"IR-drop Newton solve did not converge for {int(bad.sum())} of {bad.size} input vectors: relative step "
        f"{float(np.max(np.asarray(step)[bad])):.3g} > tol {tol:.3g} after {int(np.max(np.asarray(iterations)))} "
        f"iterations (cell-current residual {float(np.max(np.asarray(residual)[bad])):.3g}). Increase "
        "max_iterations or tol, or check that v / v0 is moderate (sinh cells conduct exp(|v| / v0))."
    )


def _check_converged(sol: IRDropSolution, tol: float) -> None:
    args = (sol.converged, sol.step, sol.residual, sol.iterations)
    if any(isinstance(a, jax.core.Tracer) for a in args):
        jax.debug.callback(lambda *a: _raise_not_converged(*a, tol), *args)
    else:
        _raise_not_converged(*args, tol)


def solve(
    g: Array,
    v: Array,
    r_row: float | Array = 2.0,
    r_col: float | Array = 2.0,
    v0: float | Array | None = None,
    r_driver: float | Array = 0.0,
    r_sense: float | Array = 0.0,
    *,
    max_iterations: int = 50,
    tol: float | None = None,
    throw: bool = True,
) -> IRDropSolution:
    """Node voltages and column currents of a crossbar with wire resistance (exact nodal solve).

    Args:
      g: cell conductances, S, (rows, cols), >= 0. Batch instances with ``jax.vmap``.
      v: row (word-line) source voltages, V, (..., rows).
      r_row: word-line wire resistance per cell segment, ohm, >= 0 (may be traced).
      r_col: bit-line wire resistance per cell segment, ohm, >= 0 (may be traced).
      v0: ``None`` for linear cells (I = g V); else the sinh voltage scale, V, > 0: I = g v0 sinh(V / v0).
      r_driver: series resistance of each row driver, ohm, >= 0.
      r_sense: series resistance of each column's sense input, ohm, >= 0.
      max_iterations: Newton iteration cap (sinh cells). Static.
      tol: Newton stops when the largest node-voltage step is below ``tol * max|v|``; default
        sqrt(machine epsilon) of the dtype (the last step then leaves an error of order tol^2). Static.
      throw: raise ``RuntimeError`` if Newton does not converge (eagerly, or via ``jax.debug.callback``
        under ``jit``); with ``False`` read ``converged`` instead. Static.

    Returns:
      `IRDropSolution` with currents (..., cols), A; row and column node voltages (..., rows, cols), V;
      and the Newton diagnostics (...). All wire and terminal resistances exactly 0 give I = v @ g.

    Raises:
      ValueError: a shape mismatch, or a concrete negative/NaN/infinite conductance or resistance, or v0 <= 0.
    """
    theta, v2, batch, ideal = _prepare(g, v, r_row, r_col, r_driver, r_sense, v0)
    rows, cols = theta[0].shape
    k = v2.shape[0]
    tol = _default_tol(theta[0].dtype) if tol is None else _check_tol(tol)
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int | np.integer) or max_iterations < 1:
        raise ValueError(f"max_iterations must be an integer >= 1, got {max_iterations!r}")
    if ideal:
        cur = _ideal_currents(theta, v2, v0 is not None)
        x = jnp.broadcast_to(v2[:, :, None], (k, rows, cols))
        y = jnp.zeros_like(x)
        zero = jnp.zeros((k,), theta[0].dtype)
        diag = (jnp.ones((k,), bool), zero, zero, jnp.zeros((k,), jnp.int32))
        sol = IRDropSolution(cur, x, y, *diag)
    else:
        st = _Static(
            nonlinear=v0 is not None,
            transposed=_full_transposed(rows, cols, k),
            max_iterations=int(max_iterations),
            tol=tol,
            batch_size=min(k, _newton_batch(rows, cols, theta[0].dtype.itemsize)),
        )
        sol = IRDropSolution(*_fields_scaled(st, theta, v2))
    sol = IRDropSolution(*(a.reshape(*batch, *a.shape[1:]) for a in sol))
    if throw and v0 is not None:
        _check_converged(sol, tol)
    return sol


def column_currents(
    g: Array,
    v: Array,
    r_row: float | Array = 2.0,
    r_col: float | Array = 2.0,
    v0: float | Array | None = None,
    r_driver: float | Array = 0.0,
    r_sense: float | Array = 0.0,
    *,
    max_iterations: int = 50,
    tol: float | None = None,
    throw: bool = True,
) -> Array:
    """Column currents of a crossbar with wire resistance (IR drop), exact.

    Linear cells use one forward elimination sweep per call, shared by all input vectors, with O(cols^2)
    memory (no factor is stored); sinh cells use Newton (see `solve`, which also returns node voltages and
    convergence diagnostics). jit-able, vmap-able over g and v, differentiable w.r.t. g, v, the resistances
    and v0 by implicit differentiation.

    Args:
      g: cell conductances, S, (rows, cols), >= 0.
      v: row source voltages, V, (..., rows).
      r_row, r_col: word-/bit-line wire resistance per cell segment, ohm, >= 0.
      v0: ``None`` for linear cells; else the sinh voltage scale, V, > 0 (I = g v0 sinh(V / v0)).
      r_driver, r_sense: row-driver and column-sense series resistances, ohm, >= 0.
      max_iterations, tol, throw: Newton controls for sinh cells, as in `solve`. Static.

    Returns:
      currents into the columns' virtual grounds, A, (..., cols). With all resistances 0: v @ g.

    Raises:
      ValueError: as `solve`. RuntimeError: sinh cells and Newton did not converge (``throw=True``).
    """
    if v0 is not None:
        kw = {"max_iterations": max_iterations, "tol": tol, "throw": throw}
        return solve(g, v, r_row, r_col, v0, r_driver, r_sense, **kw).currents
    theta, v2, batch, ideal = _prepare(g, v, r_row, r_col, r_driver, r_sense, v0)
    if ideal:
        cur = _ideal_currents(theta, v2, False)
    else:
        cur = _linear_currents_scaled(theta, v2)
    return cur.reshape(*batch, cur.shape[-1])


def transfer_matrix(
    g: Array,
    r_row: float | Array = 2.0,
    r_col: float | Array = 2.0,
    r_driver: float | Array = 0.0,
    r_sense: float | Array = 0.0,
) -> Array:
    """Effective conductance matrix M of a linear crossbar with IR drop: column currents are v @ M.

    The factorization to reuse across input batches: one elimination sweep gives M, after which every batch
    costs one matrix product. Differentiable like `column_currents`.

    Args:
      g: cell conductances, S, (rows, cols), >= 0.
      r_row, r_col, r_driver, r_sense: resistances, ohm, >= 0, as in `column_currents`.

    Returns:
      M, S, (rows, cols): M[i, j] is the current into column j's ground per volt on row i. M == g when all
      resistances are 0.
    """
    rows = jnp.shape(g)[0] if jnp.ndim(g) == 2 else 1
    dtype = jnp.result_type(jnp.asarray(g).dtype, float)
    return column_currents(g, jnp.eye(rows, dtype=dtype), r_row, r_col, None, r_driver, r_sense)


def _ideal_currents(theta, v2, nonlinear: bool) -> Array:
    g, v0 = theta[0], theta[5]
    drive = v0 * jnp.sinh(v2 / v0) if nonlinear else v2
    return jnp.matmul(drive, g, precision=HIGHEST)
