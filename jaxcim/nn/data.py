"""Real data that ships with an installed package: scikit-learn's handwritten digits (no download).

``load_digits`` gives the UCI optical-recognition digits bundled with scikit-learn: 1797 grey-scale 8x8
images of the digits 0-9 (pixel counts 0-16), split into a stratified train and test set.

References:
  E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning Repository
  (1998); ``sklearn.datasets.load_digits``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Digits(NamedTuple):
    """A train/test split. Inputs are float32 in [0, 1]; labels int32 in 0..9.

    Attributes:
      x_train: (n_train, 64) flat, or (n_train, 8, 8, 1) images (NHWC).
      y_train: (n_train,).
      x_test: (n_test, 64) or (n_test, 8, 8, 1).
      y_test: (n_test,).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _sklearn_digits():
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise ImportError("jaxcim.nn.load_digits needs scikit-learn, which ships the digits data set: "
                          "pip install scikit-learn (or pip install 'jaxcim[test]')") from None
    return sk_load_digits()


def load_digits(*, test_fraction: float = 0.2, images: bool = False, seed: int = 0) -> Digits:
    """The scikit-learn digits, scaled to [0, 1] and split into stratified train and test sets.

    Args:
      test_fraction: fraction of each class held out for testing, in (0, 1).
      images: (n, 8, 8, 1) channels-last images (for convolutions) instead of flat (n, 64) vectors.
      seed: seed of the split (numpy ``default_rng``).

    Returns:
      `Digits` (x_train, y_train, x_test, y_test). With the defaults: 1437 train and 360 test examples.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    raw = _sklearn_digits()
    x = (raw.data / 16.0).astype(np.float32)
    y = raw.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        test[members[: int(round(test_fraction * len(members)))]] = True
    train_idx = rng.permutation(np.flatnonzero(~test))
    test_idx = np.flatnonzero(test)
    if images:
        x = x.reshape(-1, 8, 8, 1)
    return Digits(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


__all__ = ["Digits", "load_digits"]
