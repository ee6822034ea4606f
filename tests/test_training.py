"""fit / evaluate / predict / *_on_batch end to end, determinism, and bad input."""

import numpy as np
import pytest

from xpnet import keras
from xpnet import layers


def _digits():
    (x, y), (xt, yt) = keras.datasets.load_digits()
    return (x.reshape(-1, 64) / 16.0, y), (xt.reshape(-1, 64) / 16.0, yt)


def _classic(backend="cpu", width=64, n_in=64, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.layers.Dense(64, activation="relu", input_shape=(n_in,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], backend=backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


@pytest.mark.slow
def test_classic_example_learns_digits():
    (x, y), (xt, yt) = _digits()
    model = _classic()
    history = model.fit(x, y, epochs=20, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    loss, acc = model.evaluate(xt, yt, verbose=0)
    assert acc >= 0.95, acc
    pred = model.predict(xt, verbose=0)
    assert pred.shape == (len(xt), 10) and isinstance(pred, np.ndarray)
    np.testing.assert_allclose(pred.sum(1), 1.0, rtol=1e-5)
    assert np.isclose((pred.argmax(1) == yt).mean(), acc)


def test_same_seed_same_weights():
    (x, y), _ = _digits()
    runs = []
    for _ in range(2):
        model = _classic(seed=123)
        model.fit(x[:300], y[:300], epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = _classic(seed=124)
    assert not np.array_equal(other.get_weights()[0], runs[0][0])


def test_strict_backend_trains(backend):
    (x, y), _ = _digits()
    model = _classic(backend=backend)
    history = model.fit(x[:250], y[:250], epochs=3, batch_size=64, verbose=0)  # 250 % 64 != 0
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_fit_options_and_history():
    (x, y), (xt, yt) = _digits()
    model = _classic()
    h = model.fit(x[:400], y[:400], epochs=2, validation_split=0.25, verbose=0,
                  shuffle=False)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(h.history["loss"]) == 2 and h.epoch == [0, 1]
    h = model.fit(x[:200], y[:200], validation_data=(xt, yt), epochs=1, verbose=0,
                  steps_per_epoch=3)
    assert "val_accuracy" in h.history
    logs = model.evaluate(xt, yt, return_dict=True, verbose=0)
    assert set(logs) == {"loss", "accuracy"}


def test_on_batch_methods():
    (x, y), _ = _digits()
    model = _classic()
    first = model.train_on_batch(x[:32], y[:32])
    assert isinstance(first, list) and len(first) == 2
    for _ in range(30):
        loss, acc = model.train_on_batch(x[:32], y[:32])
    assert loss < first[0]
    test_loss, _ = model.test_on_batch(x[:32], y[:32])
    assert np.isclose(test_loss, model.evaluate(x[:32], y[:32], verbose=0)[0], rtol=1e-5)
    assert model.predict_on_batch(x[:5]).shape == (5, 10)


def test_fused_head_reports_the_keras_loss():
    """The softmax head trains on logits; the loss it reports is the probability loss."""
    (x, y), _ = _digits()
    model = _classic()
    model.fit(x[:64], y[:64], epochs=1, verbose=0)
    p = np.clip(model.predict(x[:64], verbose=0), 1e-7, 1 - 1e-7)
    want = -np.log(p[np.arange(64), y[:64]]).mean()
    assert np.isclose(model.evaluate(x[:64], y[:64], verbose=0)[0], want, rtol=1e-4)


def test_regression_and_binary_heads():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    keras.utils.set_random_seed(0)
    reg = keras.Sequential([layers.Dense(1, input_shape=(3,))], backend="cpu")
    reg.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    reg.fit(x, y, epochs=30, verbose=0)
    assert reg.evaluate(x, y, verbose=0)[0] < 1e-3
    labels = (x[:, :1] > 0).astype(np.float32)
    clf = keras.Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))],
                           backend="cpu")
    clf.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy",
                metrics=["accuracy"])
    clf.fit(x, labels, epochs=40, verbose=0)
    assert clf.evaluate(x, labels, verbose=0)[1] > 0.95


def test_multi_output_training():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    inp = keras.Input(shape=(4,))
    h = layers.Dense(16, activation="relu")(inp)
    out_a = layers.Dense(1, name="reg")(h)
    out_b = layers.Dense(3, activation="softmax", name="cls")(h)
    model = keras.Model(inp, [out_a, out_b], backend="cpu")
    model.compile(optimizer="adam", loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[1.0, 0.5], metrics=[[], ["accuracy"]])
    ya, yb = x.sum(1, keepdims=True), (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)
    h = model.fit(x, [ya, yb], epochs=5, verbose=0)
    assert {"loss", "reg_loss", "cls_loss", "cls_accuracy"} <= set(h.history)
    assert h.history["loss"][-1] < h.history["loss"][0]
    # Keras reports each output's loss before its loss weight: loss = reg + 0.5 * cls
    assert np.isclose(h.history["loss"][-1], h.history["reg_loss"][-1] +
                      0.5 * h.history["cls_loss"][-1], rtol=1e-4)


def test_bad_input_is_named():
    (x, y), _ = _digits()
    model = _classic()
    with pytest.raises(ValueError, match=r"expects shape \(None, 64\), got data of shape "
                                         r"\(10, 63\)"):
        model.fit(x[:10, :63], y[:10], verbose=0)
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 10\)"):
        model.fit(x[:10], y[:10] + 5, verbose=0)
    with pytest.raises(ValueError, match="empty input data"):
        model.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="10 input samples but 9 targets"):
        model.fit(x[:10], y[:9], verbose=0)
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        model.compile(optimizer="adamx", loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'mse2'"):
        model.compile(optimizer="adam", loss="mse2")
    with pytest.raises(ValueError, match="unknown metric 'acuracy'"):
        model.compile(optimizer="adam", loss="mse", metrics=["acuracy"])
    fresh = keras.Sequential([layers.Dense(1, input_shape=(2,))], backend="cpu")
    with pytest.raises(RuntimeError, match="call compile"):
        fresh.fit(np.zeros((2, 2)), np.zeros((2, 1)), verbose=0)


def test_progress_bar_prints(capsys):
    (x, y), _ = _digits()
    model = _classic()
    model.fit(x[:64], y[:64], epochs=2, batch_size=32, verbose=2)
    out = capsys.readouterr().out  # Keras 3 prints "Epoch i/n" only when n > 1
    assert "Epoch 1/2" in out and "2/2" in out and "accuracy:" in out
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=1)
    captured = capsys.readouterr()
    assert "2/2" in captured.err + captured.out
