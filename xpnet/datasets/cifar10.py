"""CIFAR-10, as ``keras.datasets.cifar10``: 50,000 + 10,000 colour 32x32 images, ten
classes."""

import numpy as np

from xpnet.datasets._cifar import channels_last
from xpnet.datasets._cifar import source

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def load_data(path=None):
    """Load CIFAR-10 from Keras's cache (``~/.keras/datasets/cifar-10-batches-py-target/``,
    its archive, or an older Keras's ``cifar-10-batches-py/``).

    Parameters
    ----------
    path : str, default=None
        xpnet's addition: the ``cifar-10-python.tar.gz`` archive or the folder of its
        batches (Keras's ``load_data()`` takes no argument).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 images ``(50000, 32, 32, 3)`` / ``(10000, 32, 32, 3)`` (channels last) and
        uint8 labels 0-9 ``(50000, 1)`` / ``(10000, 1)``.
    """
    src = source("cifar-10-batches-py-target", "cifar-10-batches-py", ORIGIN, path,
                 "cifar10.load_data")
    parts = [src.read(f"data_batch_{i}", "labels") for i in range(1, 6)]
    x_train = np.concatenate([p[0] for p in parts])
    y_train = np.concatenate([p[1] for p in parts])
    x_test, y_test = src.read("test_batch", "labels")
    return channels_last(x_train, y_train), channels_last(x_test, y_test)
