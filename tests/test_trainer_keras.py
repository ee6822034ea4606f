"""Keras 3 fidelity of the trainer (issue 10, points 1, 2, 3, 5, 6, 7, 13 and per-class
metrics in logs): each test writes down the figure Keras 3 gives, from its documented
formula or behaviour, and checks xpnet against it."""

import math
import re

import numpy as np
import pytest

from xpnet import callbacks
from xpnet import keras
from xpnet import layers
from xpnet import metrics
from xpnet.engine.data_feed import PyDataset
from xpnet.progbar import format_time

# A one-unit sigmoid model with kernel 1, bias 0: p = sigmoid(x), predicted class x > 0.
X = np.array([[-2.0], [-1.0], [1.0], [2.0], [-3.0], [3.0], [0.5], [-0.5]], np.float32)
Y = np.array([[0], [1], [1], [0], [0], [1], [1], [1]], np.float32)
W = np.array([1, 2, 3, 4, 1, 1, 2, 2], np.float32)
# correct = [1, 0, 1, 0, 1, 1, 1, 0]
ACC = 5 / 8                  # metrics=: unweighted, whatever the weights
ACC_W = (1 + 3 + 1 + 1 + 2) / 16  # weighted_metrics= with sample_weight W: 0.5
ACC_CW = (2 * 1 + 3 * 4) / (3 * 1 + 5 * 4)  # class_weight {0: 1, 1: 4}: 14/23


def _sigmoid_model(**compile_kwargs):
    model = keras.Sequential([keras.Input(shape=(1,)), layers.Dense(1, activation="sigmoid")],
                             backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0),
                  loss="binary_crossentropy", **compile_kwargs)
    model.set_weights([np.ones((1, 1), np.float32), np.zeros((1,), np.float32)])
    return model


def _bce(w=None):
    p = 1 / (1 + np.exp(-X.astype(np.float64)))
    losses = -(Y * np.log(p) + (1 - Y) * np.log(1 - p))[:, 0]
    return float(np.mean(losses if w is None else losses * w))  # sum_over_batch_size


def test_metrics_unweighted_weighted_metrics_weighted():
    model = _sigmoid_model(metrics=["accuracy"], weighted_metrics=["accuracy"])
    assert model.metrics_names == ["loss", "accuracy", "weighted_accuracy"]
    loss, acc, wacc = model.evaluate(X, Y, sample_weight=W, verbose=0)
    assert acc == pytest.approx(0.625) and acc == pytest.approx(ACC)
    assert wacc == pytest.approx(0.5) and wacc == pytest.approx(ACC_W)
    assert loss == pytest.approx(_bce(W), rel=1e-5)  # the loss is weighted
    # class_weight weighs only weighted_metrics (and the loss)
    h = model.fit(X, Y, batch_size=8, class_weight={0: 1.0, 1: 4.0}, verbose=0)
    assert h.history["accuracy"][0] == pytest.approx(ACC)
    assert h.history["weighted_accuracy"][0] == pytest.approx(ACC_CW)
    # without weights the two agree
    logs = model.evaluate(X, Y, verbose=0, return_dict=True)
    assert logs["accuracy"] == pytest.approx(logs["weighted_accuracy"]) == pytest.approx(ACC)


def test_weighted_metrics_alone_keep_their_name_and_save(tmp_path):
    model = _sigmoid_model(weighted_metrics=["accuracy"])
    logs = model.evaluate(X, Y, sample_weight=W, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "accuracy"] and logs["accuracy"] == pytest.approx(ACC_W)
    model.save(tmp_path / "m.xpnet")
    again = keras.models.load_model(tmp_path / "m.xpnet")
    logs2 = again.evaluate(X, Y, sample_weight=W, verbose=0, return_dict=True)
    assert logs2["accuracy"] == pytest.approx(ACC_W)


def _two_outputs(**compile_kwargs):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(3,))
    h = layers.Dense(4, activation="relu")(inp)
    a = layers.Dense(1, name="a")(h)
    b = layers.Dense(2, activation="softmax", name="b")(h)
    model = keras.Model(inp, [a, b], backend="cpu")
    model.compile(optimizer="sgd", loss=["mse", "sparse_categorical_crossentropy"],
                  loss_weights=[1.0, 0.5], **compile_kwargs)
    return model


