"""Training arguments and data that used to be accepted silently (issue 11, points 6-9):
sizes, class weights, input dtypes and Python lists, and cross-entropy on an all-zero row."""

import math

import numpy as np
import pytest

from xpnet import keras
from xpnet import layers
from xpnet import losses


def _model(units=10, activation="softmax", loss="sparse_categorical_crossentropy"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(units,
                                                                    activation=activation)],
                             backend="cpu")
    model.compile(optimizer="sgd", loss=loss, metrics=["accuracy"])
    return model


def _data(n=20, classes=10):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype(np.float32), rng.integers(0, classes, n)


# -- 6. sizes --------------------------------------------------------------------------------
@pytest.mark.parametrize("name,value", [
    ("batch_size", -1), ("batch_size", 0), ("batch_size", 16.5), ("batch_size", True),
    ("batch_size", "32"), ("steps_per_epoch", -3), ("steps_per_epoch", 0),
    ("epochs", 2.5), ("epochs", 0), ("epochs", None), ("validation_steps", 0),
    ("validation_batch_size", -2), ("validation_freq", 0), ("initial_epoch", -1)])
def test_fit_refuses_bad_sizes(name, value):
    model = _model()
    x, y = _data()
    before = model.get_weights()
    with pytest.raises(ValueError, match=rf"{name}.*Received: {name}={value!r}"):
        model.fit(x, y, verbose=0, **{name: value})
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_and_predict_refuse_bad_batch_sizes():
    model = _model()
    x, y = _data()
    for bad in (-1, 0, 2.0, False):
        with pytest.raises(ValueError, match="batch_size"):
            model.evaluate(x, y, batch_size=bad, verbose=0)
        with pytest.raises(ValueError, match="batch_size"):
            model.predict(x, batch_size=bad, verbose=0)


def test_good_sizes_still_work():
    model = _model()
    x, y = _data()
    h = model.fit(x, y, batch_size=np.int64(8), epochs=np.int32(2), steps_per_epoch=2,
                  verbose=0, validation_data=(x, y), validation_steps=1,
                  validation_batch_size=5)
    assert len(h.history["loss"]) == 2 and len(h.history["val_loss"]) == 2
    # validation_steps=1 with batches of 5: the validation loss is that of the first 5
    first5 = model.evaluate(x[:5], y[:5], verbose=0, return_dict=True)["loss"]
    h = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y), validation_steps=1,
                  validation_batch_size=5, shuffle=False, batch_size=20)
    after = model.evaluate(x[:5], y[:5], verbose=0, return_dict=True)["loss"]
    assert h.history["val_loss"][0] == pytest.approx(after)
    assert after != first5  # the model trained in between
    assert isinstance(model.evaluate(x, y, batch_size=None, verbose=0), list)


# -- 7. class_weight -----------------------------------------------------------------------
@pytest.mark.parametrize("class_weight,message", [
    ({99: 1.0}, r"class 99.*10 classes"),
    ({-1: 1.0}, r"class -1"),
    ({0: -1.0, 1: -1.0}, r"class_weight\[0\].*>= 0"),
    ({0: float("nan")}, r"finite"),
    ({"0": 1.0}, r"int class indices.*'0'"),
    ([1.0, 2.0], r"must be a dict.*list"),
    ({0: 0.0, 1: 0.0}, r"every class_weight is 0"),
    ({True: 1.0}, r"int class indices"),
])
def test_class_weight_is_checked(class_weight, message):
    model = _model()
    x, y = _data()
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, verbose=0, class_weight=class_weight)
    with pytest.raises(ValueError, match=message):
        model.train_on_batch(x, y, class_weight=class_weight)


def test_class_weight_binary_and_good_weights():
    model = _model(units=1, activation="sigmoid", loss="binary_crossentropy")
    x, _ = _data()
    y = (x[:, 0] > 0).astype(np.float32)[:, None]
    model.fit(x, y, verbose=0, class_weight={0: 1.0, 1: 3.0})
    with pytest.raises(ValueError, match=r"class 2.*2 classes"):
        model.fit(x, y, verbose=0, class_weight={2: 1.0})
    model = _model()
    model.fit(*_data(), verbose=0, class_weight={np.int64(3): 2.0, 0: 0.0})


