"""The seeded shuffle-and-split that Keras's regression and text datasets share."""

import numpy as np


def check_test_split(test_split, caller):
    if not 0 <= test_split < 1:
        raise ValueError(f"{caller}: invalid test_split argument: {test_split}. It must be "
                         "between 0 and 1 (exclusive of 1).")


def shuffled(seed, *arrays):
    """``arrays`` reordered by one ``np.random.RandomState(seed).shuffle`` of their indices,
    Keras's exact order (a legacy generator: the order is part of the data set's split)."""
    indices = np.arange(len(arrays[0]))
    np.random.RandomState(seed).shuffle(indices)
    return [a[indices] for a in arrays]


def split(x, y, test_split):
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))
