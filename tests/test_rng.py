"""The keyed hash sampler of jaxcim.rng against scipy's normal/uniform distributions and JAX's semantics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcim import rng

N = 1 << 20


@pytest.fixture(scope="module")
def z():
    return np.asarray(rng.normal(jax.random.key(123), (N,)), dtype=np.float64)


def test_normal_moments_within_sampling_error(z):
    se = 1 / np.sqrt(N)
    assert abs(z.mean()) < 4 * se
    assert abs(z.var() - 1) < 4 * np.sqrt(2) * se
    assert abs(stats.skew(z)) < 4 * np.sqrt(6) * se
    assert abs(stats.kurtosis(z)) < 4 * np.sqrt(24) * se


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normal_kolmogorov_smirnov_vs_scipy(seed):
    z = np.asarray(rng.normal(jax.random.key(seed), (200_000,)), dtype=np.float64)
    assert stats.kstest(z, stats.norm.cdf).pvalue > 1e-3


@pytest.mark.parametrize("k", [2.0, 3.0, 4.0])
def test_normal_tail_probabilities(z, k):
    p = 2 * stats.norm.sf(k)
    count = np.sum(np.abs(z) > k)
    assert abs(count - N * p) < 5 * np.sqrt(N * p * (1 - p)) + 1


def test_normal_chi2_histogram(z):
    edges = np.concatenate([[-np.inf], np.linspace(-4, 4, 41), [np.inf]])
    observed, _ = np.histogram(z, edges)
    expected = N * np.diff(stats.norm.cdf(edges))
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_neighbours_and_keys_are_uncorrelated(z):
    lim = 5 / np.sqrt(N)
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < lim
    z2 = np.asarray(rng.normal(jax.random.key(124), (N,)))
    assert abs(np.corrcoef(z, z2)[0, 1]) < lim
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(0), i))(jnp.arange(512))
    m = np.asarray(jax.vmap(lambda k: rng.normal(k, (2048,)))(keys))
    c = np.corrcoef(m)[np.triu_indices(512, 1)]  # every pair of instance streams
    assert np.abs(c).max() < 6 / np.sqrt(2048)
    assert abs(c.mean()) < 5 / np.sqrt(2048 * c.size)


@pytest.fixture(scope="module")
def pair():
    z1, z2 = rng.normal_pair(jax.random.key(321), (N,))
    return np.asarray(z1, np.float64), np.asarray(z2, np.float64)


def test_pair_each_normal_and_first_is_normal(pair):
    z1, z2 = pair
    np.testing.assert_array_equal(z1, np.asarray(rng.normal(jax.random.key(321), (N,)), np.float64))
    for z in pair:
        assert stats.kstest(z, stats.norm.cdf).pvalue > 1e-3
        assert abs(z.mean()) < 4 / np.sqrt(N) and abs(z.var() - 1) < 4 * np.sqrt(2 / N)
        assert abs(stats.kurtosis(z)) < 4 * np.sqrt(24 / N)
    # the generated tail reaches ~5.9 sigma (24-bit radius uniform): P(|z| > 5) = 5.7e-7
    assert max(np.abs(z1).max(), np.abs(z2).max()) < 5.9


def test_pair_is_jointly_gaussian_and_independent(pair):
    """(z1, z2) of a pair: independent standard normals iff z1^2 + z2^2 ~ chi2(2) (exponential, mean 2) and
    the angle is uniform and independent of the radius; check those and the correlations of z, z^2 and |z|."""
    z1, z2 = pair
    lim = 5 / np.sqrt(N)
    for f in (lambda z: z, np.square, np.abs):
        assert abs(np.corrcoef(f(z1), f(z2))[0, 1]) < lim
    r2 = z1 * z1 + z2 * z2
    assert stats.kstest(r2, stats.chi2(2).cdf).pvalue > 1e-3
    angle = np.arctan2(z2, z1)
    assert stats.kstest(angle, stats.uniform(-np.pi, 2 * np.pi).cdf).pvalue > 1e-3
    assert abs(stats.spearmanr(r2[: 1 << 16], angle[: 1 << 16]).statistic) < 5 / np.sqrt(1 << 16)
    # tails of the sum and difference (a differential pair's G+ - G-): N(0, 2)
    for d in (z1 - z2, z1 + z2):
        count = np.sum(np.abs(d) > 4 * np.sqrt(2))
        p = 2 * stats.norm.sf(4)
        assert abs(count - N * p) < 5 * np.sqrt(N * p) + 1


def test_normals_pairs_same_shapes_only():
    key = jax.random.key(9)
    a, b = rng.normals(key, [(4, 5), (4, 5)])
    np.testing.assert_array_equal(a, rng.normal_pair(key, (4, 5))[0])
    np.testing.assert_array_equal(b, rng.normal_pair(key, (4, 5))[1])
    (c,) = rng.normals(key, [(7,)])
    np.testing.assert_array_equal(c, rng.normal(key, (7,)))
    p, q = rng.normals(key, [(4, 5), (4, 1)])  # different shapes: two separate draws with split keys
    assert p.shape == (4, 5) and q.shape == (4, 1)
    assert not np.array_equal(p[:, :1], q)


def test_uniform_distribution():
    u = np.asarray(rng.uniform(jax.random.key(7), (200_000,)), dtype=np.float64)
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_keyed_reproducible_and_batching_invariant():
    key = jax.random.key(5)
    a = rng.normal(key, (3, 50))
    np.testing.assert_array_equal(a, rng.normal(key, (3, 50)))
    # compiled, the polynomials may be contracted to fused multiply-adds: the same numbers to float rounding
    np.testing.assert_allclose(a, jax.jit(rng.normal, static_argnums=1)(key, (3, 50)), rtol=3e-7, atol=3e-7)
    assert not np.array_equal(a, rng.normal(jax.random.key(6), (3, 50)))
    keys = jax.random.split(key, 4)
    batched = jax.jit(jax.vmap(lambda k: rng.normal(k, (100,))))(keys)
    one = jax.jit(lambda k: rng.normal(k, (100,)))
    for i in range(4):  # one compiled program, any batch: bit for bit
        np.testing.assert_array_equal(batched[i], one(keys[i]))
    # element values depend on the flat position only: the shape is a view of the same stream
    np.testing.assert_array_equal(a.reshape(-1), rng.normal(key, (150,)))


def test_float64_resolution_reaches_further_tails():
    with jax.enable_x64(True):
        z = np.asarray(rng.normal(jax.random.key(1), (N,), jnp.float64))
        assert z.dtype == np.float64
        assert stats.kstest(z[:200_000], stats.norm.cdf).pvalue > 1e-3
        u = np.asarray(rng.uniform(jax.random.key(1), (1000,), jnp.float64))
        assert u.dtype == np.float64 and 0 <= u.min() and u.max() < 1
    assert len(np.unique(z)) == N  # 52-bit uniforms: no repeated values


def test_bad_arguments():
    with pytest.raises(ValueError, match="non-negative"):
        rng.normal(jax.random.key(0), (-1, 2))
    with pytest.raises(TypeError, match="floating"):
        rng.normal(jax.random.key(0), (2,), jnp.int32)
