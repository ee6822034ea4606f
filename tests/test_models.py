"""The graph engine: functional models with residual connections, shared layers, several
inputs and outputs, nesting, and whole-model gradient checks."""

import numpy as np
import pytest
from harness import check_gradients

from xpnet import keras
from xpnet import layers


def _residual_shared_model(backend):
    inp = keras.Input(shape=(4,))
    shared = layers.Dense(4, activation="tanh", name="shared", dtype="float64")
    h = layers.Dense(4, activation="gelu", dtype="float64")(inp)
    a = shared(h)
    b = shared(a)  # the same weights used twice
    res = layers.Add(dtype="float64")([h, b])  # residual: h fans out to two consumers
    cat = layers.Concatenate(dtype="float64")([res, inp])
    out = layers.Dense(3, activation="sigmoid", dtype="float64")(cat)
    return keras.Model(inp, out, backend=backend), shared


def test_residual_and_shared_layer_gradients(backend):
    model, shared = _residual_shared_model(backend)
    assert [la.name for la in model.layers].count("shared") == 1
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((5, 4))]
    r = rng.standard_normal((5, 3))
    leaves = [la for la in model.layers if la.params]
    check_gradients(backend, model, x, r, False, False, rng, holders=leaves)


def test_two_inputs_two_outputs(backend):
    a, b = keras.Input(shape=(3,), name="a"), keras.Input(shape=(2,), name="b")
    h = layers.Dense(4, activation="relu", dtype="float64")(layers.Concatenate(
        dtype="float64")([a, b]))
    y1 = layers.Dense(2, dtype="float64")(h)
    y2 = layers.Multiply(dtype="float64")([layers.Dense(2, dtype="float64")(h), y1])
    model = keras.Model([a, b], [y1, y2], backend=backend)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((3, 3)), rng.standard_normal((3, 2))]
    xp = backend.xp
    outs, ctx = model.forward([backend.asarray(v, dtype=xp.float64) for v in xs])
    assert [tuple(o.shape) for o in outs] == [(3, 2), (3, 2)]
    # gradient of sum(y1 * r1) + sum(y2 * r2) through both heads
    r1, r2 = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    leaves = [la for la in model.layers if la.params]

    class Both:  # view the two-output model as one output for the harness
        name = "two_outputs"

        def forward(self, x, training=False):
            (o1, o2), c = model.forward(x, training)
            return xp.concat([o1, o2], axis=1), c

        def backward(self, c, dy):
            return model.backward(c, [dy[:, :2], dy[:, 2:]])

    check_gradients(backend, Both(), xs, np.concatenate([r1, r2], 1), True, False, rng,
                    holders=leaves)


def test_nested_models_and_input_gradient(backend):
    inner = keras.Sequential([layers.Dense(3, activation="elu", input_shape=(2,),
                                           dtype="float64")], backend=backend)
    inp = keras.Input(shape=(2,))
    out = layers.Dense(1, dtype="float64")(inner(inp))
    outer = keras.Model(inp, out, backend=backend)
    rng = np.random.default_rng(2)
    leaves = [inner.layers[0], outer.layers[-1]]
    check_gradients(backend, outer, [rng.standard_normal((4, 2))], rng.standard_normal((4, 1)),
                    False, False, rng, holders=leaves)
    assert outer.count_params() == 3 * 2 + 3 + 3 + 1


def test_disconnected_input_is_an_error():
    a, b = keras.Input(shape=(2,)), keras.Input(shape=(2,))
    out = layers.Dense(1)(b)
    with pytest.raises(ValueError, match="not among the model's inputs"):
        keras.Model(a, out, backend="cpu")


def test_layers_summary_and_weights(capsys):
    model, _ = _residual_shared_model("cpu")
    model.summary()
    text = capsys.readouterr().out
    assert "shared (Dense)" in text and f"Total params: {model.count_params():,}" in text
    weights = model.get_weights()
    assert [w.shape for w in weights][:2] == [(4, 4), (4,)]  # kernel then bias, as Keras
    model.set_weights([w * 0 for w in weights])
    assert all(np.all(w == 0) for w in model.get_weights())
    with pytest.raises(ValueError, match="set_weights expects"):
        model.set_weights(weights[:-1])
    bad = list(weights)
    bad[-1] = np.zeros(7)
    with pytest.raises(ValueError, match=r"has shape \(3,\), got \(7,\)"):
        model.set_weights(bad)
    assert all(np.all(w == 0) for w in model.get_weights())  # nothing half-written


def test_sequential_builds_from_input_or_data():
    m = keras.Sequential([keras.Input(shape=(5,)), layers.Dense(2)], backend="cpu")
    assert m.layers[0].params["kernel"].shape == (5, 2)
    lazy = keras.Sequential([layers.Dense(2), layers.Dense(1)], backend="cpu")
    with pytest.raises(ValueError, match="needs the input shape"):
        lazy.summary()
    out = lazy.predict(np.ones((3, 7), np.float32), verbose=0)
    assert out.shape == (3, 1) and lazy.layers[0].params["kernel"].shape == (7, 2)
    m.add(layers.Dense(4))
    assert m.predict(np.ones((2, 5), np.float32)).shape == (2, 4)
    assert m.pop().units == 4


def test_trainable_flags():
    inner = keras.Sequential([layers.Dense(3, input_shape=(2,))], backend="cpu")
    inner.trainable = False
    assert inner.layers[0].trainable is False and inner.trainable_weights == []
    inp = keras.Input(shape=(2,))
    outer = keras.Model(inp, layers.Dense(1)(inner(inp)), backend="cpu")
    assert len(outer.trainable_weights) == 2 and len(outer.non_trainable_weights) == 2
