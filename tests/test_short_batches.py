"""Issue 10 point 16: on array-api-strict, a last batch shorter than the others stays in
bounds in fit (shuffled and not), validation, evaluate and predict."""

import numpy as np
import pytest

from xpnet import keras


def _model(backend):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(8, activation="relu", input_shape=(5,)),
                              keras.layers.Dense(3, activation="softmax")], backend=backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("shuffle", [True, False])
def test_short_last_batch(backend, shuffle):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((70, 5)).astype(np.float32)  # 70 = 2 * 32 + 6
    y = rng.integers(0, 3, 70)
    model = _model(backend)
    h = model.fit(x, y, epochs=2, batch_size=32, shuffle=shuffle, verbose=0,
                  validation_split=0.3)  # 49 training and 21 validation samples
    assert len(h.history["val_loss"]) == 2
    loss, acc = model.evaluate(x, y, batch_size=32, verbose=0)
    pred = model.predict(x, batch_size=32, verbose=0)
    assert pred.shape == (70, 3)
    expected = np.mean(np.argmax(pred, 1) == y)
    assert np.isclose(acc, expected)
