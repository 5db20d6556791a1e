"""A compact training loop for nnx classifiers, digital or hardware-aware (analog layers in ``"hwa"`` mode).

Hardware-aware training (Joshi et al., Nat. Commun. 11, 2473 (2020); Rasch et al., Nat. Commun. 14, 5282
(2023)): the forward pass of every step runs a freshly programmed chip instance (programming noise from the
device model, reparameterized so gradients reach the weights; straight-through DAC/ADC quantizers), and
after every step the analog kernels may be clipped to ``clip_sigma`` standard deviations.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxcim.nn.layers import ANALOG_LAYERS, clip_weights


def _check_positive(name: str, value: Any, integer: bool = False) -> None:
    if integer and (isinstance(value, bool) or not isinstance(value, int | np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def fit(
    model: Any, data: tuple[Any, Any], *, key: jax.Array, epochs: int = 30, batch_size: int = 64,
    learning_rate: float = 3e-3, weight_decay: float = 0.0, clip_sigma: float | None = None,
) -> list[float]:
    """Train ``model`` in place with Adam on softmax cross-entropy.

    Args:
      model: an nnx classifier (logits in the last axis); analog layers train in their current mode.
      data: (inputs (n, ...), integer labels (n,)).
      key: shuffling key (the ``"hwa"`` noise comes from the layers' own rng streams).
      epochs: passes over the data (the last partial batch of each shuffled epoch is dropped).
      batch_size: examples per step.
      learning_rate: Adam step size.
      weight_decay: decoupled weight decay (AdamW) when > 0.
      clip_sigma: clip analog kernels to this many standard deviations after every step (None: no clip).

    Returns:
      Mean training loss of every epoch.
    """
    if key is None:
        raise TypeError("key is required: a jax.random.key for shuffling")
    _check_positive("epochs", epochs, True)
    _check_positive("batch_size", batch_size, True)
    _check_positive("learning_rate", learning_rate)
    if clip_sigma is not None:
        _check_positive("clip_sigma", clip_sigma)
    x, y = jnp.asarray(data[0], jnp.result_type(float)), jnp.asarray(data[1], jnp.int32)
    n = x.shape[0]
    if y.shape != (n,):
        raise ValueError(f"data labels must be (n,) = ({n},), got {y.shape}")
    bs = min(batch_size, n)
    steps = n // bs
    tx = optax.adamw(learning_rate, weight_decay=weight_decay) if weight_decay else optax.adam(learning_rate)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = tx.init(params)
    has_analog = any(isinstance(m, ANALOG_LAYERS) for _, m in nnx.iter_graph(model))

    def step(carry, idx):
        params, rest, opt_state = carry

        def loss_fn(p):
            m = nnx.merge(graphdef, p, rest, copy=True)
            logits = m(x[idx])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()
            return loss, nnx.split(m, nnx.Param, ...)[2]  # rng stream counts advance

        (loss, rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if clip_sigma is not None and has_analog:
            m = nnx.merge(graphdef, params, rest, copy=True)
            clip_weights(m, clip_sigma)
            params = nnx.split(m, nnx.Param, ...)[1]
        return (params, rest, opt_state), loss

    @jax.jit
    def epoch(params, rest, opt_state, k):
        order = jax.random.permutation(k, n)[: steps * bs].reshape(steps, bs)
        (params, rest, opt_state), losses = jax.lax.scan(step, (params, rest, opt_state), order)
        return params, rest, opt_state, jnp.mean(losses)

    history = []
    for e in range(epochs):
        params, rest, opt_state, loss = epoch(params, rest, opt_state, jax.random.fold_in(key, e))
        history.append(float(loss))
    nnx.update(model, params, rest)
    return history


__all__ = ["fit"]
