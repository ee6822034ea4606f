"""Fashion-MNIST, as ``keras.datasets.fashion_mnist``: 28x28 grey-scale images of ten kinds
of clothing, 60,000 for training and 10,000 for testing."""

import gzip
import os

import numpy as np

from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file

__all__ = ["load_data"]

FILES = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")


def _read(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_data(path=None):
    """Load Fashion-MNIST from Keras's four gzipped IDX files, cached in
    ``~/.keras/datasets/fashion-mnist/``.

    Parameters
    ----------
    path : str, default=None
        xpnet's addition: a folder holding the four files (Keras's ``load_data()`` takes no
        argument and reads its cache folder).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 images ``(60000, 28, 28)`` / ``(10000, 28, 28)`` and uint8 labels ``(n,)``.
    """
    subdir = os.path.join("datasets", "fashion-mnist")
    paths = [get_file(f if path is None else os.path.join(path, f), ORIGIN + f, subdir,
                      caller="fashion_mnist.load_data") for f in FILES]
    y_train, y_test = _read(paths[0], 8), _read(paths[2], 8)
    x_train = _read(paths[1], 16).reshape(len(y_train), 28, 28)
    x_test = _read(paths[3], 16).reshape(len(y_test), 28, 28)
    return (x_train, y_train), (x_test, y_test)
