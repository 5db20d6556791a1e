"""Crossbar circuit models: column currents from row voltages and cell conductances.

- `ideal_currents`: Ohm's and Kirchhoff's laws with ideal wires, I = V @ G, at full float precision
  (``Precision.HIGHEST``: GPUs would otherwise use TF32 for the product).
- `column_currents`: the exact nodal solve with word-line/bit-line wire resistance (IR drop), terminal
  resistances and optional sinh cell nonlinearity (`jaxcim.circuit.ir_drop`).
- `array_currents`: what `jaxcim.read` calls: dispatches on ``CircuitConfig.kind`` over tiled arrays.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcim.circuit.ir_drop import IRDropSolution, column_currents, solve, transfer_matrix
from jaxcim.config import CircuitConfig

HIGHEST = jax.lax.Precision.HIGHEST


def ideal_currents(g: jax.Array, v: jax.Array) -> jax.Array:
    """Column currents of an ideal crossbar.

    Args:
      g: conductances, S, (rows, cols).
      v: row voltages, V, (..., rows).

    Returns:
      column currents I = v @ g, A, (..., cols).
    """
    return jnp.matmul(v, g, precision=HIGHEST)


def array_currents(circuit: CircuitConfig, g: jax.Array, v: jax.Array) -> jax.Array:
    """Column currents of every array of a tiled layer.

    Args:
      circuit: the circuit section of the config.
      g: conductances, S, (slices, row_tiles, col_tiles, rows, cols).
      v: row voltages, V, (batch, row_tiles, rows).

    Returns:
      currents, A, (batch, slices, row_tiles, col_tiles, cols).
    """
    if circuit.kind == "ideal":
        return jnp.einsum("btr,stcrk->bstck", v, g, precision=HIGHEST)
    def one(g_arr, v_arr):  # (rows, cols), (batch, rows) -> (batch, cols)
        v0 = circuit.v0 if circuit.nonlinear else None
        return column_currents(g_arr, v_arr, r_row=circuit.r_row, r_col=circuit.r_col, v0=v0,
                               r_driver=circuit.r_driver, r_sense=circuit.r_sense)

    per_col_tile = jax.vmap(one, in_axes=(0, None), out_axes=1)  # over col tiles
    per_row_tile = jax.vmap(per_col_tile, in_axes=(0, 1), out_axes=1)  # over row tiles
    per_slice = jax.vmap(per_row_tile, in_axes=(0, None), out_axes=1)  # over slices
    return per_slice(g, v)


__all__ = ["IRDropSolution", "array_currents", "column_currents", "ideal_currents", "solve", "transfer_matrix"]
