"""California housing prices, as ``keras.datasets.california_housing``: 20,640 block groups
of 8 features, targets the median house value in dollars."""

import numpy as np

from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file
from xpnet.datasets._split import check_test_split
from xpnet.datasets._split import shuffled
from xpnet.datasets._split import split

__all__ = ["load_data"]


def load_data(version="large", path="california_housing.npz", test_split=0.2, seed=113):
    """Load the California housing data from Keras's ``california_housing.npz``.

    Parameters
    ----------
    version : {"large", "small"}, default="large"
        All 20,640 samples, or the first 600.
    path : str, default="california_housing.npz"
        A file name in Keras's cache folder, or a path to the file.
    test_split : float, default=0.2
    seed : int, default=113

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Features ``(n, 8)`` and targets ``(n,)`` in the dtype the file stores.
    """
    check_test_split(test_split, "california_housing.load_data")
    if version not in ("small", "large"):
        raise ValueError("california_housing.load_data: version must be one of 'small', "
                         f"'large'. Received: version={version}")
    path = get_file(path, ORIGIN + "california_housing.npz",
                    caller="california_housing.load_data")
    with np.load(path, allow_pickle=False) as f:
        x, y = f["x"], f["y"]
    if version == "small":
        x, y = x[:600], y[:600]
    return split(*shuffled(seed, x, y), test_split)
