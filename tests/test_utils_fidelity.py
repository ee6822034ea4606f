"""Issue 10, points 4 and 8: set_random_seed seeds Python's and NumPy's global generators;
to_categorical is float64; SGD takes a learning rate of 0."""

import random

import numpy as np
import pytest

from xpnet import optimizers
from xpnet import utils


def test_set_random_seed_seeds_python_and_numpy():
    # Keras 3: set_random_seed(s) calls random.seed(s) and np.random.seed(s), so the global
    # generators repeat exactly after it.
    utils.set_random_seed(123)
    a = (random.random(), np.random.rand(3))
    utils.set_random_seed(123)
    b = (random.random(), np.random.rand(3))
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    random.seed(123)
    np.random.seed(123)
    assert a[0] == random.random()
    np.testing.assert_array_equal(a[1], np.random.rand(3))


def test_to_categorical_is_float64_like_keras():
    # keras.utils.to_categorical([0, 2, 1], 3) -> float64 one-hot rows
    y = utils.to_categorical(np.array([0, 2, 1]), 3)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(y), np.eye(3)[[0, 2, 1]])
    assert utils.to_categorical([[1], [0]]).dtype == np.float64


def test_sgd_learning_rate_zero_is_allowed():
    opt = optimizers.SGD(learning_rate=0.0)
    p = np.array([1.0, 2.0])
    opt.apply_gradients([(np.array([0.5, -1.0]), p)])
    np.testing.assert_array_equal(p, [1.0, 2.0])
    with pytest.raises(ValueError, match="learning_rate must be positive or 0"):
        optimizers.SGD(learning_rate=-0.1)
