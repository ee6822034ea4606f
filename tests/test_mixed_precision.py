"""LossScaleOptimizer (issue 11, point 10): Keras 3's dynamic loss scaling, exact when
nothing overflows, skipping and halving on overflow, doubling after its growth steps."""

import numpy as np
import pytest

import xpnet
from xpnet import keras
from xpnet import layers
from xpnet.mixed_precision import LossScaleOptimizer


def test_keras_defaults_and_config():
    opt = LossScaleOptimizer(keras.optimizers.Adam(0.01))
    assert opt.initial_scale == opt.dynamic_scale == 2.0**15  # Keras 3's defaults
    assert opt.dynamic_growth_steps == 2000
    again = LossScaleOptimizer.from_config(opt.get_config())
    assert again.get_config() == opt.get_config()
    assert type(again.inner_optimizer) is keras.optimizers.Adam
    assert again.learning_rate == 0.01
    for bad in ({"initial_scale": 0}, {"initial_scale": float("inf")},
                {"dynamic_growth_steps": 0}, {"dynamic_growth_steps": 2.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            LossScaleOptimizer("sgd", **bad)


def test_overflow_skips_the_step_and_halves_growth_doubles():
    opt = LossScaleOptimizer(keras.optimizers.SGD(0.5), initial_scale=8.0,
                             dynamic_growth_steps=2)
    p = np.ones(3, np.float32)
    opt.apply_gradients([(np.array([1.0, np.inf, 0.0], np.float32), p)])
    np.testing.assert_array_equal(p, 1.0)  # skipped
    assert opt.dynamic_scale == 4.0 and opt.iterations == 0
    opt.apply_gradients([(np.array([4.0, 8.0, np.nan], np.float32), p)])
    assert opt.dynamic_scale == 2.0 and opt.iterations == 0
    opt.apply_gradients([(np.array([2.0, 4.0, 0.0], np.float32), p)])  # scaled by 2
    np.testing.assert_array_equal(p, [0.5, 0.0, 1.0])  # p -= 0.5 * g / 2
    assert opt.iterations == 1 and opt.dynamic_scale == 2.0
    opt.apply_gradients([(np.zeros(3, np.float32), p)])
    assert opt.iterations == 2 and opt.dynamic_scale == 4.0  # two finite steps: doubled
    assert opt.step_counter == 0


def _model(optimizer, dtype="float32", seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(6,)),
        layers.Dense(16, activation="relu", kernel_regularizer="l2", dtype=dtype),
        layers.Dense(3, activation="softmax", dtype=dtype)], backend="cpu")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def _data(dtype=np.float32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 6)).astype(dtype)
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


def test_scaling_is_exact_when_nothing_overflows():
    """A power-of-two scale multiplies and divides exactly: the same weights as without it,
    the weight regularizer's gradient scaled with the loss's."""
    x, y = _data()
    plain = _model(keras.optimizers.SGD(0.1, momentum=0.9))
    h1 = plain.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
    scaled = _model(LossScaleOptimizer(keras.optimizers.SGD(0.1, momentum=0.9)))
    h2 = scaled.fit(x, y, epochs=3, batch_size=16, verbose=0).history["loss"]
    assert h1 == h2  # the logged loss is the unscaled one
    for a, b in zip(plain.get_weights(), scaled.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert scaled.optimizer.iterations == 18


def test_float16_model_finds_a_scale_that_fits():
    """2**20 times a float16 gradient overflows (float16 tops out at 65504): the scale
    halves on every overflowing step until the gradients fit, and training goes on."""
    x, y = _data(np.float16)
    opt = LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0**20)
    model = _model(opt, dtype="float16")
    with np.errstate(over="ignore"):  # the overflows the scale is there to catch
        history = model.fit(x, y, epochs=6, batch_size=32, verbose=0).history["loss"]
    assert opt.dynamic_scale < 2.0**20
    assert opt.iterations > 0 and all(np.isfinite(history))
    assert history[-1] < history[0]
    assert all(w.dtype == np.float16 for w in model.get_weights())


def test_save_and_load_a_model_compiled_with_it(tmp_path):
    x, y = _data()
    model = _model(LossScaleOptimizer(keras.optimizers.Adam(0.01), dynamic_growth_steps=5))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    model.save(tmp_path / "m.xpnet")
    loaded = xpnet.load_model(tmp_path / "m.xpnet")
    assert type(loaded.optimizer) is LossScaleOptimizer
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)


def test_activity_regularizers_are_refused():
    model = keras.Sequential([keras.Input(shape=(6,)),
                              layers.Dense(4, activity_regularizer="l2")], backend="cpu")
    with pytest.raises(NotImplementedError, match="activity regularizer"):
        model.compile(optimizer=LossScaleOptimizer("sgd"), loss="mse")