def test_multi_output_without_metrics_and_evaluate_order():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    ya, yb = rng.standard_normal((20,)).astype(np.float32), rng.integers(0, 2, (20, 1))
    model = _two_outputs()  # point 3: no metrics= on two outputs
    h = model.fit(x, [ya, yb], epochs=1, verbose=0)
    assert set(h.history) == {"loss", "a_loss", "b_loss"}
    model = _two_outputs(metrics=[["mae"], ["accuracy"]])
    names = model.metrics_names
    # Keras 3: [loss, <out>_loss..., then each output's metrics in output order]
    assert names == ["loss", "a_loss", "b_loss", "a_mae", "b_accuracy"]
    values = model.evaluate(x, [ya, yb], verbose=0)
    assert len(values) == 5
    assert values[0] == pytest.approx(values[1] + 0.5 * values[2], rel=1e-5)
    pa, pb = model.predict(x, verbose=0)
    assert values[3] == pytest.approx(np.mean(np.abs(pa[:, 0] - ya)), rel=1e-5)
    assert values[4] == pytest.approx(np.mean(np.argmax(pb, -1) == yb[:, 0]), rel=1e-6)


class Recorder(callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def _rec(self, name, logs):
        self.calls.append((name, logs if logs is None else dict(logs)))


for _hook in [h for h in vars(callbacks.Callback) if h.startswith("on_")]:
    def _make(hook):
        if hook.endswith(("_begin", "_end")) and ("batch" in hook or "epoch" in hook):
            return lambda self, i, logs=None: self._rec(f"{hook} {i}", logs)
        return lambda self, logs=None: self._rec(hook, logs)

    setattr(Recorder, _hook, _make(_hook))


def test_callback_hooks_in_fit_evaluate_predict():
    x, y = X, Y
    model = _sigmoid_model()
    rec = Recorder()
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, validation_data=(x, y),
              callbacks=[rec])
    names = [c[0] for c in rec.calls]
    assert names == ["on_train_begin", "on_epoch_begin 0",
                     "on_train_batch_begin 0", "on_train_batch_end 0",
                     "on_train_batch_begin 1", "on_train_batch_end 1",
                     "on_test_begin", "on_test_batch_begin 0", "on_test_batch_end 0",
                     "on_test_batch_begin 1", "on_test_batch_end 1", "on_test_end",
                     "on_epoch_end 0", "on_train_end"]
    begins = [logs for name, logs in rec.calls if "begin" in name]
    assert all(logs == {} for logs in begins)  # Keras: logs={}, never None
    assert "loss" in dict(rec.calls)["on_test_end"]
    rec = Recorder()
    model.evaluate(x, y, batch_size=8, verbose=0, callbacks=[rec])
    assert [c[0] for c in rec.calls] == ["on_test_begin", "on_test_batch_begin 0",
                                         "on_test_batch_end 0", "on_test_end"]
    assert rec.calls[0][1] == {} and "loss" in rec.calls[-1][1]
    rec = Recorder()
    model.predict(x, batch_size=5, verbose=0, callbacks=[rec])
    assert [c[0] for c in rec.calls] == [
        "on_predict_begin", "on_predict_batch_begin 0", "on_predict_batch_end 0",
        "on_predict_batch_begin 1", "on_predict_batch_end 1", "on_predict_end"]
    assert rec.calls[2][1]["outputs"].shape == (5, 1)


@pytest.mark.parametrize("loss", ["mse", "mae", "binary_crossentropy", "hinge",
                                  "squared_hinge", "huber", "log_cosh"])
def test_targets_of_shape_n_for_one_unit_output(loss):
    model = _sigmoid_model()
    model.compile(optimizer="sgd", loss=loss)
    y1 = Y[:, 0]  # shape (8,): Keras expands it to the output's rank
    assert model.evaluate(X, y1, verbose=0) == pytest.approx(
        model.evaluate(X, Y, verbose=0), rel=1e-6)
    model.fit(X, y1, epochs=1, verbose=0)