# -- 8. input data ----------------------------------------------------------------------------
def test_input_dtypes_and_python_lists():
    model = _model()
    x, y = _data()
    cases = [
        (x + 1j * x, r"argument x has dtype complex64: complex numbers"),
        (x.astype(str), r"argument x has dtype <U\d+: strings"),
        (np.array([["a", "b", "c", "d"]] * 20), r"dtype <U1: strings"),
        (np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]] + [[0.0] * 4] * 18, dtype=object),
         r"dtype object: Python objects \(a ragged"),
        (x.tolist(), r"argument x is a Python list of 20 element\(s\), not of arrays"),
    ]
    for bad, message in cases:
        for call in (lambda bad=bad: model.fit(bad, y, verbose=0),
                     lambda bad=bad: model.evaluate(bad, y, verbose=0),
                     lambda bad=bad: model.predict(bad, verbose=0),
                     lambda bad=bad: model.train_on_batch(bad, y)):
            with pytest.raises(ValueError, match=message):
                call()
    model.fit(x > 0, y, verbose=0)  # booleans and ints are numbers
    model.fit(x.astype(np.int32), y, verbose=0)
    model.fit([x], y, verbose=0)  # one array in a list: one input


# -- 9. categorical cross-entropy on an all-zero row ----------------------------------------
def test_categorical_crossentropy_of_an_all_zero_row_is_finite(backend):
    """Keras 3 normalises by the row sum, then clips to [1e-7, 1 - 1e-7] (keras/src/
    backend/numpy/nn.py). A true class of probability 0 costs -log(1e-7) = 16.118095 there
    (target [1, 0], prediction [0, 1]). An all-zero row is 0/0 in Keras's division (NaN,
    which np.clip passes through); xpnet divides such a row by 1, so it is clipped as a zero
    probability is: 16.118095 per unit of target, and a zero gradient."""
    xp = backend.xp
    t = backend.asarray(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32))
    p = backend.asarray(np.array([[0.0, 1.0], [0.0, 0.0], [0.3, 0.7]], np.float32))
    loss = losses.CategoricalCrossentropy(reduction="none")
    values = backend.to_numpy(loss(t, p))
    keras_zero_probability = -math.log(1e-7)
    assert keras_zero_probability == pytest.approx(16.118095, abs=1e-6)
    np.testing.assert_allclose(values, [keras_zero_probability, keras_zero_probability,
                                        -math.log(0.7)], rtol=1e-6)
    _, grad = losses.CategoricalCrossentropy().value_and_grad(t, p)
    assert np.all(np.isfinite(backend.to_numpy(grad)))
    sparse = losses.SparseCategoricalCrossentropy(reduction="none")
    labels = backend.asarray(np.array([0, 0, 1], np.int64))
    np.testing.assert_allclose(backend.to_numpy(sparse(labels, p)), values, rtol=1e-6)
    assert xp is backend.xp


def test_strict_backend_fit_with_a_partial_batch_and_validation_steps():
    """validation_steps slices the validation arrays: on array-api-strict (no NumPy calls
    allowed on its device, out-of-bounds slices refused), 37 validation samples in batches
    of 5 (a partial last batch), and steps that ask for more batches than there are."""
    from conftest import make_backend

    strict = make_backend("strict")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(3, activation="softmax")],
                             backend=strict)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _data(n=40, classes=3)
    vx, vy = x[:37], y[:37]
    h = model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(vx, vy),
                  validation_steps=2, validation_batch_size=5)
    first10 = model.evaluate(vx[:10], vy[:10], batch_size=5, verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(first10, rel=1e-5)
    h = model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(vx, vy),
                  validation_steps=9, validation_batch_size=5)  # 45 > 37: all of them
    everything = model.evaluate(vx, vy, batch_size=5, verbose=0)
    assert h.history["val_loss"][-1] == pytest.approx(everything, rel=1e-5)
