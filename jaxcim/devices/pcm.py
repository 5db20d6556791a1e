"""IBM PCM-like statistical model: programming noise, conductance drift, 1/f read noise.

All kernels act elementwise on conductance arrays (siemens) and are jit/vmap/grad friendly.

References:
  S. R. Nandakumar et al., "Phase-change memory models for deep learning training and inference",
  ICECS 2019; V. Joshi et al., "Accurate deep neural network inference using computational phase-change
  memory", Nat. Commun. 11, 2473 (2020). Fits on a 1M-device PCM array as published in IBM aihwkit's
  ``PCMLikeNoiseModel`` (g_max = 25 uS).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxcim import rng
from jaxcim.config import check_range
from jaxcim.devices.base import DeviceModel, register

G_MAX_REF = 25e-6
"""Maximum conductance of the measured PCM array the fits were made on, S (Joshi 2020)."""
T0 = 20.0
"""Drift reference time t0, s (Joshi 2020; aihwkit ``PCMLikeNoiseModel.t_0``)."""
T_READ = 250e-9
"""Read pulse duration used in the 1/f read-noise integral, s (aihwkit ``t_read``)."""
PROG_POLY_US = (0.26348, 1.9650, -1.1731)
"""Programming noise sigma in uS as a polynomial in x = G_target / g_max, ascending (Nandakumar 2019)."""


def _x(g_target, g_max):
    return jnp.clip(g_target / g_max, 0.0, 1.0)


def programming_sigma(g_target, g_max=G_MAX_REF, poly_us=PROG_POLY_US):
    """Standard deviation of one PCM write around its target.

    Args:
      g_target: target conductances, S, any shape.
      g_max: the array's maximum conductance, S. The published fit is in uS at g_max = 25 uS; other
        ranges scale it proportionally (noise relative to range is kept).

    Returns:
      sigma, S, same shape. At x = 1: 1.055 uS; x = 0.1: 0.448 uS; x = 0.01: 0.283 uS (g_max = 25 uS).
    """
    x = _x(g_target, g_max)
    c0, c1, c2 = poly_us
    return (c0 + c1 * x + c2 * x * x) * 1e-6 * (g_max / G_MAX_REF)


def drift_nu_stats(g_target, g_max=G_MAX_REF):
    """Mean and standard deviation of the drift exponent nu as functions of the programmed state.

    mu = clip(-0.0155 ln x + 0.0244, 0.049, 0.1), s = clip(-0.0125 ln x - 0.0059, 0.008, 0.045),
    x = G_target / g_max (Joshi 2020 / aihwkit). x = 1 -> (0.049, 0.008); x = 0.1 -> (0.0601, 0.0229).

    Returns:
      (mu, s), dimensionless, same shape as ``g_target``.
    """
    lx = jnp.log(jnp.clip(g_target / g_max, 1e-6, None))
    mu = jnp.clip(-0.0155 * lx + 0.0244, 0.049, 0.1)
    s = jnp.clip(-0.0125 * lx - 0.0059, 0.008, 0.045)
    return mu, s


def drift(g, nu, t, t0=T0):
    """Power-law conductance drift G(t) = G_prog * ((t + t0) / t0) ** -nu.

    Args:
      g: conductances right after programming, S.
      nu: drift exponents (dimensionless), broadcastable to ``g``.
      t: time since programming, s (>= 0).
      t0: reference time, s.

    Returns:
      conductances at time t, S. For nu = 0.049: x0.775 after 1 h, x0.664 after 1 day, x0.497 after 1 year.
    """
    return g * jnp.exp(-nu * jnp.log((t + t0) / t0))  # one log for the scalar t, one exp per cell


def read_noise_q(g_target, g_max=G_MAX_REF):
    """1/f read-noise amplitude Qs = min(0.0088 / x**0.65, 0.2), x = G_target / g_max (Joshi 2020)."""
    lx = jnp.log(jnp.clip(g_target / g_max, 1e-6, None))  # the same log as `drift_nu_stats` (XLA shares it)
    return jnp.minimum(0.0088 * jnp.exp(-0.65 * lx), 0.2)


def read_noise_sigma(g, g_target, t, g_max=G_MAX_REF, t_read=T_READ):
    """Standard deviation of the 1/f read noise of a PCM cell read at time t after programming.

    sigma = G * Qs * sqrt(ln((t + t_r) / (2 t_r))). For t < t_r the integral is empty and sigma = 0.

    Args:
      g: current conductances, S. g_target: target conductances, S. t: time since programming, s.

    Returns:
      sigma, S, same shape as ``g``.
    """
    integral = jnp.log(jnp.maximum((t + t_read) / (2.0 * t_read), 1.0))
    root = jnp.where(integral > 0, jnp.sqrt(jnp.where(integral > 0, integral, 1.0)), 0.0)
    return jnp.abs(g) * read_noise_q(g_target, g_max) * root


@register("pcm-ibm")
class PCMLike(DeviceModel):
    """IBM PCM-like device: state-dependent programming noise, power-law drift with a per-cell exponent drawn at
    programming, 1/f read noise growing with time (Nandakumar 2019, Joshi 2020; aihwkit ``PCMLikeNoiseModel``).

    Attributes (besides those of `DeviceModel`; g_max defaults to the measured array's 25 uS):
      prog_poly_us: programming sigma in uS at g_max = 25 uS, ascending polynomial in x = G_target / g_max
        (Nandakumar 2019: 0.26348, 1.9650, -1.1731).
      t0: drift reference time, s (Joshi 2020: 20 s).
      t_read: read pulse duration of the 1/f noise integral, s (aihwkit: 250 ns).
    """

    g_max: Any = G_MAX_REF
    prog_poly_us: Any = PROG_POLY_US
    t0: Any = T0
    t_read: Any = T_READ

    def check(self) -> None:
        check_range("device", "t0", self.t0, 0.0, lo_open=True)
        check_range("device", "t_read", self.t_read, 0.0, lo_open=True)
        if not isinstance(self.prog_poly_us, tuple | list) or len(self.prog_poly_us) != 3:
            raise TypeError(f"device.prog_poly_us must be 3 coefficients, got {self.prog_poly_us!r}")

    def programming_sigma(self, g_target):
        return programming_sigma(g_target, self.g_max, tuple(self.prog_poly_us))

    def time_params(self, key: jax.Array, targets):
        z = rng.normals(key, [t.shape for t in targets], targets[0].dtype)

        def nu(t, z):
            mu, s = drift_nu_stats(t, self.g_max)
            return jnp.maximum(mu + s * z, 0.0)

        return tuple(nu(t, z) for t, z in zip(targets, z, strict=True))

    def at_time(self, g_prog, g_target, params, t):
        return drift(g_prog, params * self.drift_scale, t, self.t0)

    def read_sigma(self, g, g_target, t):
        return read_noise_sigma(g, g_target, t, self.g_max, self.t_read)