def test_sparse_labels_n_by_1():
    model = keras.Sequential([keras.Input(shape=(1,)), layers.Dense(3, activation="softmax")],
                             backend="cpu")
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    labels = np.array([0, 1, 2, 1, 0, 2, 1, 0])
    a = model.evaluate(X, labels, verbose=0)
    b = model.evaluate(X, labels[:, None], verbose=0)
    assert a == pytest.approx(b)


def test_progress_units_are_keras():
    # Keras's Progbar._format_time: s from 1 s (or 0), ms from 1 ms, else us; rounded
    assert format_time(955e-6) == " 955us/step"
    assert format_time(0.012) == " 12ms/step"
    assert format_time(2.4) == " 2s/step"
    assert format_time(0.0) == " 0s/step"
    assert format_time(0.0009996) == " 1000us/step"


def test_progress_line_in_fit_and_evaluate(capsys):
    model = _sigmoid_model(metrics=["accuracy"])
    model.fit(X, Y, batch_size=4, epochs=2, verbose=2)
    out = capsys.readouterr().out
    assert "Epoch 1/2" in out and "Epoch 2/2" in out
    assert re.search(r"^2/2 - \d+s - \d+(us|ms|s)/step - accuracy: 0\.6250 - loss: ", out,
                     re.M) or re.search(r"^2/2 - \d+s - \d+(us|ms|s)/step - loss: ", out, re.M)
    assert "0ms/step" not in out
    model.evaluate(X, Y, batch_size=4, verbose=1)
    out = capsys.readouterr().out
    assert re.search(r"2/2 .*━.* \d+s \d+(us|ms|s)/step - loss: \d\.\d{4} - accuracy: "
                     r"0\.6250", out)


def test_per_class_metrics_logged_as_arrays(capsys):
    # Keras 3 logs F1Score(average=None) as an array, one F1 per class
    model = keras.Sequential([keras.Input(shape=(1,)), layers.Dense(2, activation="softmax")],
                             backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="categorical_crossentropy",
                  metrics=[metrics.F1Score(), metrics.F1Score(average="macro", name="f1m")])
    model.set_weights([np.array([[-1.0, 1.0]], np.float32), np.zeros(2, np.float32)])
    y = np.eye(2, dtype=np.float32)[Y[:, 0].astype(int)]
    logs = model.evaluate(X, y, verbose=0, return_dict=True)
    # predictions: class 1 iff x > 0 -> [0,0,1,1,0,1,1,0]; labels [0,1,1,0,0,1,1,1]
    # class 0: tp 2 (x=-2,-3), fp 2, fn 1 -> F1 = 4/7; class 1: tp 3, fp 1, fn 2 -> 2/3
    np.testing.assert_allclose(logs["f1_score"], [4 / 7, 2 / 3], rtol=1e-5)
    assert logs["f1m"] == pytest.approx((4 / 7 + 2 / 3) / 2, rel=1e-5)
    h = model.fit(X, y, epochs=2, batch_size=4, verbose=2)
    assert len(h.history["f1_score"]) == 2 and h.history["f1_score"][0].shape == (2,)
    assert "f1_score: " in capsys.readouterr().out  # the progress bar prints the mean


class Batches(PyDataset):
    def __init__(self, x, y, w=None, batch_size=4, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.w, self.bs = x, y, w, batch_size
        self.epochs_ended = 0

    def __len__(self):
        return math.ceil(len(self.x) / self.bs)

    def __getitem__(self, i):
        s = slice(i * self.bs, (i + 1) * self.bs)
        return (self.x[s], self.y[s]) if self.w is None else (self.x[s], self.y[s], self.w[s])

    def on_epoch_end(self):
        self.epochs_ended += 1


def _reg_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(4, activation="tanh"),
                              layers.Dense(1)], backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def _reg_data(n=24):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-2.0], [0.5]], np.float32)), rng.random(n).astype(
        np.float32)


