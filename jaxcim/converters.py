"""Data converters: the input DAC (inputs -> row voltages) and the column ADC (currents -> codes).

Quantizers round with a straight-through gradient (the rounding is the identity for ``jax.grad``);
clipping at the converter's range is physical and has zero gradient outside the range.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcim.config import ADCConfig, DACConfig


def ste_round(x: jax.Array) -> jax.Array:
    """Round to the nearest integer in the forward pass, identity in the backward pass."""
    return x + jax.lax.stop_gradient(jnp.round(x) - x)


def dac_levels(dac: DACConfig) -> int:
    """Largest input code magnitude: 2**(bits-1) - 1 for signed inputs, 2**bits - 1 unsigned."""
    return 2 ** (dac.bits - 1) - 1 if dac.signed else 2**dac.bits - 1


def dac(cfg: DACConfig, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Convert inputs to normalized, quantized drive levels.

    Args:
      cfg: the DAC section.
      x: inputs, shape (batch, n), any units.

    Returns:
      (u, x_scale): ``u`` (batch, n) in [-1, 1] (quantized to ``dac_levels`` steps when ``bits`` > 0);
      the row voltage is ``u * v_read``. ``x_scale`` (batch, 1) is the input value of u = 1, so
      x ~ u * x_scale.
    """
    if cfg.range_mode == "max":
        amax = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
        x_scale = jax.lax.stop_gradient(jnp.where(amax > 0, amax, 1.0))
        u = x / x_scale
    else:
        x_scale = jnp.broadcast_to(jnp.asarray(cfg.x_max, x.dtype), x.shape[:-1] + (1,))
        lo = -1.0 if cfg.signed else 0.0
        u = jnp.clip(x / x_scale, lo, 1.0)
    if cfg.bits:
        n = dac_levels(cfg)
        u = ste_round(u * n) / n
    return u, x_scale


def input_bit_planes(cfg: DACConfig, u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Split quantized drive levels into bit planes for bit-serial input.

    Args:
      u: quantized levels from `dac`, (batch, n), in [-1, 1].

    Returns:
      (planes, weights): ``planes`` (bits, batch, n) in {-1, 0, 1} (sign times bit, LSB first; the sign is
      applied as a negative pulse), and ``weights`` (bits,) with sum_k weights[k] * planes[k] == u.
    """
    n = dac_levels(cfg)
    nbits = cfg.bits - 1 if cfg.signed else cfg.bits
    code = jnp.round(jnp.abs(u) * n)
    sign = jnp.sign(u)
    planes = []
    for k in range(nbits):
        bit = jnp.floor(code / 2**k) % 2
        planes.append(sign * bit)
    planes = jnp.stack(planes)
    weights = jnp.asarray([2.0**k / n for k in range(nbits)], u.dtype)
    # Straight-through: the value is the sum of bit planes, the gradient flows to u as if unsplit.
    planes = planes + (u - jax.lax.stop_gradient(u))[None] / (nbits * weights[:, None, None])
    return planes, weights


def adc(
    cfg: ADCConfig, current: jax.Array, full_scale: jax.Array, offset_lsb: jax.Array = 0.0,
    gain_error: jax.Array = 0.0, *, unipolar: bool = False,
) -> jax.Array:
    """Convert column currents to codes and back to amperes.

    Args:
      cfg: the ADC section.
      current: column currents, A, (..., cols).
      full_scale: current of the largest code, A, broadcastable to ``current``.
      offset_lsb: per-column offset error in LSB, broadcastable.
      gain_error: per-column relative gain error, broadcastable.
      unipolar: codes 0 .. 2**bits - 1 for non-negative currents (offset-column mapping) instead of the
        signed -(2**(bits-1) - 1) .. 2**(bits-1) - 1.

    Returns:
      The reconstructed currents code * LSB, A, same shape as ``current``. With ``bits == 0`` the
      conversion is exact (gain and offset errors still apply, offsets in units of full_scale / 2**15).
    """
    i = current * (1.0 + gain_error)
    if cfg.bits == 0:
        return i + offset_lsb * full_scale / 2.0**15
    n = 2**cfg.bits - 1 if unipolar else 2 ** (cfg.bits - 1) - 1
    code = ste_round(i / full_scale * n + offset_lsb)
    code = jnp.clip(code, 0.0 if unipolar else -n, n)
    return code * (full_scale / n)
