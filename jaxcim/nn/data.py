"""Data for the networks: the digits bundled with scikit-learn, readers for the standard local files of
CIFAR-10/100 and MNIST/Fashion-MNIST, and `collect`, which turns any iterable of (inputs, labels) batches (a
torch ``DataLoader``, a generator) into the arrays `jaxcim.nn.evaluate` and `jaxcim.nn.fit` take.

``load_digits`` gives the UCI optical-recognition digits bundled with scikit-learn: 1797 grey-scale 8x8
images of the digits 0-9 (pixel counts 0-16), split into a stratified train and test set. Nothing here
downloads: `load_cifar` and `load_mnist` read files the user already has.

References:
  E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning Repository
  (1998); ``sklearn.datasets.load_digits``.
  A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images" (2009): the CIFAR binary format,
  https://www.cs.toronto.edu/~kriz/cifar.html.
  Y. LeCun et al., the MNIST database and its idx format, http://yann.lecun.com/exdb/mnist/; H. Xiao et al.,
  Fashion-MNIST, arXiv:1708.07747 (2017), same format.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

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


def collect(batches: Iterable[Any], *, max_examples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate an iterable of (inputs, labels) batches into (inputs (n, ...) float32, labels (n,) int32).

    Works with a torch ``DataLoader`` as it is (CPU tensors convert through ``np.asarray``), lists of numpy
    batches and generators; the result is what `jaxcim.nn.evaluate` and `jaxcim.nn.fit` take.

    Args:
      batches: iterable of pairs (inputs (b, ...), integer labels (b,)).
      max_examples: stop after this many examples (None: all).
    """
    xs, ys, n = [], [], 0
    for i, item in enumerate(batches):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise TypeError(f"batch {i}: expected a pair (inputs, labels), got {type(item).__name__}")
        x, y = np.asarray(item[0]), np.asarray(item[1])
        if x.ndim < 1 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"batch {i}: inputs (b, ...) and labels (b,) must agree, got {x.shape} and {y.shape}")
        if xs and x.shape[1:] != xs[0].shape[1:]:
            raise ValueError(f"batch {i}: input shape {x.shape[1:]} differs from the first batch's {xs[0].shape[1:]}")
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"batch {i}: labels must be integer class indices, got dtype {y.dtype}")
        xs.append(x.astype(np.float32))
        ys.append(y.astype(np.int32))
        n += x.shape[0]
        if max_examples is not None and n >= max_examples:
            break
    if not xs:
        raise ValueError("collect: the iterable yielded no batches")
    x, y = np.concatenate(xs), np.concatenate(ys)
    return (x[:max_examples], y[:max_examples]) if max_examples is not None else (x, y)


def _layout(x: np.ndarray, layout: str) -> np.ndarray:
    """(n, C, H, W) images -> the requested layout, float32 in [0, 1]."""
    if layout not in ("NCHW", "NHWC"):
        raise ValueError(f"layout must be 'NCHW' (PyTorch) or 'NHWC' (flax), got {layout!r}")
    x = x.astype(np.float32) / 255.0
    return x if layout == "NCHW" else np.ascontiguousarray(x.transpose(0, 2, 3, 1))


_CIFAR = {10: ({"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}, 1),
          100: ({"train": ["train.bin"], "test": ["test.bin"]}, 2)}


def load_cifar(path: str | Path, *, split: str = "test", classes: int = 10, layout: str = "NCHW",
               fine: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read the CIFAR-10 or CIFAR-100 binary version from a folder the user has.

    CIFAR-10: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train) and ``test_batch.bin``, records of one label
    byte and 3072 pixel bytes (1024 red, green, blue, row-major 32x32). CIFAR-100: ``train.bin``/``test.bin``,
    records of a coarse and a fine label byte and the same pixels.

    Args:
      path: the folder holding the ``.bin`` files (e.g. ``cifar-10-batches-bin``).
      split: ``"train"`` or ``"test"``.
      classes: 10 or 100.
      layout: ``"NCHW"`` (PyTorch) or ``"NHWC"``.
      fine: CIFAR-100 fine labels (100 classes) or coarse (20 superclasses).

    Returns:
      (images (n, 3, 32, 32) or (n, 32, 32, 3) float32 in [0, 1], labels (n,) int32).
    """
    if classes not in _CIFAR:
        raise ValueError(f"classes must be 10 or 100, got {classes!r}")
    files, n_labels = _CIFAR[classes]
    if split not in files:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(path)
    record = n_labels + 3072
    xs, ys = [], []
    for name in files[split]:
        f = folder / name
        if not f.is_file():
            raise FileNotFoundError(f"CIFAR-{classes}: {f} is missing (expected the binary version's "
                                    f"{', '.join(files[split])} in {folder})")
        raw = np.frombuffer(f.read_bytes(), np.uint8)
        if raw.size == 0 or raw.size % record:
            raise ValueError(f"CIFAR-{classes}: {f} is malformed: {raw.size} bytes is not a multiple of the "
                             f"{record}-byte record")
        raw = raw.reshape(-1, record)
        label = raw[:, n_labels - 1] if fine or n_labels == 1 else raw[:, 0]
        if label.max() >= (classes if fine or n_labels == 1 else 20):
            raise ValueError(f"CIFAR-{classes}: {f} is malformed: label {int(label.max())} out of range")
        xs.append(raw[:, n_labels:].reshape(-1, 3, 32, 32))
        ys.append(label.astype(np.int32))
    return _layout(np.concatenate(xs), layout), np.concatenate(ys)


def _read_idx(f: Path, dims: int) -> np.ndarray:
    """An idx file (optionally gzipped) of unsigned bytes with ``dims`` dimensions."""
    data = f.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"{f} is malformed: not a valid gzip file ({e})") from None
    if len(data) < 4 + 4 * dims or data[:3] != b"\x00\x00\x08" or data[3] != dims:
        raise ValueError(f"{f} is malformed: expected an idx header for {dims}-d unsigned bytes "
                         f"(magic 0x0000080{dims})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{f} is malformed: header says {shape} ({int(np.prod(shape))} bytes), file has "
                         f"{body.size}")
    return body.reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"MNIST: {folder / stem}[.gz] is missing")


def load_mnist(path: str | Path, *, split: str = "test", layout: str = "NCHW") -> tuple[np.ndarray, np.ndarray]:
    """Read MNIST or Fashion-MNIST idx files (raw or ``.gz``) from a folder the user has.

    Files: ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
    ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``), as distributed for both data sets.

    Args:
      path: the folder.
      split: ``"train"`` or ``"test"``.
      layout: ``"NCHW"`` (n, 1, 28, 28) or ``"NHWC"`` (n, 28, 28, 1).

    Returns:
      (images float32 in [0, 1], labels (n,) int32).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = Path(path)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_find(folder, f"{prefix}-images-idx3-ubyte"), 3)
    labels = _read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte"), 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"MNIST: {images.shape[0]} images but {labels.shape[0]} labels in {folder}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"MNIST: label {int(labels.max())} out of range 0..9 in {folder}")
    return _layout(images[:, None], layout), labels.astype(np.int32)


__all__ = ["Digits", "collect", "load_cifar", "load_digits", "load_mnist"]
