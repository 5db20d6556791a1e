"""IBM PCM-like statistical model: programming noise, conductance drift, 1/f read noise.

All kernels act elementwise on conductance arrays (siemens) and are jit/vmap/grad friendly. The statistics are those
of IBM aihwkit's ``PCMLikeNoiseModel`` (aihwkit 1.1.0, src/aihwkit/inference/noise/pcm.py, unchanged on its main
branch in 2026), cell by cell:

- programming: G_prog = max(G_target + sigma_prog(G_target) z, 0) (``apply_programming_noise_to_conductance``);
- drift exponent, drawn once at programming: nu = |mu(x) + s(x) z|, x = G_target / g_max
  (``generate_drift_coefficients``: a negative draw is folded, not floored);
- drift and 1/f read noise t seconds after programming (``apply_drift_noise_to_conductance``):
  G_drift = G_prog ((t + t0) / t0)^-nu and G = max(G_drift + |G_drift| Qs sqrt(ln((t + t0 + t_r) / (2 t_r))) z, 0),
  Qs = min(0.0088 / (|G_prog| / g_max)^0.65, 0.2): the amplitude is set by the programmed conductance, and the
  1/f integral runs from aihwkit's time origin t0 = 20 s, so a read right after programming (t = 0) already
  carries sqrt(ln((20 s + 250 ns) / 500 ns)) = 4.184 times Qs.

One difference of meaning is kept: aihwkit draws the read noise once, when the weights are drifted to the inference
time, and every later forward pass sees the same noisy weights; jaxcim draws it on each read from the read's key
(the per-cell statistics of a read are the same; reading twice with the same key reproduces aihwkit's frozen
weights). The read-noise amplitude can be taken from the target instead of the programmed conductance
(`PCMLike.read_noise_ref`) and reads left unclamped (`PCMLike.clamp_reads`), as jaxcim did before it matched
aihwkit.

References:
  S. R. Nandakumar et al., "Phase-change memory models for deep learning training and inference",
  ICECS 2019; V. Joshi et al., "Accurate deep neural network inference using computational phase-change
  memory", Nat. Commun. 11, 2473 (2020) (drift and 1/f noise model, Methods). Fits on a 1M-device PCM array as
  published in IBM aihwkit's ``PCMLikeNoiseModel`` (g_max = 25 uS).
"""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from jaxcim import rng
from jaxcim.devices.base import DeviceModel, register
from jaxcim.fields import check_choice, check_range

G_MAX_REF = 25e-6
"""Maximum conductance of the measured PCM array the fits were made on, S (Joshi 2020)."""
T0 = 20.0
"""Drift reference time t0, s: aihwkit's time origin, ``PCMLikeNoiseModel.t_0`` (Joshi 2020)."""
T_READ = 250e-9
"""Read pulse duration used in the 1/f read-noise integral, s (aihwkit ``t_read``)."""
PROG_POLY_US = (0.26348, 1.9650, -1.1731)
"""Programming noise sigma in uS as a polynomial in x = G_target / g_max, ascending (Nandakumar 2019)."""
READ_NOISE_REFS = ("programmed", "target")


def _x(g_target, g_max):
    return jnp.clip(g_target / g_max, 0.0, 1.0)


def programming_sigma(g_target, g_max=G_MAX_REF, poly_us=PROG_POLY_US):
    """Standard deviation of one PCM write around its target.

    Args:
      g_target: target conductances, S, any shape.
      g_max: the array's maximum conductance, S. The published fit is in uS at g_max = 25 uS; other
        ranges scale it proportionally (noise relative to range is kept, as aihwkit's
        ``prog_coeff_g_max_reference``).

    Returns:
      sigma, S, same shape. At x = 1: 1.055 uS; x = 0.1: 0.448 uS; x = 0.01: 0.283 uS (g_max = 25 uS). x is clipped
      to [0, 1] (aihwkit extrapolates the polynomial; targets never leave [0, g_max] in jaxcim's mappings).
    """
    x = _x(g_target, g_max)
    c0, c1, c2 = poly_us
    return (c0 + c1 * x + c2 * x * x) * 1e-6 * (g_max / G_MAX_REF)


