"""JAX implementations shared by the importers: weight-stationary layer calls, recurrent cells, pooling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp


def call_layer(layers: Any, x: jax.Array, *, name: str, kind: str, groups: int = 1, batch_axis: int = 0) -> jax.Array:
    """Apply layer ``name`` to ``x``: a dense product on the last axis, or a convolution of channels-first
    ``x`` (N, C, *spatial) (the layers are channels-last, as ``nnx.Conv``). A grouped convolution runs one
    layer (one crossbar matrix) per group on its slice of the channels. A dense product whose batch axis is
    ``batch_axis`` (e.g. 1 for a time-major sequence) gets its rows example by example, as a streamed
    `jaxcim.nn.evaluate` needs (the rows of a matrix product are independent: same result)."""
    if kind != "conv":
        if batch_axis:
            return jnp.moveaxis(layers[name](jnp.moveaxis(x, batch_axis, 0)), 0, batch_axis)
        return layers[name](x)
    x = jnp.moveaxis(x, 1, -1)
    if groups == 1:
        y = layers[name](x)
    else:
        parts = jnp.split(x, groups, axis=-1)
        y = jnp.concatenate([layers[f"{name}#g{g}"](p) for g, p in enumerate(parts)], axis=-1)
    return jnp.moveaxis(y, -1, 1)


def lstm_cell(gates: jax.Array, c: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One LSTM step from the summed pre-activations (batch, 4H) in PyTorch's gate order (i, f, g, o)."""
    i, f, g, o = jnp.split(gates, 4, axis=-1)
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    return jax.nn.sigmoid(o) * jnp.tanh(c), c


def gru_cell(gx: jax.Array, gh: jax.Array, h: jax.Array) -> jax.Array:
    """One GRU step from the input and hidden projections (batch, 3H), PyTorch's gate order (r, z, n)."""
    xr, xz, xn = jnp.split(gx, 3, axis=-1)
    hr, hz, hn = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(xr + hr)
    z = jax.nn.sigmoid(xz + hz)
    n = jnp.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def recurrent(layers: Any, x: jax.Array, h0: jax.Array, c0: jax.Array | None, *, cell: str,
              names: Sequence[tuple[str, str]], bidirectional: bool) -> tuple[jax.Array, ...]:
    """A stacked (bi)directional LSTM/GRU over x (T, N, in) (time major), unrolled in time.

    The input projection of a whole sequence is one layer call (every time step a row of the same matrix, the
    rows example by example, as a streamed `jaxcim.nn.evaluate` needs); the hidden projection is one call per
    step.

    Args:
      layers: the network's layer dict.
      x: (T, N, in).
      h0, c0: (layers * directions, N, H); c0 None for a GRU.
      cell: ``"lstm"`` or ``"gru"``.
      names: (input layer, hidden layer) names, per layer and direction.
      bidirectional: two directions per layer.

    Returns:
      (output (T, N, directions * H), h_n, c_n) for an LSTM; (output, h_n) for a GRU.
    """
    nd = 2 if bidirectional else 1
    hs, cs = [], []
    for j, (ih, hh) in enumerate(names):
        d = j % nd
        if d == 0:
            inp, outs = x, []
        h = h0[j]
        c = c0[j] if c0 is not None else None
        gx = jnp.swapaxes(layers[ih](jnp.swapaxes(inp, 0, 1)), 0, 1)  # example-major rows (streamed evaluate)
        steps = range(inp.shape[0] - 1, -1, -1) if d == 1 else range(inp.shape[0])
        seq = [None] * inp.shape[0]
        for t in steps:
            gh = layers[hh](h)
            if cell == "lstm":
                h, c = lstm_cell(gx[t] + gh, c)
            else:
                h = gru_cell(gx[t], gh, h)
            seq[t] = h
        outs.append(jnp.stack(seq))
        hs.append(h)
        cs.append(c)
        if d == nd - 1:
            x = jnp.concatenate(outs, axis=-1) if nd == 2 else outs[0]
    if cell == "lstm":
        return x, jnp.stack(hs), jnp.stack(cs)
    return x, jnp.stack(hs)


def pool(x: jax.Array, kernel: Sequence[int], strides: Sequence[int], pads: Sequence[tuple[int, int]],
         dilation: Sequence[int], kind: str, ceil_mode: bool = False, count_include_pad: bool = True) -> jax.Array:
    """Max or average pooling of channels-first x (N, C, *spatial), PyTorch/ONNX semantics.

    ``ceil_mode`` adds padding on the high side so that the last window starting inside the input (or its
    low padding) is kept; average pooling divides by the window size counting the explicit padding
    (``count_include_pad``) but never the ceil-mode extra.
    """
    n = len(kernel)
    pads = [tuple(p) for p in pads]
    extra = [0] * n
    if ceil_mode:
        for i in range(n):
            size = x.shape[2 + i] + pads[i][0] + pads[i][1]
            span = dilation[i] * (kernel[i] - 1) + 1
            out = math.ceil((size - span) / strides[i]) + 1
            if (out - 1) * strides[i] >= x.shape[2 + i] + pads[i][0]:
                out -= 1
            extra[i] = max(0, (out - 1) * strides[i] + span - size)
    window = (1, 1) + tuple(kernel)
    stride = (1, 1) + tuple(strides)
    dil = (1, 1) + tuple(dilation)
    full = ((0, 0), (0, 0)) + tuple((lo, hi + e) for (lo, hi), e in zip(pads, extra, strict=True))
    if kind == "max":
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, stride, full, window_dilation=dil)
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, window, stride, full, window_dilation=dil)
    ones = jnp.ones((1, 1) + x.shape[2:], x.dtype)
    region = full
    if count_include_pad:
        ones = jnp.pad(ones, ((0, 0), (0, 0)) + tuple(pads), constant_values=1.0)
        region = ((0, 0), (0, 0)) + tuple((0, e) for e in extra)
    count = jax.lax.reduce_window(ones, 0.0, jax.lax.add, window, stride, region, window_dilation=dil)
    return total / count


def adaptive_avg_pool(x: jax.Array, out: Sequence[int]) -> jax.Array:
    """Adaptive average pooling of channels-first x to spatial size ``out`` (PyTorch's bin edges)."""
    for i, o in enumerate(out):
        ax = 2 + i
        size = x.shape[ax]
        if o is None or o == size:
            continue
        bins = [jnp.mean(jax.lax.slice_in_dim(x, (k * size) // o, -(-((k + 1) * size) // o), axis=ax), axis=ax,
                         keepdims=True) for k in range(o)]
        x = jnp.concatenate(bins, axis=ax)
    return x


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array | None = None, causal: bool = False,
              scale: float | None = None) -> jax.Array:
    """Scaled dot-product attention of (..., L, E) queries with (..., S, E) keys and (..., S, Ev) values,
    digital (the scores are products of two activations). ``mask``: boolean (True = attend) or additive."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    s = jnp.matmul(q, jnp.swapaxes(k, -1, -2)) * scale
    if causal:
        L, S = s.shape[-2], s.shape[-1]
        s = jnp.where(jnp.tril(jnp.ones((L, S), bool)), s, -jnp.inf)
    if mask is not None:
        s = jnp.where(mask, s, -jnp.inf) if mask.dtype == jnp.bool_ else s + mask
    return jnp.matmul(jax.nn.softmax(s, axis=-1), v)


__all__ = ["adaptive_avg_pool", "attention", "call_layer", "gru_cell", "lstm_cell", "pool", "recurrent"]
