"""CIFAR-100, as ``keras.datasets.cifar100``: 50,000 + 10,000 colour 32x32 images, 100 fine
classes in 20 coarse superclasses."""

from xpnet.datasets._cifar import channels_last
from xpnet.datasets._cifar import source

__all__ = ["load_data"]

ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"


def load_data(label_mode="fine", path=None):
    """Load CIFAR-100 from Keras's cache (``~/.keras/datasets/cifar-100-python-target/``,
    its archive, or an older Keras's ``cifar-100-python/``).

    Parameters
    ----------
    label_mode : {"fine", "coarse"}, default="fine"
        The 100 classes, or the 20 superclasses.
    path : str, default=None
        xpnet's addition: the ``cifar-100-python.tar.gz`` archive or its folder.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        uint8 images ``(50000, 32, 32, 3)`` / ``(10000, 32, 32, 3)`` and uint8 labels
        ``(n, 1)``.
    """
    if label_mode not in ("fine", "coarse"):
        raise ValueError('cifar100.load_data: label_mode must be one of "fine", "coarse". '
                         f"Received: label_mode={label_mode}.")
    src = source("cifar-100-python-target", "cifar-100-python", ORIGIN, path,
                 "cifar100.load_data")
    key = f"{label_mode}_labels"
    return channels_last(*src.read("train", key)), channels_last(*src.read("test", key))
