"""Issue 10 point 10: Normalization, Rescaling, Permute, RepeatVector, PReLU, Dot, Maximum,
Minimum, GroupNormalization and UnitNormalization through the float64 gradient-check
harness on NumPy and array-api-strict, with the numbers Keras 3's formulas give."""

import numpy as np
import pytest
from harness import check_layer

from xpnet import keras
from xpnet import layers


def _np(backend, a):
    return backend.to_numpy(a)


# -- Normalization ------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,shape,weights", [
    ({}, (4, 3), {"mean": (3,), "variance": (3,), "count": ()}),
    ({"axis": (1, 2)}, (3, 2, 4), {"mean": (2, 4), "variance": (2, 4), "count": ()}),
    ({"axis": None}, (4, 3), {"mean": (), "variance": (), "count": ()}),
    ({"invert": True}, (4, 3), None),
    ({"mean": [1.0, 2.0, 3.0], "variance": [4.0, 1.0, 0.25]}, (4, 3), {}),
    ({"mean": 2.0, "variance": 9.0, "axis": (1, 2)}, (3, 2, 2), {}),
], ids=["last", "two_axes", "scalar", "invert", "fixed", "fixed_scalar"])
def test_normalization_harness(backend, kwargs, shape, weights):
    check_layer(backend, layers.Normalization, kwargs, input_shape=shape,
                expected_output_shape=shape, expected_weights=weights)


def test_normalization_adapt_matches_keras(backend):
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (50, 4)).astype(np.float32)
    layer = layers.Normalization()
    layer.build_on(backend, (None, 4))
    layer.adapt(data)
    assert [w.shape for w in layer.get_weights()] == [(4,), (4,), ()]  # mean, variance, count
    assert layer.trainable_weights == []  # the statistics are non-trainable
    np.testing.assert_allclose(layer.get_weights()[0], data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(layer.get_weights()[1], data.var(0), rtol=1e-5)  # biased
    y = _np(backend, layer(backend.asarray(data)))
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(0), 1.0, rtol=1e-4)
    # a list of batches merges to the same statistics (Keras's running formula)
    batched = layers.Normalization()
    batched.build_on(backend, (None, 4))
    batched.adapt([data[:20], data[20:35], data[35:]])
    np.testing.assert_allclose(batched.get_weights()[1], data.var(0), rtol=1e-5)
    inverse = layers.Normalization(invert=True)
    inverse.build_on(backend, (None, 4))
    inverse.adapt(data)
    np.testing.assert_allclose(_np(backend, inverse(backend.asarray(y))), data, rtol=1e-4,
                               atol=1e-4)


def test_normalization_fixed_values_and_epsilon(cpu):
    # Keras: (x - mean) / max(sqrt(variance), 1e-7)
    layer = layers.Normalization(mean=[1.0, 2.0], variance=[4.0, 0.0])
    y = layer(np.array([[3.0, 2.5]], np.float32))
    np.testing.assert_allclose(y, [[1.0, 0.5 / 1e-7]], rtol=1e-6)
    with pytest.raises(ValueError, match="both mean and variance"):
        layers.Normalization(mean=1.0)


