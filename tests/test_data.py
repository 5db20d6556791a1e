"""Data loaders: files written here in the published CIFAR binary and idx formats, read back exactly."""

import gzip

import numpy as np
import pytest

import jaxcim as jc


def _cifar_records(rng, n, n_labels, classes):
    labels = rng.integers(0, classes, size=(n, n_labels), dtype=np.uint8)
    pixels = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    return labels, pixels, np.concatenate([labels, pixels.reshape(n, -1)], axis=1).tobytes()


def test_cifar10_reads_the_binary_format(tmp_path):
    rng = np.random.default_rng(0)
    labels, pixels, raw = _cifar_records(rng, 5, 1, 10)
    (tmp_path / "test_batch.bin").write_bytes(raw)
    x, y = jc.nn.load_cifar(tmp_path, split="test")
    assert x.shape == (5, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(y, labels[:, 0])
    np.testing.assert_array_equal(x, pixels / np.float32(255))
    xh, _ = jc.nn.load_cifar(tmp_path, split="test", layout="NHWC")
    # channel planes: the first 1024 bytes are red, row-major (Krizhevsky 2009)
    assert xh[0, 0, 1, 0] == raw[1 + 1] / np.float32(255) and xh[0, 0, 0, 2] == raw[1 + 2048] / np.float32(255)


def test_cifar100_fine_and_coarse(tmp_path):
    rng = np.random.default_rng(1)
    labels, _, raw = _cifar_records(rng, 4, 2, 20)
    (tmp_path / "train.bin").write_bytes(raw)
    _, fine = jc.nn.load_cifar(tmp_path, split="train", classes=100)
    _, coarse = jc.nn.load_cifar(tmp_path, split="train", classes=100, fine=False)
    np.testing.assert_array_equal(fine, labels[:, 1])
    np.testing.assert_array_equal(coarse, labels[:, 0])


def test_cifar_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="test_batch.bin is missing"):
        jc.nn.load_cifar(tmp_path)
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="not a multiple of the 3073-byte record"):
        jc.nn.load_cifar(tmp_path)
    with pytest.raises(ValueError, match="classes must be 10 or 100"):
        jc.nn.load_cifar(tmp_path, classes=7)
    with pytest.raises(ValueError, match="split must be"):
        jc.nn.load_cifar(tmp_path, split="val")


def _idx(a):
    head = bytes([0, 0, 8, a.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in a.shape)
    return head + a.astype(np.uint8).tobytes()


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_raw_and_gz(tmp_path, compress):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=3, dtype=np.uint8)
    for name, a in (("t10k-images-idx3-ubyte", images), ("t10k-labels-idx1-ubyte", labels)):
        data = _idx(a)
        if compress:
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (tmp_path / name).write_bytes(data)
    x, y = jc.nn.load_mnist(tmp_path)
    assert x.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(x[:, 0], images / np.float32(255))
    np.testing.assert_array_equal(y, labels)
    assert jc.nn.load_mnist(tmp_path, layout="NHWC")[0].shape == (3, 28, 28, 1)


def test_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        jc.nn.load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="expected an idx header for 3-d"):
        jc.nn.load_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(np.zeros((2, 28, 28)))[:-5])
    with pytest.raises(ValueError, match="header says"):
        jc.nn.load_mnist(tmp_path)


def test_collect_batches_and_errors():
    batches = [(np.ones((2, 3), np.float64), np.array([0, 1])), (np.zeros((1, 3)), np.array([2]))]
    x, y = jc.nn.collect(iter(batches))
    assert x.shape == (3, 3) and x.dtype == np.float32 and y.tolist() == [0, 1, 2]
    x2, y2 = jc.nn.collect(batches, max_examples=2)
    assert x2.shape == (2, 3) and y2.tolist() == [0, 1]
    with pytest.raises(ValueError, match="yielded no batches"):
        jc.nn.collect([])
    with pytest.raises(ValueError, match="differs from the first batch"):
        jc.nn.collect([(np.ones((1, 3)), np.array([0])), (np.ones((1, 4)), np.array([0]))])
    with pytest.raises(TypeError, match="integer class indices"):
        jc.nn.collect([(np.ones((1, 3)), np.array([0.5]))])


def test_collect_torch_dataloader():
    torch = pytest.importorskip("torch")
    ds = torch.utils.data.TensorDataset(torch.arange(12.0).reshape(6, 2), torch.arange(6))
    x, y = jc.nn.collect(torch.utils.data.DataLoader(ds, batch_size=4))
    np.testing.assert_array_equal(x, np.arange(12.0).reshape(6, 2))
    assert y.tolist() == list(range(6))