def drift_nu_stats(g_target, g_max=G_MAX_REF):
    """Mean and standard deviation of the normal the drift exponent nu is folded from.

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


def read_noise_q(g_ref, g_max=G_MAX_REF):
    """1/f read-noise amplitude Qs = min(0.0088 / x**0.65, 0.2), x = |g_ref| / g_max (Joshi 2020; aihwkit takes
    g_ref = the programmed conductance)."""
    lx = jnp.log(jnp.clip(jnp.abs(g_ref) / g_max, 1e-6, None))  # the same log as `drift_nu_stats` (XLA shares it)
    return jnp.minimum(0.0088 * jnp.exp(-0.65 * lx), 0.2)


def read_noise_sigma(g, g_ref, t, g_max=G_MAX_REF, t_read=T_READ, t0=T0):
    """Standard deviation of the 1/f read noise of a PCM cell read at time t after programming.

    sigma = |G| Qs(g_ref) sqrt(ln((t + t0 + t_r) / (2 t_r))), with the time counted from aihwkit's origin t0 before
    the end of programming (``apply_drift_noise_to_conductance``): at t = 0 it is already 4.184 Qs |G|.

    Args:
      g: current conductances, S. g_ref: the conductances that set the amplitude Qs, S (the programmed ones in
        aihwkit). t: time since programming, s. t_read, t0: read pulse duration and time origin, s.

    Returns:
      sigma, S, same shape as ``g``.
    """
    integral = jnp.log(jnp.maximum((t + t0 + t_read) / (2.0 * t_read), 1.0))
    root = jnp.where(integral > 0, jnp.sqrt(jnp.where(integral > 0, integral, 1.0)), 0.0)
    return jnp.abs(g) * read_noise_q(g_ref, g_max) * root


@register("pcm-ibm")
class PCMLike(DeviceModel):
    """IBM PCM-like device: state-dependent programming noise, power-law drift with a per-cell exponent drawn at
    programming, 1/f read noise (Nandakumar 2019, Joshi 2020), with the statistics of aihwkit's
    ``PCMLikeNoiseModel`` (see the module docstring).

    Attributes (besides those of `DeviceModel`; g_max defaults to the measured array's 25 uS):
      prog_poly_us: programming sigma in uS at g_max = 25 uS, ascending polynomial in x = G_target / g_max
        (Nandakumar 2019: 0.26348, 1.9650, -1.1731).
      t0: drift reference time and origin of the 1/f integral, s (Joshi 2020, aihwkit: 20 s).
      t_read: read pulse duration of the 1/f noise integral, s (aihwkit: 250 ns).
      read_noise_ref: which conductance sets the read-noise amplitude Qs: ``"programmed"`` (aihwkit, default) or
        ``"target"``. Static.
      clamp_reads: reads below 0 S return 0 S (aihwkit, default True). Static.
    """

    gaussian_reads: ClassVar[bool] = False

    g_max: Any = G_MAX_REF
    prog_poly_us: Any = PROG_POLY_US
    t0: Any = T0
    t_read: Any = T_READ
    read_noise_ref: str = struct.field(pytree_node=False, default="programmed")
    clamp_reads: bool = struct.field(pytree_node=False, default=True)

    def check(self) -> None:
        check_range("device", "t0", self.t0, 0.0, lo_open=True)
        check_range("device", "t_read", self.t_read, 0.0, lo_open=True)
        if not isinstance(self.prog_poly_us, tuple | list) or len(self.prog_poly_us) != 3:
            raise TypeError(f"device.prog_poly_us must be 3 coefficients, got {self.prog_poly_us!r}")
        check_choice("device", "read_noise_ref", self.read_noise_ref, READ_NOISE_REFS)
        if not isinstance(self.clamp_reads, bool):
            raise TypeError(f"device.clamp_reads must be true or false, got {self.clamp_reads!r}")

    def programming_sigma(self, g_target):
        return programming_sigma(g_target, self.g_max, tuple(self.prog_poly_us))

    def time_params(self, key: jax.Array, targets):
        z = rng.normals(key, [t.shape for t in targets], targets[0].dtype)

        def nu(t, z):
            mu, s = drift_nu_stats(t, self.g_max)
            return jnp.abs(mu + s * z)  # aihwkit folds a negative draw

        return tuple(nu(t, z) for t, z in zip(targets, z, strict=True))

    def at_time(self, g_prog, g_target, params, t):
        return drift(g_prog, params * self.drift_scale, t, self.t0)

    def read_sigma(self, g, g_target, t):
        """Read-noise spread of a cell whose programmed conductance is its target (the pipeline reads through
        `read`, which takes the amplitude from the programmed conductance)."""
        return read_noise_sigma(g, g_target, t, self.g_max, self.t_read, self.t0)

    def read(self, g, g_prog, g_target, t, z):
        ref = g_prog if self.read_noise_ref == "programmed" else g_target
        out = g + read_noise_sigma(g, ref, t, self.g_max, self.t_read, self.t0) * self.read_noise_scale * z
        return jnp.where(out < 0.0, 0.0, out) if self.clamp_reads else out  # g = 0 keeps its gradient
