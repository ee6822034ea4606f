"""Dropout, its spatial forms, Gaussian noise and dropout, ActivityRegularization and
activity regularizers: the harness in training and inference modes, mask statistics,
seeding, and the penalty in a model's loss and gradients."""

import numpy as np
import pytest
from harness import assert_grad_close
from harness import check_layer
from harness import numerical_grad

from xpnet import keras
from xpnet import layers
from xpnet import regularizers


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
@pytest.mark.parametrize("cls,kwargs,shape", [
    (layers.Dropout, {"rate": 0.4}, (4, 5)),
    (layers.Dropout, {"rate": 0.5, "noise_shape": (None, 1, 3)}, (2, 4, 3)),
    (layers.SpatialDropout1D, {"rate": 0.5}, (3, 4, 2)),
    (layers.SpatialDropout2D, {"rate": 0.5}, (2, 3, 3, 2)),
    (layers.SpatialDropout2D, {"rate": 0.5, "data_format": "channels_first"}, (2, 2, 3, 3)),
    (layers.GaussianNoise, {"stddev": 0.7}, (4, 5)),
    (layers.GaussianDropout, {"rate": 0.3}, (4, 5)),
    (layers.ActivityRegularization, {"l1": 0.1, "l2": 0.2}, (3, 4)),
], ids=["dropout", "noise_shape", "spatial1d", "spatial2d", "spatial2d_cf", "noise",
        "gaussian_dropout", "activity"])
def test_harness(backend, cls, kwargs, shape, training):
    check_layer(backend, cls, {**kwargs, "seed": 3} if cls is not layers.ActivityRegularization
                else kwargs, input_shape=shape, expected_output_shape=shape,
                expected_num_params=0, training=training)


def test_dropout_mask_statistics_and_inference(backend):
    layer = layers.Dropout(0.25, seed=1)
    xp = backend.xp
    x = xp.ones((200, 100), dtype=xp.float32, device=backend.device)
    y = backend.to_numpy(layer(x, training=True))
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02  # 20,000 draws: 4 standard errors
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)  # inverted: mean stays 1
    assert np.array_equal(backend.to_numpy(layer(x, training=False)), backend.to_numpy(x))
    y2 = backend.to_numpy(layer(x, training=True))
    assert not np.array_equal(y, y2)  # a new mask every step
    dy = xp.ones((200, 100), dtype=xp.float32, device=backend.device) * 2.0
    _, mask = layer.forward(x, training=True)
    np.testing.assert_array_equal(backend.to_numpy(layer.backward(mask, dy)),
                                  2.0 * backend.to_numpy(mask))


def test_spatial_dropout_drops_whole_channels(cpu):
    x = np.ones((8, 5, 5, 6), np.float32)
    y = layers.SpatialDropout2D(0.5, seed=0)(x, training=True)
    per_map = y.reshape(8, 25, 6)
    assert np.all((per_map == per_map[:, :1, :]))  # one value per (sample, channel)
    assert 0 < (per_map[:, 0, :] == 0).mean() < 1


def test_gaussian_noise_statistics(cpu):
    x = np.zeros((400, 50), np.float32)
    y = layers.GaussianNoise(0.3, seed=0)(x, training=True)
    assert abs(y.std() - 0.3) < 0.01 and abs(y.mean()) < 0.01
    assert np.array_equal(layers.GaussianNoise(0.3)(x), x)
    g = layers.GaussianDropout(0.2, seed=0)(np.ones_like(x), training=True)
    assert abs(g.mean() - 1.0) < 0.01 and abs(g.std() - (0.2 / 0.8) ** 0.5) < 0.01


def test_seeds_repeat(cpu):
    x = np.ones((16, 16), np.float32)
    a = layers.Dropout(0.5, seed=7)(x, training=True)
    b = layers.Dropout(0.5, seed=7)(x, training=True)
    assert np.array_equal(a, b)
    keras.utils.set_random_seed(5)
    c = layers.Dropout(0.5)(x, training=True)
    keras.utils.set_random_seed(5)
    d = layers.Dropout(0.5)(x, training=True)
    assert np.array_equal(c, d) and not np.array_equal(a, c)


