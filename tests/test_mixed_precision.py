"""LossScaleOptimizer (issue 11, point 10): Keras 3's dynamic loss scaling, exact when
nothing overflows, skipping and halving on overflow, doubling after its growth steps."""

import numpy as np
import pytest

import xpnet
from xpnet import keras
from xpnet import layers
from xpnet import mixed_precision
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
    model = _model(LossScaleOptimizer(keras.optimizers.Adam(0.01), dynamic_growth_steps=4))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)  # 6 steps: doubled once, 2 counted
    model.save(tmp_path / "m.xpnet")
    loaded = xpnet.load_model(tmp_path / "m.xpnet")
    assert type(loaded.optimizer) is LossScaleOptimizer
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert (loaded.optimizer.dynamic_scale, loaded.optimizer.step_counter) == (2.0**16, 2)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)


def test_activity_regularizers_are_refused():
    model = keras.Sequential([keras.Input(shape=(6,)),
                              layers.Dense(4, activity_regularizer="l2")], backend="cpu")
    with pytest.raises(NotImplementedError, match="activity regularizer"):
        model.compile(optimizer=LossScaleOptimizer("sgd"), loss="mse")


# -- policies ---------------------------------------------------------------------------------
@pytest.fixture
def policy():
    """Sets a global policy for one test and restores float32 after it."""
    yield mixed_precision.set_global_policy
    mixed_precision.set_global_policy(None)


def test_policies_as_keras(policy):
    p = mixed_precision.DTypePolicy("mixed_float16")
    assert (p.name, p.compute_dtype, p.variable_dtype) == ("mixed_float16", "float16",
                                                           "float32")
    assert mixed_precision.Policy("mixed_bfloat16").compute_dtype == "bfloat16"
    assert mixed_precision.global_policy().name == "float32"
    policy("mixed_float16")
    assert mixed_precision.global_policy() == p
    dense = layers.Dense(3)
    assert dense.dtype_policy == p and dense.dtype == "float32"
    assert dense.get_config()["dtype"] == "mixed_float16"
    assert layers.Dense(3, dtype="float64").dtype_policy.compute_dtype == "float64"
    assert layers.Dense.from_config(dense.get_config()).dtype_policy == p


def _mlp(seed=0, bn=False):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input(shape=(6,)), layers.Dense(32, activation="relu")] +
        ([layers.BatchNormalization()] if bn else []) +
        [layers.Dense(3, activation="softmax")], backend="cpu")


@pytest.mark.parametrize("name", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_models_keep_float32_weights_and_compute_in_16_bits(policy, name):
    x, y = _data()
    reference = _mlp()
    policy(name)
    mixed = _mlp()
    mixed.set_weights(reference.get_weights())
    low = mixed_precision.DTypePolicy(name).compute_dtype
    assert mixed.inputs[0].dtype == low and mixed.outputs[0].dtype == low
    out = mixed.predict(x, verbose=0)
    # ml_dtypes' bfloat16 products return float32 on NumPy: the layers after the first
    # product compute in float32 there (the weights are bfloat16 copies all the same)
    assert str(out.dtype) == (low if low == "float16" else "float32")
    np.testing.assert_allclose(out.astype(np.float32), reference.predict(x, verbose=0),
                               atol=3e-2 if low == "bfloat16" else 5e-3)
    for model in (reference, mixed):
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    assert isinstance(mixed.optimizer, LossScaleOptimizer) == (name == "mixed_float16")
    reference.train_on_batch(x, y)
    mixed.train_on_batch(x, y)
    for a, b in zip(reference.get_weights(), mixed.get_weights()):
        assert b.dtype == np.float32
        np.testing.assert_allclose(a, b, atol=3e-2 if low == "bfloat16" else 3e-3)
    h = mixed.fit(x, y, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert h[-1] < h[0] and all(np.isfinite(h))


def test_mixed_batch_norm_statistics_and_saving(policy, tmp_path):
    policy("mixed_float16")
    x, y = _data()
    model = _mlp(bn=True)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    bn = model.layers[1]
    before = bn.get_weights()[2].copy()  # moving_mean
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert bn.params["moving_mean"].dtype == np.float32
    assert not np.array_equal(before, bn.get_weights()[2])  # the statistics were kept
    model.save(tmp_path / "mixed.xpnet")
    policy(None)
    loaded = xpnet.load_model(tmp_path / "mixed.xpnet")
    assert loaded.layers[0].dtype_policy.name == "mixed_float16"
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.optimizer, LossScaleOptimizer)


def test_a_keras_style_layer_under_mixed_float16(policy):
    """A layer written with build() + call() over keras.ops reads its weights through the
    same params the policy swaps: 16-bit compute, float32 weights, trained."""
    ops = keras.ops

    class Linear(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")

        def call(self, x):
            return ops.tanh(ops.matmul(x, self.w))

    policy("mixed_float16")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(6,)), Linear(16),
                              layers.Dense(3, activation="softmax")], backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    x, y = _data()
    h = model.fit(x, y, epochs=4, batch_size=32, verbose=0).history["loss"]
    assert h[-1] < h[0]
    assert all(w.dtype == np.float32 for w in model.get_weights())
    assert model.predict(x[:2], verbose=0).dtype == np.float16


def test_added_losses_are_refused():
    """A loss added in call() gets its gradient from the engine unscaled: refused, not
    silently divided by the scale."""
    class Penalised(keras.layers.Layer):
        def call(self, x):
            self.add_loss(keras.ops.sum(x * x) * 0.01)
            return x

    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(4), Penalised(),
                              layers.Dense(3, activation="softmax")], backend="cpu")
    model.compile(optimizer=LossScaleOptimizer("sgd"), loss="sparse_categorical_crossentropy")
    x, y = _data()
    with pytest.raises(NotImplementedError, match="added losses"):
        model.fit(x, y, epochs=1, verbose=0)
