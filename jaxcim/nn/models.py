"""Small digital classifiers for the 8x8 digits (`jaxcim.nn.load_digits`), to train and then analogize."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


class MLP(nnx.Module):
    """A ReLU multilayer perceptron: (batch, features[0]) -> (batch, features[-1]) logits.

    Args:
      features: layer widths including input and output, e.g. (64, 64, 10).
      rngs: ``nnx.Rngs`` for the initial weights.
    """

    def __init__(self, features: Sequence[int] = (64, 64, 10), *, rngs: nnx.Rngs):
        features = tuple(features)
        if len(features) < 2 or any(isinstance(f, bool) or not isinstance(f, int) or f < 1 for f in features):
            raise ValueError(f"MLP.features must be >= 2 positive ints (input, hidden..., output), got {features!r}")
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(features[:-1], features[1:],
                                                                             strict=True)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


def _avg_pool2(x: jax.Array) -> jax.Array:
    """2x2 average pooling with stride 2 of (batch, H, W, C), H and W even."""
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class CNN(nnx.Module):
    """A tiny convolutional classifier for 8x8 images: conv3x3 -> pool -> conv3x3 -> pool -> dense.

    (batch, 8, 8, 1) -> (batch, 10) logits.

    Args:
      channels: output channels of the two convolutions.
      n_classes: logits.
      rngs: ``nnx.Rngs`` for the initial weights.
    """

    def __init__(self, channels: tuple[int, int] = (8, 16), n_classes: int = 10, *, rngs: nnx.Rngs):
        c1, c2 = channels
        self.conv1 = nnx.Conv(1, c1, (3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, (3, 3), padding="SAME", rngs=rngs)
        self.head = nnx.Linear(2 * 2 * c2, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = _avg_pool2(jax.nn.relu(self.conv1(x)))
        x = _avg_pool2(jax.nn.relu(self.conv2(x)))
        return self.head(jnp.reshape(x, (x.shape[0], -1)))


__all__ = ["CNN", "MLP"]
