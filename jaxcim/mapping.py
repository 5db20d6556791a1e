"""Weight-to-conductance mapping: scaling, differential/offset encoding, bit slicing and tiling.

A weight matrix ``w`` (in_features, out_features) is scaled to [-1, 1] (per tensor or per output column),
optionally quantized and sliced into ``slices`` digit arrays, encoded as conductance pairs, and cut into
tiles of ``rows x cols`` physical arrays. Array layout used throughout jaxcim:

    g_pos: (slices, row_tiles, col_tiles, rows, cols)    S
    g_neg: (slices, row_tiles, col_tiles, rows, cols)    S  differential: the G- array
           (slices, row_tiles, col_tiles, rows, 1)       S  offset: one reference column per array

Inputs of row tile r drive rows r*rows .. (r+1)*rows - 1; outputs of column tile c come from columns
c*cols .. (c+1)*cols - 1 (offset mapping uses one column of each array for the reference, so cols - 1
weight columns per array). Partial sums of row tiles are added digitally.

A learned mapping (`jaxcim.optimize.LearnedMapping`, or a user's own) implements `WeightMapping`: `jaxcim.program`
calls its methods in place of `conductance_targets` and never asks which mapping it has.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from jaxcim.config import CrossbarConfig, MappingConfig
from jaxcim.converters import ste_round


@runtime_checkable
class WeightMapping(Protocol):
    """A weight-to-conductance mapping that replaces the plain one (`conductance_targets`) in `jaxcim.program`."""

    def check(self, cfg: CrossbarConfig, w_shape: tuple[int, ...]) -> None:
        """Raise ValueError naming the field if the mapping does not fit ``cfg`` and weights of ``w_shape``."""

    def conductance_targets(self, cfg: CrossbarConfig, w: jax.Array, scale: jax.Array | None = None):
        """``(g_pos, g_neg, coeffs, w_scale)`` as `conductance_targets` returns them."""

    def adjust_adc_range(self, adc_range: jax.Array) -> jax.Array:
        """The ADC full scale per array (A, (slices, row_tiles, col_tiles)) this mapping uses."""

    def output_correction(self, out_features: int, dtype) -> tuple[Any, Any]:
        """``(out_gain, out_offset)`` applied after the ADC, each (out_features,) or None."""


def weight_columns(m: MappingConfig) -> int:
    """Weight columns per physical array (one is the reference column for offset mapping)."""
    return m.cols - 1 if m.scheme == "offset" else m.cols


def tile_counts(m: MappingConfig, in_features: int, out_features: int) -> tuple[int, int]:
    """(row_tiles, col_tiles) needed for a (in_features, out_features) matrix."""
    return math.ceil(in_features / m.rows), math.ceil(out_features / weight_columns(m))


def weight_scale(m: MappingConfig, w: jax.Array) -> jax.Array:
    """max |w| per tensor () or per output column (out,): the weight that maps to the full range."""
    axis = None if m.scale == "tensor" else 0
    amax = jnp.max(jnp.abs(w), axis=axis)
    return jax.lax.stop_gradient(jnp.where(amax > 0, amax, 1.0))


def slice_weights(m: MappingConfig, wn: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Quantize and slice normalized weights.

    Args:
      wn: weights in [-1, 1], (in, out).

    Returns:
      (digits, coeffs): ``digits`` (slices, in, out) in [-1, 1], the signed value each slice array stores
      (most significant slice first), and ``coeffs`` (slices,) with sum_s coeffs[s] * digits[s] equal to the
      quantized weight. Without ``weight_bits`` there is one slice holding ``wn`` itself. Gradients pass
      straight through the quantization.
    """
    if not m.weight_bits:
        return wn[None], jnp.ones((1,), wn.dtype)
    b, s = m.bits_per_slice, m.slices
    full = 2**m.weight_bits - 1
    per = 2**b - 1
    q = jnp.round(jnp.abs(wn) * full)
    sign = jnp.sign(wn)
    digits, coeffs = [], []
    for k in range(s):
        shift = b * (s - 1 - k)
        d = jnp.floor(q / 2**shift) % 2**b
        digits.append(sign * d / per)
        coeffs.append(per * 2**shift / full)
    digits = jnp.stack(digits)
    # Straight-through: each slice carries the full input gradient; the coefficients sum to exactly 1.
    digits = digits + (wn - jax.lax.stop_gradient(wn))[None]
    return digits, jnp.asarray(coeffs, wn.dtype)


def to_tiles(m: MappingConfig, a: jax.Array, fill: float | jax.Array) -> jax.Array:
    """(..., in, out) -> (..., row_tiles, col_tiles, rows, weight_columns) padded with ``fill``."""
    n_in, n_out = a.shape[-2:]
    tr, tc = tile_counts(m, n_in, n_out)
    wc = weight_columns(m)
    pad = [(0, 0)] * (a.ndim - 2) + [(0, tr * m.rows - n_in), (0, tc * wc - n_out)]
    a = jnp.pad(a, pad, constant_values=fill)
    a = a.reshape(a.shape[:-2] + (tr, m.rows, tc, wc))
    return jnp.moveaxis(a, -3, -2)


def from_tiles(m: MappingConfig, y: jax.Array, out_features: int) -> jax.Array:
    """(..., col_tiles, weight_columns) -> (..., out_features)."""
    y = y.reshape(y.shape[:-2] + (-1,))
    return y[..., :out_features]


def conductance_targets(cfg: CrossbarConfig, w: jax.Array, scale: jax.Array | None = None):
    """Target conductances for a weight matrix.

    Args:
      cfg: the crossbar config (mapping and device sections are used).
      w: weights, (in_features, out_features).
      scale: weight-to-range scale (() or (out,)); default `weight_scale`.

    Returns:
      (g_pos, g_neg, coeffs, scale): tiled target arrays in the layout of this module, S; slice coefficients
      (slices,); and the weight scale, so that w ~ scale * sum_s coeffs[s] * (G+ - G-)[s] / dg with
      dg = g_max - g_min (differential) or (g_max - g_min) / 2 (offset).
    """
    m, dev = cfg.mapping, cfg.device
    scale = weight_scale(m, w) if scale is None else scale
    digits, coeffs = slice_weights(m, w / scale)
    span = dev.g_max - dev.g_min
    if m.scheme == "differential":
        g_pos = dev.g_min + span * jax.nn.relu(digits)
        g_neg = dev.g_min + span * jax.nn.relu(-digits)
        g_pos = to_tiles(m, g_pos, dev.g_min)
        g_neg = to_tiles(m, g_neg, dev.g_min)
    else:
        g_mid = dev.g_min + 0.5 * span
        g_pos = to_tiles(m, g_mid + 0.5 * span * digits, g_mid)
        g_neg = jnp.full(g_pos.shape[:-1] + (1,), g_mid, g_pos.dtype)
    return g_pos, g_neg, coeffs, scale


def conductance_unit(cfg: CrossbarConfig):
    """Conductance difference that represents a normalized weight of 1, S."""
    span = cfg.device.g_max - cfg.device.g_min
    return span if cfg.mapping.scheme == "differential" else 0.5 * span


__all__ = [
    "conductance_targets", "conductance_unit", "from_tiles", "slice_weights", "tile_counts", "to_tiles",
    "weight_columns", "weight_scale", "ste_round", "WeightMapping",
]