def test_generators_and_pydataset_train_as_arrays():
    x, y, w = _reg_data()
    ref = _reg_model()
    ref.fit(x, y, sample_weight=w, batch_size=4, epochs=2, shuffle=False, verbose=0)
    expect = ref.get_weights()

    def gen():
        while True:
            for i in range(0, 24, 4):
                yield x[i:i + 4], y[i:i + 4], w[i:i + 4]

    for data, kwargs in [(gen(), {"steps_per_epoch": 6}),
                         (Batches(x, y, w), {}),
                         (Batches(x, y, w, workers=3), {}),
                         (Batches(x, y, w, workers=2, use_multiprocessing=True), {})]:
        model = _reg_model()
        h = model.fit(data, epochs=2, verbose=0, **kwargs)
        for a, b in zip(model.get_weights(), expect):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert len(h.history["loss"]) == 2
    assert data.epochs_ended == 2
    # an iterator of (x, y) whose epoch ends when it is exhausted
    model = _reg_model()
    model.fit(iter([(x[:12], y[:12]), (x[12:], y[12:])]), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="exhausted"):
        model.fit(iter([(x, y)]), epochs=2, verbose=0)


def test_validation_generator_evaluate_and_predict_streams():
    x, y, _ = _reg_data()
    model = _reg_model()
    ref = model.evaluate(x, y, verbose=0, return_dict=True)

    def val():
        while True:
            yield x[:12], y[:12]
            yield x[12:], y[12:]

    h = model.fit(Batches(x, y), epochs=1, verbose=0, validation_data=val(),
                  validation_steps=2)
    assert "val_loss" in h.history and "val_mae" in h.history
    model = _reg_model()
    got = model.evaluate(Batches(x, y, batch_size=5), verbose=0, return_dict=True)
    assert got["loss"] == pytest.approx(ref["loss"], rel=1e-5)
    assert got["mae"] == pytest.approx(ref["mae"], rel=1e-5)
    np.testing.assert_allclose(model.predict(Batches(x, y), verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="batches carry"):
        model.fit(Batches(x, y), y, verbose=0)


def test_generator_with_a_users_train_step():
    from xpnet import GradientTape

    class Custom(keras.Model):
        def __init__(self):
            super().__init__(backend="cpu")
            self.dense = layers.Dense(1)
            self.steps = 0

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, y = data
            with GradientTape() as tape:
                loss = keras.ops.mean(keras.ops.square(self(x, training=True) - y))
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            self.steps += 1
            return {"loss": loss}

    x, y, _ = _reg_data()
    model = Custom()
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    h = model.fit(Batches(x, y), epochs=3, verbose=0)
    assert model.steps == 18 and h.history["loss"][-1] < h.history["loss"][0]


def test_multi_output_metric_list_is_one_entry_per_output():
    # Keras 3's CompileMetrics: a flat list on two outputs gives entry k to output k, and
    # a list of another length is an error
    model = _two_outputs(metrics=["mae", "accuracy"])
    assert model.metrics_names == ["loss", "a_loss", "b_loss", "a_mae", "b_accuracy"]
    model = _two_outputs(metrics={"b": "accuracy"}, weighted_metrics=[["mse"], []])
    assert model.metrics_names == ["loss", "a_loss", "b_loss", "b_accuracy", "a_mse"]
    with pytest.raises(ValueError, match="one entry .* per output"):
        _two_outputs(metrics=["mae"])


def test_reiterable_loader_gives_a_full_pass_each_epoch():
    # an object with __iter__ (and __len__), as a torch DataLoader: one pass per epoch
    class Loader:
        def __init__(self, x, y):
            self.x, self.y, self.passes = x, y, 0

        def __len__(self):
            return 3

        def __iter__(self):
            self.passes += 1
            for i in range(0, 24, 8):
                yield self.x[i:i + 8], self.y[i:i + 8]

    x, y, _ = _reg_data()
    loader = Loader(x, y)
    model = _reg_model()
    seen = []
    cb = callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(b))
    model.fit(loader, epochs=3, verbose=0, callbacks=[cb])
    assert loader.passes == 3 and seen == [0, 1, 2] * 3


def test_validation_freq_as_a_list_of_epochs():
    x, y, _ = _reg_data()
    seen = []
    cb = callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append("val_loss" in logs))
    _reg_model().fit(x, y, epochs=4, verbose=0, validation_data=(x, y),
                     validation_freq=[1, 3], callbacks=[cb])
    assert seen == [True, False, True, False]  # Keras: 1-based epochs to validate after
