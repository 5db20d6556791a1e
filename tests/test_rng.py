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


def test_uniform_distribution():
    u = np.asarray(rng.uniform(jax.random.key(7), (200_000,)), dtype=np.float64)
    assert u.min() >= 0 and u.max() < 1
    assert stats.kstest(u, "uniform").pvalue > 1e-3


def test_keyed_reproducible_and_batching_invariant():
    key = jax.random.key(5)
    a = rng.normal(key, (3, 50))
    np.testing.assert_array_equal(a, rng.normal(key, (3, 50)))
    np.testing.assert_array_equal(a, jax.jit(rng.normal, static_argnums=1)(key, (3, 50)))
    assert not np.array_equal(a, rng.normal(jax.random.key(6), (3, 50)))
    keys = jax.random.split(key, 4)
    batched = jax.vmap(lambda k: rng.normal(k, (100,)))(keys)
    for i in range(4):
        np.testing.assert_array_equal(batched[i], rng.normal(keys[i], (100,)))
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