def test_rng_state_round_trip(backend):
    layer = layers.Dropout(0.5, seed=2)
    xp = backend.xp
    x = xp.ones((10, 10), dtype=xp.float32, device=backend.device)
    layer(x, training=True)
    state = layer.get_rng_state()
    a = backend.to_numpy(layer(x, training=True))
    layer.set_rng_state(state)
    assert np.array_equal(backend.to_numpy(layer(x, training=True)), a)


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"rate must be a float in \[0, 1\], got rate=1.5"):
        layers.Dropout(1.5)
    with pytest.raises(ValueError, match="stddev must be a float >= 0"):
        layers.GaussianNoise(-1.0)
    with pytest.raises(TypeError, match="seed must be an int"):
        layers.Dropout(0.5, seed="x")
    with pytest.raises(ValueError, match="expects inputs of rank 4"):
        layers.SpatialDropout2D(0.5)(keras.Input(shape=(3, 4)))
    with pytest.raises(ValueError, match="noise_shape"):
        layers.Dropout(0.5, noise_shape=(None, 1))(keras.Input(shape=(3, 4)))


def test_rate_one_drops_everything(cpu):
    assert np.all(layers.Dropout(1.0, seed=0)(np.ones((3, 3), np.float32), training=True) == 0)


def _act_model(backend, reg, dtype="float64"):
    inp = keras.Input(shape=(3,))
    h = layers.Dense(4, activation="tanh", activity_regularizer=reg, dtype=dtype)(inp)
    out = layers.Dense(2, dtype=dtype)(h)
    return keras.Model(inp, out, backend=backend)


@pytest.mark.parametrize("reg", [regularizers.L2(0.3), regularizers.L1L2(0.2, 0.1)],
                         ids=["l2", "l1_l2"])
def test_activity_regularizer_gradients(backend, reg):
    """backward adds the penalty's gradient: d/dtheta [sum(out * r) + penalty]."""
    model = _act_model(backend, reg)
    xp = backend.xp
    rng = np.random.default_rng(0)
    x = backend.asarray(rng.standard_normal((5, 3)), dtype=xp.float64)
    r = backend.asarray(rng.standard_normal((5, 2)), dtype=xp.float64)

    def objective():
        out, ctx = model.forward(x)
        return float(xp.sum(out * r) + model.activity_penalty(ctx))

    model.zero_grads()
    _, ctx = model.forward(x)
    model.backward(ctx, r)
    for layer in model.layers[1:]:
        for name, g in layer.grads.items():
            p0 = backend.to_numpy(layer.params[name]).copy()

            def f(p, layer=layer, name=name):
                layer.params[name][...] = backend.asarray(p, dtype=xp.float64)
                return objective()
            dirs, derivs = numerical_grad(f, p0, rng)
            layer.params[name][...] = backend.asarray(p0, dtype=xp.float64)
            assert_grad_close(backend.to_numpy(g), dirs, derivs, f"{layer.name}.{name}")


def test_activity_penalty_in_reported_loss(cpu):
    """Keras 3 adds ``reg(output)``, not divided by the batch size, to the loss."""
    keras.utils.set_random_seed(0)
    model = _act_model("cpu", regularizers.L2(0.05), dtype="float32")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 3)).astype(np.float32)
    y = rng.standard_normal((16, 2)).astype(np.float32)
    k1, b1, k2, b2 = model.get_weights()
    h = np.tanh(x @ k1 + b1)
    want = np.mean((h @ k2 + b2 - y) ** 2) + 0.05 * np.sum(h * h)
    assert np.isclose(model.evaluate(x, y, batch_size=16, verbose=0), want, rtol=1e-5)
    assert np.isclose(model.train_on_batch(x, y), want, rtol=1e-5)
    clone = layers.Dense.from_config(model.layers[1].get_config())
    assert isinstance(clone.activity_regularizer, regularizers.L2)


def test_activity_regularization_layer_in_fit(cpu):
    """The penalty pulls activations towards zero: the same net with a strong penalty ends
    with smaller hidden activations."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = rng.standard_normal((64, 1)).astype(np.float32)
    norms = []
    for l2 in (0.0, 0.05):
        keras.utils.set_random_seed(0)
        inp = keras.Input(shape=(3,))
        h = layers.Dense(8, activation="relu")(inp)
        h = layers.ActivityRegularization(l2=l2)(h)
        model = keras.Model(inp, layers.Dense(1)(h), backend="cpu")
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
        model.fit(x, y, epochs=10, verbose=0)
        hidden = keras.Model(inp, h, backend="cpu").predict(x, verbose=0)
        norms.append(float((hidden ** 2).sum()))
    assert norms[1] < 0.5 * norms[0], norms


def test_set_random_seed_repeats_whole_runs_with_dropout(cpu):
    """Initial weights, shuffling and every dropout mask come from the global seed."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    runs = []
    for seed in (11, 11, 12):
        keras.utils.set_random_seed(seed)
        model = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(16, activation="relu"),
                                  layers.Dropout(0.5), layers.GaussianNoise(0.1),
                                  layers.Dense(2, activation="softmax")], backend="cpu")
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(runs[0], runs[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][0], runs[2][0])
