import gzip
import struct

import numpy as np
import pytest

from xpnet import datasets


def _write_idx(path, array, gz=False):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)


def test_embedded_digits_are_scikit_learns():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    ref = sklearn_datasets.load_digits()
    (x, y), (xt, yt) = datasets.load_digits()
    ours = np.concatenate([x, xt]).reshape(-1, 64)
    labels = np.concatenate([y, yt])
    order = np.lexsort(np.column_stack([ours, labels]).T)
    ref_order = np.lexsort(np.column_stack([ref.data, ref.target]).T)
    np.testing.assert_array_equal(ours[order], ref.data[ref_order])
    np.testing.assert_array_equal(labels[order], ref.target[ref_order])


def test_load_digits():
    (x, y), (xt, yt) = datasets.load_digits()
    assert x.shape[1:] == (8, 8) and len(x) + len(xt) == 1797
    assert x.dtype == np.uint8 and x.max() == 16 and set(np.unique(y)) == set(range(10))
    (x2, _), _ = datasets.load_digits()
    np.testing.assert_array_equal(x, x2)  # the split is seeded


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx(tmp_path, gz):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    _write_idx(path, a, gz)
    np.testing.assert_array_equal(datasets.read_idx(str(path)), a)
    b = np.array([1, -2, 3], dtype=">i4")
    _write_idx(tmp_path / "b.idx", b)
    np.testing.assert_array_equal(datasets.read_idx(str(tmp_path / "b.idx")), [1, -2, 3])


def test_bad_idx_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        datasets.read_idx(str(tmp_path / "missing"))
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(str(tmp_path / "junk"))
    a = np.zeros((4, 5), np.uint8)
    _write_idx(tmp_path / "t.idx", a)
    raw = (tmp_path / "t.idx").read_bytes()
    (tmp_path / "t.idx").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        datasets.read_idx(str(tmp_path / "t.idx"))
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 10)
    with pytest.raises(ValueError, match="not a readable IDX file"):
        datasets.read_idx(str(tmp_path / "bad.gz"))


def test_load_mnist_layout(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.uint8), True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8))
    x, y = datasets.load_mnist(str(tmp_path), subset="test")
    assert x.shape == (3, 28, 28) and y.tolist() == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="train-images"):
        datasets.load_mnist(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not a directory"):
        datasets.load_mnist(str(tmp_path / "nope"))


def test_real_mnist_test_set(mnist_dir):
    x, y = datasets.load_mnist(mnist_dir, subset="test")
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert np.bincount(y).min() > 800


def test_load_mnist_split(tmp_path):
    images = np.arange(10 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(10, 28, 28)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, True)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8), True)
    (x, y), (xt, yt) = datasets.load_mnist_split(str(tmp_path), n_train=6)
    assert y.tolist() == list(range(6)) and yt.tolist() == [6, 7, 8, 9]
    np.testing.assert_array_equal(x, images[:6])
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[:3], True)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.array([7, 7, 7], np.uint8), True)
    (x, y), (xt, yt) = datasets.load_mnist_split(str(tmp_path))  # the official split
    assert y.tolist() == [7, 7, 7] and len(yt) == 10
