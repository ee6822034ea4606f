"""BatchNormalization and LayerNormalization: the harness in training and inference modes
for dense, channels-last and channels-first inputs, the moving averages, Keras's weights
and defaults, and training inside a model."""

import numpy as np
import pytest
from harness import check_gradients
from harness import check_layer

from xpnet import keras
from xpnet import layers


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("kwargs,shape,pshape", [
    ({}, (6, 3), (3,)),
    ({"axis": 1}, (3, 2, 4), (2,)),  # channels first
    ({"axis": -1}, (2, 3, 3, 2), (2,)),  # channels last, 2-D maps
    ({"center": False}, (5, 3), (3,)),
    ({"scale": False, "axis": [1, 2]}, (4, 2, 3), (2, 3)),
], ids=["dense", "channels_first", "channels_last", "no_center", "two_axes"])
def test_batch_norm_harness(backend, kwargs, shape, pshape, training):
    layer = check_layer(backend, layers.BatchNormalization, kwargs, input_shape=shape,
                        expected_output_shape=shape, training=training)
    names = layer.weight_names()
    assert names[-2:] == ["moving_mean", "moving_variance"]
    assert all(tuple(layer.params[k].shape) == pshape for k in names)


def test_batch_norm_inference_with_moving_statistics(backend):
    """Inference uses the moving averages: check the gradients away from (0, 1)."""
    layer = layers.BatchNormalization(dtype="float64")
    layer.build_on(backend, (None, 4))
    rng = np.random.default_rng(0)
    xp = backend.xp
    for name, value in [("moving_mean", rng.standard_normal(4)),
                        ("moving_variance", rng.uniform(0.5, 2.0, 4)),
                        ("gamma", rng.standard_normal(4)), ("beta", rng.standard_normal(4))]:
        layer.params[name][...] = backend.asarray(value, dtype=xp.float64)
    x = rng.standard_normal((5, 4))
    check_gradients(backend, layer, [x], rng.standard_normal((5, 4)), False, False, rng)
    p = {k: backend.to_numpy(v) for k, v in layer.params.items()}
    want = (x - p["moving_mean"]) / np.sqrt(p["moving_variance"] + 1e-3) * p["gamma"] + \
        p["beta"]
    y, _ = layer.forward(backend.asarray(x, dtype=xp.float64))
    np.testing.assert_allclose(backend.to_numpy(y), want, rtol=1e-12)


def test_batch_norm_moving_averages_and_normalisation(backend):
    layer = layers.BatchNormalization(momentum=0.9, axis=1)
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((8, 3, 2, 2)) * 3 + 2).astype(np.float32)
    y = backend.to_numpy(layer(backend.asarray(x), training=True))
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))  # biased variance, as Keras
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), var / (var + 1e-3), rtol=1e-4)
    mm, mv = layer.get_weights()[2:]
    np.testing.assert_allclose(mm, 0.1 * mean, rtol=1e-5)
    np.testing.assert_allclose(mv, 0.9 + 0.1 * var, rtol=1e-5)
    before = layer.get_weights()
    layer(backend.asarray(x), training=False)  # inference leaves the averages alone
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)
    layer.trainable = False  # a frozen layer runs in inference mode, as Keras 3
    frozen = backend.to_numpy(layer(backend.asarray(x), training=True))
    infer = backend.to_numpy(layer(backend.asarray(x), training=False))
    np.testing.assert_array_equal(frozen, infer)


def test_batch_norm_keras_defaults_and_errors():
    bn = layers.BatchNormalization()
    assert (bn.momentum, bn.epsilon, bn.axis, bn.center, bn.scale) == \
        (0.99, 1e-3, [-1], True, True)
    assert layers.LayerNormalization().epsilon == 1e-3
    model = keras.Sequential([keras.Input(shape=(5,)), bn], backend="cpu")
    assert [w.shape for w in model.get_weights()] == [(5,)] * 4
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    with pytest.raises(ValueError, match=r"axis=\[3\] is not a feature axis"):
        layers.BatchNormalization(axis=3)(keras.Input(shape=(4,)))
    with pytest.raises(ValueError, match="momentum must be in"):
        layers.BatchNormalization(momentum=2.0)
    with pytest.raises(ValueError, match=r"built for feature shape \(5,\)"):
        bn(keras.Input(shape=(6,)))


@pytest.mark.parametrize("kwargs,shape,pshape", [
    ({}, (4, 5), (5,)),
    ({"axis": [1, 2]}, (3, 2, 3), (2, 3)),
    ({"axis": 1, "center": False}, (3, 4, 2), (4,)),
    ({"scale": False}, (2, 3, 4), (4,)),
], ids=["dense", "two_axes", "axis1", "no_scale"])
def test_layer_norm_harness(backend, kwargs, shape, pshape):
    layer = check_layer(backend, layers.LayerNormalization, kwargs, input_shape=shape,
                        expected_output_shape=shape)
    assert all(tuple(w.shape) == pshape for w in layer.weights)


def test_layer_norm_values(cpu):
    layer = layers.LayerNormalization(dtype="float64")
    layer.build_on(cpu, (None, 6))
    rng = np.random.default_rng(2)
    layer.set_weights([rng.standard_normal(6), rng.standard_normal(6)])
    x = rng.standard_normal((4, 6)) * 5
    gamma, beta = layer.get_weights()
    want = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-3)
    np.testing.assert_allclose(layer(x), want * gamma + beta, rtol=1e-12)
    np.testing.assert_array_equal(layer(x, training=True), layer(x))


def test_batch_norm_and_dropout_in_fit(backend):
    """A model with both trains, updates the moving statistics during fit only, and
    evaluates in inference mode (deterministic)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 6)).astype(np.float32) * 2 + 1
    y = (x[:, 0] + x[:, 1] > 2).astype(np.int64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(6,)), layers.Dense(16, activation="relu"),
        layers.BatchNormalization(), layers.Dropout(0.2), layers.Dense(2, activation="softmax"),
    ], backend=backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    h = model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    mm = model.layers[1].get_weights()[2]
    assert np.all(np.isfinite(mm)) and np.any(mm != 0)
    a = model.evaluate(x, y, verbose=0)
    assert a == model.evaluate(x, y, verbose=0)
    np.testing.assert_array_equal(model.layers[1].get_weights()[2], mm)


def test_model_gradients_in_training_mode(backend):
    """A whole model with BatchNormalization and Dropout in training mode: the harness
    replays the model's random state, so every forward pass of the check sees one mask."""
    from harness import check_gradients

    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(4,))
    h = layers.Dense(5, activation="tanh", dtype="float64")(inp)
    h = layers.BatchNormalization(dtype="float64")(h)
    h = layers.Dropout(0.4, dtype="float64")(h)
    out = layers.Dense(2, dtype="float64")(layers.LayerNormalization(dtype="float64")(h))
    model = keras.Model(inp, out, backend=backend)
    rng = np.random.default_rng(0)
    leaves = [la for la in model.layers if la.grads]
    check_gradients(backend, model, [rng.standard_normal((6, 4))],
                    rng.standard_normal((6, 2)), False, True, rng, holders=leaves)
