"""ReRAM (1T1R HfOx, NeuRRAM chip) programming-noise and relaxation model.

The conductance spread of a programmed ReRAM cell grows after programming (relaxation). NeuRRAM
measured it 1 s, 1 day and 2 days after write-verify programming; the fits below give sigma as a quartic
in x = G / 40 uS at each time. jaxcim interpolates sigma in log time between the three fits, holds the
1 s value before 1 s and the 2-day value after 2 days (the measurement's end; the spread had nearly
saturated by then), and models relaxation as an independent increment of variance sigma(t)^2 - sigma(1 s)^2.

References:
  W. Wan et al., "A compute-in-memory chip based on resistive random-access memory", Nature 608,
  504-512 (2022), Fig. 2 / Extended Data; polynomial fits as in IBM aihwkit ``ReRamWan2022NoiseModel``.
  Read noise: ~1% of G short-term read fluctuation (Wan 2022).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxcim import rng
from jaxcim.devices.base import DeviceModel, register
from jaxcim.fields import check_range

G_MAX_REF = 40e-6
"""Maximum conductance of the NeuRRAM cells the fits were made on, S (Wan 2022)."""
FIT_TIMES = (1.0, 86400.0, 172800.0)
"""Times after programming of the three published fits, s."""
SIGMA_POLY_US = (
    (0.348, 16.030, -43.853, 45.393, -16.815),  # t = 1 s
    (0.701, 22.086, -50.773, 47.095, -16.458),  # t = 1 day
    (0.782, 20.274, -43.507, 37.062, -11.934),  # t = 2 days
)
"""sigma(G) in uS as polynomials in x = G / 40 uS, ascending coefficients, at FIT_TIMES (Wan 2022)."""
READ_NOISE_REL = 0.01
"""Relative short-term read noise, sigma / G (Wan 2022)."""


def _poly(coeffs, x):
    out = jnp.zeros_like(x)
    for c in reversed(coeffs):
        out = out * x + c
    return out


def programming_sigma(g, t=1.0, g_max=G_MAX_REF):
    """Spread of programmed ReRAM conductances around their target, t seconds after programming.

    Args:
      g: target conductances, S, any shape.
      t: time since programming, s (scalar or broadcastable). Interpolated in log10(t) between 1 s,
        1 day and 2 days; held constant outside.
      g_max: the array's maximum conductance, S; the fit (made at 40 uS) is scaled by g_max / 40 uS.

    Returns:
      sigma, S, same shape as ``g`` (floored at 0).
    """
    x = jnp.clip(g / g_max, 0.0, 1.0)
    s = [jnp.maximum(_poly(c, x), 0.0) for c in SIGMA_POLY_US]
    lt = jnp.log10(jnp.clip(jnp.asarray(t, dtype=x.dtype), FIT_TIMES[0], FIT_TIMES[-1]))
    l1, l2 = math.log10(FIT_TIMES[1]), math.log10(FIT_TIMES[2])
    a = jnp.clip(lt / l1, 0.0, 1.0)  # 1 s -> 1 day
    b = jnp.clip((lt - l1) / (l2 - l1), 0.0, 1.0)  # 1 day -> 2 days
    sigma = jnp.where(lt <= l1, (1 - a) * s[0] + a * s[1], (1 - b) * s[1] + b * s[2])
    return sigma * 1e-6 * (g_max / G_MAX_REF)


def relaxation_sigma(g, t, g_max=G_MAX_REF):
    """Standard deviation of the relaxation drawn between 1 s and t after programming, S.

    sqrt(max(sigma(t)^2 - sigma(1 s)^2, 0)): the part of the t-second spread not present right after
    (verified) programming.
    """
    # in units of g_max: the squares stay finite whatever the conductance scale
    s1 = programming_sigma(g, 1.0, g_max) / g_max
    st = programming_sigma(g, t, g_max) / g_max
    d = st * st - s1 * s1
    return jnp.where(d > 0, jnp.sqrt(jnp.where(d > 0, d, 1.0)), 0.0) * g_max  # safe sqrt: finite gradient at 0


@register("reram-wan2022")
class ReRAMWan2022(DeviceModel):
    """NeuRRAM ReRAM (Wan et al., Nature 2022): the post-write-verify conductance spread measured 1 s, 1 day and
    2 days after programming, relaxation as the growth of that spread, and short-term read noise.

    Attributes (besides those of `DeviceModel`; g_max: the fits, made at 40 uS, scale with it):
      read_noise_rel: relative read-noise sigma, sigma / G per read (Wan 2022: ~1 %).
    """

    read_noise_rel: Any = READ_NOISE_REL

    def check(self) -> None:
        check_range("device", "read_noise_rel", self.read_noise_rel, 0.0)

    def programming_sigma(self, g_target):
        return programming_sigma(g_target, 1.0, self.g_max)

    def time_params(self, key: jax.Array, targets):
        # the standard-normal draw of each cell's relaxation increment
        return tuple(rng.normals(key, [t.shape for t in targets], targets[0].dtype))

    def at_time(self, g_prog, g_target, params, t):
        g = g_prog + self.drift_scale * relaxation_sigma(g_target, t, self.g_max) * params
        return jnp.maximum(g, 0.0)

    def read_sigma(self, g, g_target, t):
        return jnp.abs(g) * self.read_noise_rel
