"""A device fitted to measured cells: programming error, retention over log time and temperature, read noise.

The model is built so that the conductance a cell shows at any (target, time, temperature) is Gaussian with a
closed-form mean and variance, and the reads of one cell at several times are jointly Gaussian with a closed-form
covariance: `jaxcim.calibrate` fits it to measured cells by maximum likelihood through exactly the functions the
simulator samples with. With x = G_target / g_max and every polynomial in x (ascending coefficients):

- programming: G_prog = G_target + g_max m(x) + g_max |s(x)| z1
  (mean error and spread vs G as polynomials, Nandakumar 2019 for PCM, Wan 2022 for ReRAM);
- effective time at the reference temperature: t_eff = t * exp((E_a / k_B) (1 / T_ref - 1 / T)) (Arrhenius
  acceleration of retention, JEDEC JEP122);
- log time: u = ln(1 + t_eff / t0);
- retention: G(t) = D (G_prog + g_max c(x) u z2), D = exp(-nu(x) u): power-law mean drift
  G ~ (1 + t / t0)^-nu (Ielmini 2007, Joshi 2020) and a spread growing linearly in log time with a per-cell
  draw z2 made at programming (the statistical relaxation of analog ReRAM levels, Zhao 2017, Wan 2022; the
  first-order effect of a per-cell drift exponent in PCM, Joshi 2020);
- read: each read adds g_max D sqrt(r(x)^2 + w(x)^2 u) eps, independent between reads: short-term read noise
  (Wan 2022) whose variance may grow linearly in log time, as the 1/f read noise of PCM does (Joshi 2020:
  sigma^2 ~ ln(t / 2 t_read)).

z1, z2 and eps are independent standard normals. A cell read at times t_1..t_m therefore has mean
mu_i = D_i (G_target + g_max m(x)) and covariance a a^T + b b^T + diag(q^2) with a_i = g_max s(x) D_i,
b_i = g_max c(x) u_i D_i, q_i^2 = g_max^2 D_i^2 (r(x)^2 + w(x)^2 u_i): a linear Gaussian random-effects model
(Laird & Ware 1982) whose likelihood `cell_log_likelihood` evaluates with the Woodbury identity. The one departure
from it in simulation: the programming step of `jaxcim.programming` floors a write at 0 S, which matters only for
targets within a few spreads of 0.

The temperature a cell spends its time at is the leaf ``temperature`` (K); the model reads ``t`` seconds at that
temperature as ``t_eff`` seconds at ``reference_temperature``, so ``device.replace(temperature=358.15)`` asks for
retention at 85 C. Every parameter is a leaf: a stacked model (leading axis n on every leaf, from
`jaxcim.calibrate.CalibrationResult.sample_models`) is vmappable.

Defaults are an exactly programmed, drift-free cell read with 1 % relative read noise (r(x) = 0.01 x, the
short-term read noise of Wan 2022), no acceleration: the model is meant to be filled by `jaxcim.calibrate`.

References:
  S. R. Nandakumar et al., "Phase-change memory models for deep learning training and inference", ICECS 2019
  (programming spread as a polynomial in G / g_max).
  W. Wan et al., "A compute-in-memory chip based on resistive random-access memory", Nature 608, 504-512 (2022)
  (spread vs G and its growth after programming, short-term read noise).
  D. Ielmini, A. L. Lacaita, D. Mantegazza, "Recovery and drift dynamics of resistance and threshold voltages in
  phase-change memories", IEEE Trans. Electron Devices 54, 308-315 (2007) (power-law drift in time).
  V. Joshi et al., "Accurate deep neural network inference using computational phase-change memory",
  Nat. Commun. 11, 2473 (2020) (drift ((t + t0) / t0)^-nu with a per-cell exponent).
  M. Zhao et al., "Investigation of statistical retention of filamentary analog RRAM for neuromorphic
  computing", IEDM 2017 (conductance distributions of analog ReRAM levels broadening in log time).
  JEDEC JEP122, "Failure mechanisms and models for semiconductor devices" (Arrhenius acceleration factor).
  N. M. Laird, J. H. Ware, "Random-effects models for longitudinal data", Biometrics 38, 963-974 (1982).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcim import rng
from jaxcim.devices.base import DeviceModel, register
from jaxcim.devices.custom import poly
from jaxcim.fields import check_range, concrete

K_B_EV = 8.617333262e-5
"""Boltzmann constant, eV / K (CODATA 2018, exact in the 2019 SI)."""
ROOM_TEMPERATURE = 298.15
"""25 C in kelvin: the default temperature and reference temperature (K)."""
POLY_FIELDS = ("prog_mean", "prog_sigma", "drift_nu", "spread_growth", "read_noise", "read_noise_growth")
"""The polynomial fields of `MeasuredDevice`, in the order `jaxcim.calibrate` stacks them."""


def _check_poly(name: str, coeffs: Any) -> None:
    if not isinstance(coeffs, tuple) or not coeffs:
        raise TypeError(f"device.{name} must be a non-empty tuple of numbers (ascending coefficients in "
                        f"x = G / g_max), got {coeffs!r}")
    for c in coeffs:
        if isinstance(c, bool | str) or not (isinstance(c, int | float) or hasattr(c, "dtype")):
            raise TypeError(f"device.{name} must be a tuple of numbers, got {coeffs!r}")
        arr = concrete(c)
        if arr is not None and not np.all(np.isfinite(arr)):
            raise ValueError(f"device.{name} must be a tuple of finite numbers, got {coeffs!r}")


@register("measured")
class MeasuredDevice(DeviceModel):
    """A device fitted to measured cells (`jaxcim.calibrate`): see the module docstring for the model.

    Attributes (besides those of `DeviceModel`; every polynomial is in x = G_target / g_max, ascending
    coefficients, dimensionless):
      prog_mean: programming mean error m(x), (G_prog - G_target) / g_max.
      prog_sigma: programming spread s(x), sigma / g_max (its absolute value is used).
      drift_nu: power-law drift exponent nu(x) of the mean, per unit of ln(1 + t_eff / t0).
      spread_growth: spread growth c(x), sigma / g_max per unit of ln(1 + t_eff / t0).
      read_noise: read noise r(x), sigma / g_max of one read at t = 0 (scales with the drift factor D).
      read_noise_growth: growth w(x) of the read-noise variance: w^2 (in units of g_max^2) per unit of u.
      t0: time scale of the log-time axis, s (> 0).
      activation_energy: Arrhenius activation energy of the time evolution, eV (>= 0; 0: no acceleration).
      reference_temperature: temperature the time evolution is given at, K.
      temperature: (inherited from `DeviceModel`) temperature the cells spend their time at, K (default 298.15 K).
    """

    prog_mean: Any = (0.0,)
    prog_sigma: Any = (0.0,)
    drift_nu: Any = (0.0,)
    spread_growth: Any = (0.0,)
    read_noise: Any = (0.0, 0.01)
    read_noise_growth: Any = (0.0,)
    t0: Any = 1.0
    activation_energy: Any = 0.0
    reference_temperature: Any = ROOM_TEMPERATURE

    def check(self) -> None:
        for name in POLY_FIELDS:
            _check_poly(name, getattr(self, name))
        check_range("device", "t0", self.t0, 0.0, lo_open=True)
        check_range("device", "activation_energy", self.activation_energy, 0.0)
        check_range("device", "reference_temperature", self.reference_temperature, 0.0, lo_open=True)

    # ---------------------------------------------------------------------------- closed-form pieces

    def acceleration(self, temperature=None) -> jax.Array:
        """Arrhenius acceleration factor exp((E_a / k_B) (1 / T_ref - 1 / T)) of time spent at ``temperature``
        (K; default the model's ``temperature``): 1 at the reference temperature."""
        temp = self.temperature if temperature is None else temperature
        return jnp.exp(self.activation_energy / K_B_EV * (1.0 / self.reference_temperature - 1.0 / temp))

    def log_time(self, t, temperature=None) -> jax.Array:
        """u = ln(1 + t_eff / t0) for ``t`` seconds at ``temperature`` (K; default the model's), scaled by
        ``drift_scale`` (0 freezes the time evolution)."""
        t = jnp.asarray(t)
        return jnp.log1p(t * self.acceleration(temperature) / self.t0) * self.drift_scale

    def moments(self, g_target, t, temperature=None):
        """Per-read pieces of the Gaussian law of a cell: (mean, a, b, q2), shaped like ``g_target``.

        A read has mean ``mean`` (S) and variance a^2 + b^2 + q2 (a, b in S, q2 in S^2); reads of one cell at
        several times share the programming draw (a) and the retention draw (b) and have independent read noise
        (q2). The noise scales
        of the config (``prog_noise_scale``, ``read_noise_scale``) are applied.
        """
        x = g_target / self.g_max
        u = self.log_time(t, temperature)
        d = jnp.exp(-poly(self.drift_nu, x) * u)
        mean = d * (g_target + self.g_max * poly(self.prog_mean, x))
        a = d * self.g_max * poly(self.prog_sigma, x) * self.prog_noise_scale
        b = d * self.g_max * poly(self.spread_growth, x) * u
        r, w = poly(self.read_noise, x), poly(self.read_noise_growth, x)
        q2 = (d * self.g_max * self.read_noise_scale) ** 2 * (r * r + w * w * u)
        return mean, a, b, q2

    # ---------------------------------------------------------------------------- the protocol

    def programming_sigma(self, g_target):
        return jnp.abs(poly(self.prog_sigma, g_target / self.g_max)) * self.g_max

    def programming_mean(self, g_target):
        return poly(self.prog_mean, g_target / self.g_max) * self.g_max

    def time_params(self, key: jax.Array, targets):
        # z2: each cell's draw of its retention spread, made once at programming
        return tuple(rng.normals(key, [t.shape for t in targets], targets[0].dtype))

    def at_time(self, g_prog, g_target, params, t):
        x = g_target / self.g_max
        u = self.log_time(t)
        d = jnp.exp(-poly(self.drift_nu, x) * u)
        return d * (g_prog + self.g_max * poly(self.spread_growth, x) * u * params)

    def read_sigma(self, g, g_target, t):
        x = g_target / self.g_max
        u = self.log_time(t)
        r, w = poly(self.read_noise, x), poly(self.read_noise_growth, x)
        v = r * r + w * w * u
        root = jnp.where(v > 0, jnp.sqrt(jnp.where(v > 0, v, 1.0)), 0.0)  # finite gradient at 0
        return root * self.g_max * jnp.exp(-poly(self.drift_nu, x) * u) + 0.0 * g


def cell_log_likelihood(resid, a, b, q2, mask):
    """Log-density of one cell's reads under the random-effects model: N(0, a a^T + b b^T + diag(q2)).

    Args:
      resid: read minus model mean, (m,), in any unit (a, b in the same unit, q2 its square).
      a, b: loadings of the programming and retention draws, (m,).
      q2: read-noise variances, (m,), > 0 where ``mask``.
      mask: which of the m entries are reads (padding is False), (m,).

    Returns:
      the log-likelihood, a scalar. Uses the Woodbury identity and the matrix determinant lemma with the 2x2
      capacitance matrix, O(m).
    """
    w = jnp.where(mask, 1.0 / jnp.where(mask, q2, 1.0), 0.0)
    e = jnp.where(mask, resid, 0.0)
    saa, sab, sbb = jnp.sum(w * a * a), jnp.sum(w * a * b), jnp.sum(w * b * b)
    ra, rb, rr = jnp.sum(w * a * e), jnp.sum(w * b * e), jnp.sum(w * e * e)
    k11, k22 = 1.0 + saa, 1.0 + sbb
    det = k11 * k22 - sab * sab
    quad = rr - (k22 * ra * ra - 2.0 * sab * ra * rb + k11 * rb * rb) / det
    logdet = jnp.sum(jnp.where(mask, jnp.log(jnp.where(mask, q2, 1.0)), 0.0)) + jnp.log(det)
    n = jnp.sum(mask)
    return -0.5 * (quad + logdet + n * math.log(2.0 * math.pi))
