"""MNIST digits, as ``keras.datasets.mnist``: 60,000 + 10,000 grey-scale 28x28 images."""

import numpy as np

from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file

__all__ = ["load_data"]


def load_data(path="mnist.npz"):
    """Load MNIST from Keras's ``mnist.npz``.

    Parameters
    ----------
    path : str, default="mnist.npz"
        A file name in Keras's cache folder (``~/.keras/datasets``), or a path to the file.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 images ``(60000, 28, 28)`` / ``(10000, 28, 28)`` and uint8 labels 0-9
        ``(60000,)`` / ``(10000,)``.
    """
    path = get_file(path, ORIGIN + "mnist.npz", caller="mnist.load_data")
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])
