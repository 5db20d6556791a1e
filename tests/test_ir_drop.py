"""Tests of the exact IR-drop crossbar solve (jaxcim.circuit.ir_drop).

References are independent of the block elimination: ngspice on the same netlist (tests/spice.py), a dense
float64 numpy nodal solve (plus a dense Newton for sinh cells) and closed forms (ideal wires, a single cell).
"""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from spice import require_ngspice, spice_currents

from jaxcim.circuit.ir_drop import column_currents, solve, transfer_matrix


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def rel_err(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def log_uniform(rng, lo, hi, shape):
    return np.exp(rng.uniform(np.log(lo), np.log(hi), shape))


# ---------------------------------------------------------------------------------------------------------
# Dense float64 nodal reference (row nodes then column nodes), written straight from the circuit convention.
# ---------------------------------------------------------------------------------------------------------


def dense_system(g, r_row, r_col, r_driver=0.0, r_sense=0.0):
    """Wire-and-terminal conductance matrix A (2RC, 2RC) and source map F (2RC, R); cells not included."""
    rows, cols = g.shape
    n = rows * cols
    a = np.zeros((2 * n, 2 * n))
    f = np.zeros((2 * n, rows))

    def link(i, j, c):
        a[i, i] += c
        a[j, j] += c
        a[i, j] -= c
        a[j, i] -= c

    for i in range(rows):
        x0 = i * cols
        a[x0, x0] += 1 / (r_driver + r_row)
        f[x0, i] = 1 / (r_driver + r_row)
        for j in range(cols - 1):
            link(x0 + j, x0 + j + 1, 1 / r_row)
    for j in range(cols):
        y = n + (rows - 1) * cols + j
        a[y, y] += 1 / (r_col + r_sense)
        for i in range(rows - 1):
            link(n + i * cols + j, n + (i + 1) * cols + j, 1 / r_col)
    return a, f


def dense_solve(g, v, r_row, r_col, v0=None, r_driver=0.0, r_sense=0.0):
    """Currents (K, C) and node voltages (K, 2RC) by Newton on the dense nodal equations."""
    rows, cols = g.shape
    n = rows * cols
    a, f = dense_system(g, r_row, r_col, r_driver, r_sense)
    gf = g.ravel()
    inc = np.vstack([np.eye(n), -np.eye(n)])  # cell branch incidence: row node minus column node
    out, fields = [], []
    for vk in np.atleast_2d(v):
        u = np.linalg.solve(a + inc @ np.diag(gf) @ inc.T, f @ vk)
        for _ in range(0 if v0 is None else 100):
            volts = inc.T @ u
            i, gl = gf * v0 * np.sinh(volts / v0), gf * np.cosh(volts / v0)
            du = np.linalg.solve(a + inc @ np.diag(gl) @ inc.T, f @ vk - a @ u - inc @ i)
            u += du
            if np.max(np.abs(du)) < 1e-15:
                break
        out.append(u[n + (rows - 1) * cols :] / (r_col + r_sense))
        fields.append(u)
    return np.array(out), np.array(fields)


# ---------------------------------------------------------------------------------------------------------
# ngspice.
# ---------------------------------------------------------------------------------------------------------

SPICE_CASES = [  # rows, cols, r_row, r_col, r_driver, r_sense, v0
    (1, 1, 2.0, 2.0, 0.0, 0.0, None),
    (3, 5, 0.1, 20.0, 0.0, 0.0, None),
    (8, 8, 2.0, 2.0, 5.0, 3.0, None),
    (16, 32, 20.0, 0.1, 0.0, 10.0, None),
    (32, 32, 2.0, 2.0, 0.0, 0.0, None),
    (1, 1, 2.0, 2.0, 1.0, 1.0, 0.25),
    (5, 3, 20.0, 2.0, 0.0, 0.0, 0.25),
    (8, 8, 2.0, 20.0, 2.0, 2.0, 0.1),
    (32, 32, 2.0, 2.0, 0.0, 0.0, 0.25),
]


def _spice_case(seed, rows, cols):
    rng = np.random.default_rng(seed)
    return log_uniform(rng, 1e-6, 1e-3, (rows, cols)), rng.uniform(-0.3, 0.3, (3, rows))


@pytest.mark.parametrize("case", SPICE_CASES, ids=lambda c: "x".join(map(str, c[:2])) + f"-r{c[2]}-{c[6]}")
def test_matches_ngspice_float64(x64, case):
    require_ngspice()
    rows, cols, r_row, r_col, r_driver, r_sense, v0 = case
    g, v = _spice_case(rows * cols, rows, cols)
    ref = spice_currents(g, v, r_row, r_col, v0, r_driver, r_sense)
    got = column_currents(g, v, r_row, r_col, v0, r_driver, r_sense)
    assert got.dtype == jnp.float64
    assert rel_err(got, ref) < 1e-6


@pytest.mark.parametrize("case", [SPICE_CASES[2], SPICE_CASES[4], SPICE_CASES[7], SPICE_CASES[8]], ids=str)
def test_matches_ngspice_float32(case):
    require_ngspice()
    rows, cols, r_row, r_col, r_driver, r_sense, v0 = case
    g, v = _spice_case(rows * cols, rows, cols)
    ref = spice_currents(g, v, r_row, r_col, v0, r_driver, r_sense)
    got = column_currents(g.astype(np.float32), v.astype(np.float32), r_row, r_col, v0, r_driver, r_sense)
    assert got.dtype == jnp.float32
    assert rel_err(got, ref) < 1e-4


@pytest.mark.slow
def test_matches_ngspice_large_ir_drop(x64):
    """NeuRRAM-range cells on a 64 x 64 array with 5-ohm wires: a strong IR drop (tens of percent)."""
    require_ngspice()
    rng = np.random.default_rng(7)
    g, v = rng.uniform(1e-6, 40e-6, (64, 64)), rng.uniform(0, 0.2, (2, 64))
    ref = spice_currents(g, v, 5.0, 5.0)
    assert rel_err(v @ g, ref) > 0.05  # the case is not trivially ideal
    assert rel_err(column_currents(g, v, 5.0, 5.0), ref) < 1e-6
    assert rel_err(column_currents(g.astype(np.float32), v.astype(np.float32), 5.0, 5.0), ref) < 1e-4


# ---------------------------------------------------------------------------------------------------------
# Analytic limits and the dense reference.
# ---------------------------------------------------------------------------------------------------------


def test_zero_resistance_is_ideal(x64):
    rng = np.random.default_rng(0)
    g, v = rng.uniform(1e-6, 1e-4, (6, 5)), rng.uniform(-1, 1, (4, 6))
    np.testing.assert_allclose(column_currents(g, v, 0.0, 0.0), v @ g, rtol=1e-14)
    np.testing.assert_allclose(transfer_matrix(g, 0.0, 0.0), g, rtol=1e-14)
    sinh = (0.2 * np.sinh(v / 0.2)) @ g
    np.testing.assert_allclose(column_currents(g, v, 0.0, 0.0, v0=0.2), sinh, rtol=1e-14)
    # traced zeros take the general path, whose resistance-form formulas are exact at 0
    traced = jax.jit(lambda r: column_currents(g, v, r, r, r_driver=r, r_sense=r))(0.0)
    np.testing.assert_allclose(traced, v @ g, rtol=1e-12)
    traced = jax.jit(lambda r: solve(g, v, r, r, v0=0.2, r_driver=r, r_sense=r).currents)(0.0)
    np.testing.assert_allclose(traced, sinh, rtol=1e-12)


def test_zero_wires_with_terminal_resistances(x64):
    """r_row = r_col = 0: each line is one node; an (R + C)-node nodal solve is the exact reference."""
    rng = np.random.default_rng(1)
    rows, cols, r_driver, r_sense = 4, 6, 300.0, 500.0
    g, v = rng.uniform(1e-4, 1e-3, (rows, cols)), rng.uniform(-1, 1, (3, rows))
    a = np.block([[np.diag(g.sum(1) + 1 / r_driver), -g], [-g.T, np.diag(g.sum(0) + 1 / r_sense)]])
    u = np.linalg.solve(a, np.vstack([v.T / r_driver, np.zeros((cols, 3))]))
    ref = u[rows:].T / r_sense
    for rr, rc in [(0.0, 0.0), (jnp.asarray(0.0), jnp.asarray(0.0))]:
        np.testing.assert_allclose(column_currents(g, v, rr, rc, r_driver=r_driver, r_sense=r_sense), ref, rtol=1e-12)


@pytest.mark.parametrize("shape, r_term", [((32, 32), 1e7), ((40, 16), 1e12), ((16, 40), 1e6)])
def test_large_terminal_resistances_match_dense(shape, r_term):
    """Sense (and driver) resistances up to 1e12 ohm against the float64 dense nodal solve. The terminal step
    once formed x - r F x, which lost every digit when r E >> 1 (float32: 66 % error at 1e6 ohm, 12x at 1e7)."""
    rng = np.random.default_rng(3)
    g, v = rng.uniform(1e-6, 1e-4, shape), rng.uniform(-0.2, 0.2, (3, shape[0]))
    for kw in ({"r_sense": r_term}, {"r_driver": r_term}):
        ref = dense_solve(g, v, 2.0, 2.0, **kw)[0]
        with jax.enable_x64(True):
            i64 = np.asarray(column_currents(jnp.asarray(g), jnp.asarray(v), 2.0, 2.0, **kw))
        assert np.max(np.abs(i64 - ref)) < 1e-10 * np.max(np.abs(ref)), kw
        i32 = np.asarray(column_currents(jnp.asarray(g, jnp.float32), jnp.asarray(v, jnp.float32), 2.0, 2.0, **kw))
        assert np.max(np.abs(i32 - ref)) < 3e-6 * np.max(np.abs(ref)), kw


def test_single_cell(x64):
    g, v = 1e-4, np.array([[0.3], [-0.1]])
    for r in [(2.0, 3.0, 0.0, 0.0), (0.0, 5.0, 7.0, 0.0), (2.0, 3.0, 4.0, 5.0)]:
        expect = v / (1 / g + sum(r))
        np.testing.assert_allclose(column_currents(np.array([[g]]), v, r[0], r[1], None, r[2], r[3]), expect,
                                   rtol=1e-13)


@pytest.mark.parametrize("shape", [(7, 7), (9, 4), (4, 9)])  # both elimination orientations
@pytest.mark.parametrize("v0", [None, 0.25])
def test_uniform_array_matches_dense(x64, shape, v0):
    g = np.full(shape, 5e-4)
    v = np.linspace(0.1, 0.4, shape[0])[None] * np.array([[1.0], [-0.5]])
    ref, fields = dense_solve(g, v, 3.0, 7.0, v0, 10.0, 4.0)
    sol = solve(g, v, 3.0, 7.0, v0, 10.0, 4.0)
    tol = 1e-12 if v0 is None else 1e-10  # sinh: the chord iteration stops at a step of 1.5e-10 (linear rate)
    assert rel_err(sol.currents, ref) < tol
    n = g.size
    assert np.max(np.abs(np.asarray(sol.row_voltages).reshape(2, n) - fields[:, :n])) < tol
    assert np.max(np.abs(np.asarray(sol.col_voltages).reshape(2, n) - fields[:, n:])) < tol


@pytest.mark.parametrize("shape", [(6, 6), (10, 3), (3, 10)])
def test_random_array_matches_dense(x64, shape):
    rng = np.random.default_rng(sum(shape))
    g, v = log_uniform(rng, 1e-6, 1e-3, shape), rng.uniform(-0.3, 0.3, (3, shape[0]))
    for v0 in [None, 0.1]:
        ref, _ = dense_solve(g, v, 20.0, 5.0, v0, 2.0, 1.0)
        assert rel_err(column_currents(g, v, 20.0, 5.0, v0, 2.0, 1.0), ref) < 1e-11
    ref, _ = dense_solve(g, v, 20.0, 5.0, None, 2.0, 1.0)
    assert rel_err(v @ transfer_matrix(g, 20.0, 5.0, 2.0, 1.0), ref) < 1e-11


def test_strong_nonlinearity_converges(x64):
    """|V| / v0 up to 5: Newton with voltage limiting still converges to the dense reference."""
    rng = np.random.default_rng(3)
    g, v = rng.uniform(1e-4, 1e-3, (5, 6)), rng.uniform(-0.5, 0.5, (3, 5))
    ref, _ = dense_solve(g, v, 50.0, 50.0, 0.1)
    sol = solve(g, v, 50.0, 50.0, 0.1)
    assert bool(jnp.all(sol.converged)) and float(jnp.max(sol.residual)) < 1e-10
    assert rel_err(sol.currents, ref) < 1e-11


def test_float32_accuracy_normalized():
    """float32 (the default) against float64 on a 64 x 64 array with a strong IR drop."""
    rng = np.random.default_rng(4)
    g, v = rng.uniform(1e-6, 40e-6, (64, 64)), rng.uniform(0, 0.2, (8, 64))
    with jax.enable_x64(True):
        ref = np.asarray(column_currents(g, v, 2.0, 2.0))
        ref_sinh = np.asarray(column_currents(g, v, 2.0, 2.0, v0=0.25))
    got = column_currents(g.astype(np.float32), v.astype(np.float32), 2.0, 2.0)
    assert got.dtype == jnp.float32 and rel_err(got, ref) < 1e-5
    got = column_currents(g.astype(np.float32), v.astype(np.float32), 2.0, 2.0, v0=0.25)
    assert rel_err(got, ref_sinh) < 1e-5


# ---------------------------------------------------------------------------------------------------------
# Gradients (implicit), transformations, reuse of the factorization.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, v0", [((4, 3), None), ((3, 4), None), ((4, 3), 0.3)])  # both orientations linear
def test_gradients_match_finite_differences(x64, shape, v0):
    """Normalized units (g ~ 1 S, r ~ 0.1-0.5 ohm) so the IR drop is strong and differences well conditioned."""
    rng = np.random.default_rng(5)
    g, v = rng.uniform(0.2, 1.0, shape), rng.uniform(-0.5, 0.5, (2, shape[0]))

    def f(g, v, r_row, r_col, r_driver, r_sense):
        return column_currents(g, v, r_row, r_col, v0, r_driver, r_sense)

    check_grads(f, (g, v, 0.3, 0.2, 0.1, 0.4), order=1, modes=["fwd", "rev"], eps=1e-6)
    if v0 is not None:
        check_grads(lambda v0: column_currents(g, v, 0.3, 0.2, v0), (v0,), order=1, modes=["fwd", "rev"])
        fields = lambda g, v: solve(g, v, 0.3, 0.2, v0).col_voltages
        check_grads(fields, (g, v), order=1, modes=["rev"], eps=1e-6)


def test_gradient_wrt_g_at_zero_wire(x64):
    """Zero row wires with a driver resistance: values and g-gradients stay finite and correct."""
    rng = np.random.default_rng(6)
    g, v = rng.uniform(0.2, 1.0, (3, 4)), rng.uniform(-0.5, 0.5, (2, 3))
    check_grads(lambda g: column_currents(g, v, 0.0, 0.3, r_driver=0.2), (g,), order=1, modes=["fwd", "rev"])
    grad = jax.grad(lambda g, r: column_currents(g, v, r, 0.3).sum())(g, 0.0)
    assert np.all(np.isfinite(grad))


def test_jit_equals_eager_and_no_retrace():
    rng = np.random.default_rng(8)
    g = rng.uniform(1e-6, 1e-4, (8, 6)).astype(np.float32)
    v = rng.uniform(0, 0.3, (5, 8)).astype(np.float32)
    traces = []

    @jax.jit
    def f(g, v, r):
        traces.append(1)
        return column_currents(g, v, r, 2 * r), solve(g, v, r, 2 * r, v0=0.25).currents

    for r in (1.0, 3.0):
        lin, nl = f(g, v, r)
        np.testing.assert_allclose(lin, column_currents(g, v, r, 2 * r), rtol=1e-5)
        np.testing.assert_allclose(nl, column_currents(g, v, r, 2 * r, v0=0.25), rtol=1e-5)
    assert len(traces) == 1


def test_vmap_over_instances_inputs_and_wires(x64):
    rng = np.random.default_rng(9)
    gs, v = rng.uniform(1e-5, 1e-3, (3, 5, 4)), rng.uniform(-0.3, 0.3, (2, 5))
    rs = jnp.array([0.5, 2.0, 20.0])
    for v0 in (None, 0.2):
        batched = jax.vmap(lambda g, r, v0=v0: column_currents(g, v, r, r, v0))(gs, rs)
        loop = [column_currents(g, v, float(r), float(r), v0) for g, r in zip(gs, rs, strict=True)]
        np.testing.assert_allclose(batched, np.stack(loop), rtol=1e-12)
    # leading input dimensions are kept and match one vector at a time
    vv = rng.uniform(-0.3, 0.3, (2, 3, 5))
    out = column_currents(gs[0], vv, 2.0, 2.0)
    assert out.shape == (2, 3, 4)
    np.testing.assert_allclose(out[1, 2], column_currents(gs[0], vv[1, 2], 2.0, 2.0), rtol=1e-12)
    assert column_currents(gs[0], vv[0, 0], 2.0, 2.0).shape == (4,)


def test_inputs_share_one_factorization():
    """A batch of input vectors is extra right-hand sides of one elimination, not one solve per vector."""
    g = jnp.ones((6, 6)) * 1e-4

    def cholesky_shapes(k):
        jaxpr = jax.make_jaxpr(lambda v: column_currents(g, v, 2.0, 2.0))(jnp.ones((k, 6)))
        found = []

        def walk(jp):
            for eqn in jp.eqns:
                if eqn.primitive.name == "cholesky":
                    found.append(eqn.invars[0].aval.shape)
                for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                    walk(sub)

        walk(jaxpr.jaxpr)
        return found

    assert cholesky_shapes(2) == cholesky_shapes(50)
    assert all(shape == (6, 6) for shape in cholesky_shapes(50))
    v = np.random.default_rng(0).uniform(0, 0.3, (50, 6)).astype(np.float32)
    np.testing.assert_allclose(v @ transfer_matrix(g, 2.0, 2.0), column_currents(g, v, 2.0, 2.0), rtol=2e-5)


# ---------------------------------------------------------------------------------------------------------
# Bad input and non-convergence.
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"r_row": -1.0}, ValueError, "r_row"),
        ({"r_col": float("nan")}, ValueError, "r_col"),
        ({"r_driver": -0.1}, ValueError, "r_driver"),
        ({"r_sense": float("inf")}, ValueError, "r_sense"),
        ({"v0": 0.0}, ValueError, "v0"),
        ({"g": -np.ones((3, 2))}, ValueError, "g must be finite and >= 0"),
        ({"g": np.full((3, 2), np.nan)}, ValueError, "g must"),
        ({"g": np.ones(3)}, ValueError, "g must have shape (rows, cols)"),
        ({"v": np.ones((4, 2))}, ValueError, "v must have shape (..., rows)"),
        ({"r_row": np.ones(2)}, ValueError, "r_row must be a scalar"),
    ],
)
def test_bad_input(kwargs, error, fragment):
    args = {"g": np.ones((3, 2)) * 1e-4, "v": np.ones(3), "r_row": 1.0, "r_col": 1.0} | kwargs
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        column_currents(**args)


def test_not_converged_raises():
    g, v = np.full((3, 3), 1e-3, np.float32), np.full((2, 3), 0.5, np.float32)
    with pytest.raises(RuntimeError, match="did not converge"):
        column_currents(g, v, 50.0, 50.0, v0=0.1, max_iterations=1)
    with pytest.raises(Exception, match="did not converge"):
        jax.jit(lambda g: column_currents(g, v, 50.0, 50.0, v0=0.1, max_iterations=1))(g).block_until_ready()
    sol = solve(g, v, 50.0, 50.0, v0=0.1, max_iterations=1, throw=False)
    assert not bool(jnp.any(sol.converged)) and sol.iterations.shape == (2,)
    assert bool(jnp.all(solve(g, v, 50.0, 50.0, v0=0.1).converged))
