"""Data sets on the host: the embedded UCI digits, and MNIST-format IDX files in a folder.

The datasets package, like ``backend.py``, works with NumPy directly: it reads files into
host memory.
"""

import gzip
import os
import struct
from importlib import resources

import numpy as np

__all__ = ["load_digits", "load_mnist", "load_mnist_split", "read_idx"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def load_digits(test_fraction=0.2, seed=0):
    """The UCI hand-written digits that scikit-learn ships, embedded in xpnet.

    1,797 grey-scale 8x8 images with values 0..16, ten classes. Split by a seeded
    permutation into training and test sets.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : uint8 images ``(n, 8, 8)`` and uint8 labels
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"load_digits: test_fraction must be in (0, 1), got {test_fraction}")
    with resources.files("xpnet").joinpath("data/digits.csv.gz").open("rb") as f:
        data = np.loadtxt(gzip.open(f), delimiter=",", dtype=np.uint8)
    x, y = data[:, :64].reshape(-1, 8, 8), data[:, 64]
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return (x[train], y[train]), (x[test], y[test])


def read_idx(path):
    """Read one IDX file (the MNIST format), gzipped or raw, into a NumPy array."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"read_idx: no such file: {path}")
    opener = gzip.open if _is_gzip(path) else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"read_idx: {path} is not a readable IDX file: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number "
                         f"{raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"read_idx: {path} is truncated inside its header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"read_idx: {path} holds {len(raw) - header} data bytes, but its "
                         f"header {shape} needs {expected}: the file is truncated or corrupt")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(
        dtype.newbyteorder("="))


def _is_gzip(path):
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


def load_mnist(path, subset=None):
    """Read MNIST (or Fashion-MNIST) from the IDX files in directory ``path``.

    Parameters
    ----------
    path : str
        A directory holding ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (gzipped or not).
    subset : {"train", "test", None}, default=None
        One subset as ``(x, y)``; None returns ``(x_train, y_train), (x_test, y_test)``.

    Returns
    -------
    uint8 images ``(n, 28, 28)`` and uint8 labels ``(n,)``
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"load_mnist: {path} is not a directory")
    if subset is None:
        return load_mnist(path, "train"), load_mnist(path, "test")
    prefix = {"train": "train", "test": "t10k"}.get(subset)
    if prefix is None:
        raise ValueError(f"load_mnist: subset must be 'train', 'test' or None, got {subset!r}")
    images = _find(path, f"{prefix}-images-idx3-ubyte")
    labels = _find(path, f"{prefix}-labels-idx1-ubyte")
    if images is None or labels is None:
        raise FileNotFoundError(f"load_mnist: no {prefix}-images-idx3-ubyte[.gz] and "
                                f"{prefix}-labels-idx1-ubyte[.gz] in {path}")
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(f"load_mnist: images {x.shape} and labels {y.shape} in {path} "
                         "do not pair up")
    return x, y


def load_mnist_split(path, n_train=8000):
    """MNIST for training and testing from the IDX files in directory ``path``.

    With both subsets present, the official 60,000/10,000 split. With only the test set
    (``t10k-*``, as in xpnet's benchmark data), its first ``n_train`` images train and the
    rest test: the split xpnet's examples and benchmarks use.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : uint8 images ``(n, 28, 28)`` and uint8 labels
    """
    if _find(path, "train-labels-idx1-ubyte") is not None:
        return load_mnist(path)
    x, y = load_mnist(path, subset="test")
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