def test_normalization_in_a_model_saves_its_statistics(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 3.0, (64, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    norm = layers.Normalization()
    norm.adapt(x)
    model = keras.Sequential([keras.Input(shape=(3,)), norm, layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=2, verbose=0)
    np.testing.assert_allclose(norm.get_weights()[0], x.mean(0), rtol=1e-5)  # not trained
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)


# -- Rescaling, Permute, RepeatVector -----------------------------------------------------
def test_rescaling(backend):
    check_layer(backend, layers.Rescaling, {"scale": 1 / 255}, input_shape=(2, 3, 3, 2),
                expected_output_shape=(2, 3, 3, 2), expected_num_params=0)
    check_layer(backend, layers.Rescaling, {"scale": [1.0, 2.0], "offset": -1.0},
                input_shape=(3, 2))
    y = layers.Rescaling(1 / 127.5, offset=-1)(backend.asarray(
        np.array([[0.0, 127.5, 255.0]], np.float32)))
    np.testing.assert_allclose(_np(backend, y), [[-1.0, 0.0, 1.0]], atol=1e-7)


def test_permute_and_repeat_vector(backend):
    check_layer(backend, layers.Permute, {"dims": (2, 1)}, input_shape=(2, 3, 4),
                expected_output_shape=(2, 4, 3))
    check_layer(backend, layers.Permute, {"dims": (3, 1, 2)}, input_shape=(2, 3, 4, 5),
                expected_output_shape=(2, 5, 3, 4))
    check_layer(backend, layers.RepeatVector, {"n": 3}, input_shape=(2, 4),
                expected_output_shape=(2, 3, 4))
    x = backend.asarray(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(_np(backend, layers.RepeatVector(2)(x))[1],
                                  [[3, 4, 5], [3, 4, 5]])
    with pytest.raises(ValueError, match="consecutive"):
        layers.Permute((1, 3))


# -- PReLU -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,shape,alpha", [
    ({"alpha_initializer": "ones"}, (3, 4), (4,)),
    ({"alpha_initializer": {"class_name": "RandomUniform", "config": {"seed": 1}}},
     (2, 3, 3, 2), (3, 3, 2)),
    ({"shared_axes": [1, 2], "alpha_initializer": {"class_name": "RandomUniform",
                                                   "config": {"seed": 2}}},
     (2, 3, 3, 2), (1, 1, 2)),
], ids=["dense", "full", "shared"])
def test_prelu(backend, kwargs, shape, alpha):
    check_layer(backend, layers.PReLU, kwargs, input_shape=shape, expected_output_shape=shape,
                expected_weights={"alpha": alpha}, dodge=0.0)


def test_prelu_defaults_to_relu(cpu):
    layer = layers.PReLU()  # Keras: alpha_initializer="Zeros"
    np.testing.assert_array_equal(layer(np.array([[-2.0, 3.0]], np.float32)), [[0.0, 3.0]])
    layer.set_weights([np.array([0.25, 0.25], np.float32)])
    np.testing.assert_array_equal(layer(np.array([[-2.0, 3.0]], np.float32)), [[-0.5, 3.0]])


# -- Dot, Maximum, Minimum -----------------------------------------------------------------
@pytest.mark.parametrize("kwargs,shapes,out", [
    ({"axes": 1}, [(3, 4), (3, 4)], (3, 1)),
    ({"axes": -1, "normalize": True}, [(3, 4), (3, 4)], (3, 1)),
    ({"axes": (2, 2)}, [(2, 3, 4), (2, 5, 4)], (2, 3, 5)),
    ({"axes": (1, 2)}, [(2, 3, 4), (2, 5, 3)], (2, 4, 5)),
    ({"axes": (1, 1), "normalize": True}, [(2, 3), (2, 3, 4)], (2, 4)),
], ids=["vectors", "cosine", "last", "mixed", "rank2_rank3"])
def test_dot(backend, kwargs, shapes, out):
    check_layer(backend, layers.Dot, kwargs, input_shape=shapes, expected_output_shape=out)


def test_dot_values(cpu):
    a = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    b = np.array([[5.0, 6.0], [7.0, 8.0]], np.float32)
    np.testing.assert_allclose(layers.Dot(axes=1)([a, b]), [[17.0], [53.0]])
    cos = layers.Dot(axes=1, normalize=True)([a, b])
    expected = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(cos[:, 0], expected, rtol=1e-6)


def _distinct(rng, shape):  # inputs far from ties, so max/min are differentiable
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(0, 0.01, shape)


@pytest.mark.parametrize("cls", [layers.Maximum, layers.Minimum])
def test_maximum_minimum(backend, cls):
    check_layer(backend, cls, {}, input_shape=[(3, 4), (3, 4), (3, 4)],
                expected_output_shape=(3, 4), x_fn=_distinct)
    a, b = np.array([[1.0, 5.0]], np.float32), np.array([[3.0, 2.0]], np.float32)
    want = np.maximum(a, b) if cls is layers.Maximum else np.minimum(a, b)
    got = cls()([backend.asarray(a), backend.asarray(b)])
    np.testing.assert_array_equal(_np(backend, got), want)


# -- GroupNormalization, UnitNormalization -----------------------------------------------------
@pytest.mark.parametrize("kwargs,shape", [
    ({"groups": 2}, (2, 3, 4)),
    ({"groups": -1}, (2, 3, 3, 2)),
    ({"groups": 1, "center": False}, (3, 4)),
    ({"groups": 2, "axis": 1, "scale": False}, (2, 4, 3)),
], ids=["groups2", "instance", "layer", "channels_first"])
def test_group_normalization(backend, kwargs, shape):
    dim = shape[kwargs.get("axis", -1)]
    weights = {k: (dim,) for k, on in (("gamma", kwargs.get("scale", True)),
                                       ("beta", kwargs.get("center", True))) if on}
    check_layer(backend, layers.GroupNormalization, kwargs, input_shape=shape,
                expected_output_shape=shape, expected_weights=weights)


def test_group_normalization_values(cpu):
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float64)
    y = layers.GroupNormalization(groups=2, dtype="float64")(x)
    g = x.reshape(2, 5, 2, 2)
    mean, var = g.mean(axis=(1, 3), keepdims=True), g.var(axis=(1, 3), keepdims=True)
    np.testing.assert_allclose(y, ((g - mean) / np.sqrt(var + 1e-3)).reshape(x.shape),
                               rtol=1e-10)  # Keras: epsilon 1e-3 added to the variance
    assert layers.GroupNormalization().groups == 32
    with pytest.raises(ValueError, match="divisible"):
        layers.GroupNormalization(groups=3)(np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("axis,shape", [(-1, (3, 4)), ([1, 2], (2, 3, 2)), (1, (2, 3, 2))])
def test_unit_normalization(backend, axis, shape):
    check_layer(backend, layers.UnitNormalization, {"axis": axis}, input_shape=shape,
                expected_output_shape=shape, expected_num_params=0)


def test_unit_normalization_values(cpu):
    y = layers.UnitNormalization()(np.array([[3.0, 4.0], [0.0, 0.0]], np.float32))
    np.testing.assert_allclose(y, [[0.6, 0.8], [0.0, 0.0]], rtol=1e-6)


def test_new_layers_save_and_load(tmp_path):
    keras.utils.set_random_seed(0)
    a = keras.Input(shape=(6, 4))
    b = keras.Input(shape=(6, 4))
    ha = layers.PReLU(shared_axes=[1])(layers.GroupNormalization(groups=2)(a))
    hb = layers.Permute((2, 1))(layers.UnitNormalization()(b))
    d = layers.Dot(axes=(2, 1))([ha, hb])  # (6, 6)
    m = layers.Maximum()([d, layers.Minimum()([d, d])])
    out = layers.Dense(1)(layers.Flatten()(layers.RepeatVector(2)(layers.Flatten()(m))))
    model = keras.Model([a, b], out)
    model.compile(optimizer="adam", loss="mse")
    rng = np.random.default_rng(0)
    xa, xb = rng.normal(size=(10, 6, 4)), rng.normal(size=(10, 6, 4))
    model.fit([xa, xb], rng.normal(size=(10, 1)), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict([xa, xb], verbose=0),
                               model.predict([xa, xb], verbose=0), rtol=1e-6)
