"""Boston housing prices, as ``keras.datasets.boston_housing``: 506 samples of 13 features,
targets the median home value in k$."""

import numpy as np

from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file
from xpnet.datasets._split import check_test_split
from xpnet.datasets._split import shuffled
from xpnet.datasets._split import split

__all__ = ["load_data"]


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """Load the Boston housing data from Keras's ``boston_housing.npz``, shuffled with
    ``RandomState(seed)`` and split as Keras splits it.

    Parameters
    ----------
    path : str, default="boston_housing.npz"
        A file name in Keras's cache folder, or a path to the file.
    test_split : float, default=0.2
        Fraction held out for testing, in [0, 1).
    seed : int, default=113

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        float64 features ``(n, 13)`` and float64 targets ``(n,)`` (404 and 102 samples).
    """
    check_test_split(test_split, "boston_housing.load_data")
    path = get_file(path, ORIGIN + "boston_housing.npz", caller="boston_housing.load_data")
    with np.load(path, allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    return split(*shuffled(seed, x, y), test_split)
