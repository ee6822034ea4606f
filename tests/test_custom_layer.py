"""The README's custom layer: written with array-API calls only, it passes the harness on
every backend and trains inside a model."""

import numpy as np
from harness import check_layer

import xpnet
from xpnet import keras


class Scale(keras.layers.Layer):
    def build(self, input_shape):
        self.add_weight(name="gamma", shape=(input_shape[-1],), initializer="ones")

    def forward(self, x, training=False):
        return x * self.params["gamma"], x

    def backward(self, x, dy):
        xp = xpnet.backend.namespace(x, dy)
        self.grads["gamma"] += xp.sum(xp.reshape(dy * x, (-1, x.shape[-1])), axis=0)
        return dy * self.params["gamma"]


def test_custom_layer_contract(backend):
    check_layer(backend, Scale, {}, input_shape=(3, 4), expected_output_shape=(3, 4),
                expected_weights={"gamma": (4,)})


def test_custom_layer_trains():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    model = keras.Sequential([keras.Input(shape=(3,)), Scale()], backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    model.fit(x, x * np.array([2.0, -1.0, 0.5], np.float32), epochs=100, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], [2.0, -1.0, 0.5], atol=1e-3)
