"""Callbacks with Keras 3's semantics, class and sample weights, and what fit does when
the loss becomes NaN or infinite."""

import csv
import math

import numpy as np
import pytest

import xpnet
from xpnet import callbacks
from xpnet import keras
from xpnet import layers


class Scripted(callbacks.Callback):
    """Feeds a scripted value of ``monitor`` into the epoch logs, ahead of the callbacks
    under test, and records the hooks called."""

    def __init__(self, values, key="val_loss"):
        super().__init__()
        self.values, self.key, self.calls = list(values), key, []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(f"epoch_begin {epoch}")

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append("batch_end")

    def on_epoch_end(self, epoch, logs=None):
        logs[self.key] = self.values[epoch]
        self.calls.append(f"epoch_end {epoch}")

    def on_train_end(self, logs=None):
        self.calls.append("train_end")


def _model(backend="cpu", lr=0.01, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([layers.Dense(8, activation="tanh", input_shape=(3,)),
                              layers.Dense(1)], backend=backend)
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, (x @ np.array([[1.0], [-1.0], [0.5]])).astype(np.float32)


def test_hooks_order_and_history():
    x, y = _data()
    s = Scripted([3.0, 2.0])
    h = _model().fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=[s])
    assert s.calls == ["train_begin", "epoch_begin 0", "batch_end", "batch_end", "epoch_end 0",
                       "epoch_begin 1", "batch_end", "batch_end", "epoch_end 1", "train_end"]
    assert h.history["val_loss"] == [3.0, 2.0] and len(h.history["loss"]) == 2


def test_early_stopping_patience_min_delta_and_restore():
    x, y = _data()
    model = _model()
    snapshots = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.get_weights())

    # best at epoch 1 (0.5); 0.45 at epoch 3 is within min_delta=0.1, so no improvement
    s = Scripted([1.0, 0.5, 0.6, 0.45, 0.7, 0.3])
    es = callbacks.EarlyStopping(patience=2, min_delta=0.1, restore_best_weights=True)
    h = model.fit(x, y, epochs=6, verbose=0, callbacks=[s, es, Snap()])
    assert len(h.history["loss"]) == 4 and es.stopped_epoch == 3 and es.best_epoch == 1
    for a, b in zip(model.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_restores_even_without_stopping_and_max_mode():
    x, y = _data()
    model = _model()
    snapshots = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.get_weights())

    s = Scripted([0.2, 0.9, 0.5], key="val_accuracy")
    es = callbacks.EarlyStopping(monitor="val_accuracy", patience=5, restore_best_weights=True)
    assert es.mode == "max"
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[s, es, Snap()])
    assert len(h.history["loss"]) == 3 and es.stopped_epoch == 0  # ran to the end
    for a, b in zip(model.get_weights(), snapshots[1]):  # and still restored the best
        np.testing.assert_array_equal(a, b)


def test_early_stopping_baseline():
    """Improvements that do not beat the baseline do not reset the wait (Keras 3)."""
    x, y = _data()
    values = [0.5, 0.4, 0.45, 0.42, 0.41, 0.40]
    lengths = []
    for baseline in (0.1, None):
        es = callbacks.EarlyStopping(monitor="val_loss", baseline=baseline, patience=2)
        h = _model().fit(x, y, epochs=6, verbose=0, callbacks=[Scripted(values), es])
        lengths.append(len(h.history["loss"]))
    assert lengths == [3, 4]


def test_reduce_lr_on_plateau_cooldown_and_min_lr():
    x, y = _data()
    model = _model(lr=0.1)
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    r = callbacks.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.03)
    h = model.fit(x, y, epochs=8, verbose=0, callbacks=[Scripted(values), r])
    # the rate logged is the one the epoch used. Epoch 0 sets the best; a wait of 2
    # reduces after epoch 2; epoch 3 is cooldown (its wait does not count), so the next
    # reduction comes after epoch 4, to the floor min_lr (not 0.025), which then holds
    want = [0.1, 0.1, 0.1, 0.05, 0.05, 0.03, 0.03, 0.03]
    np.testing.assert_allclose(h.history["learning_rate"], want)
    assert model.optimizer.learning_rate == 0.03


def test_learning_rate_scheduler():
    x, y = _data()
    model = _model(lr=0.1)
    sched = callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5 if epoch else lr)
    h = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    np.testing.assert_allclose(h.history["learning_rate"], [0.1, 0.05, 0.025])
    one_arg = callbacks.LearningRateScheduler(lambda epoch: 0.01 * (epoch + 1))
    h = model.fit(x, y, epochs=2, verbose=0, callbacks=[one_arg])
    np.testing.assert_allclose(h.history["learning_rate"], [0.01, 0.02])


def test_csv_logger(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(path)])
    model.fit(x, y, epochs=1, verbose=0, validation_split=0.25,
              callbacks=[callbacks.CSVLogger(path, append=True)])
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "0"] and len(rows) == 4
    assert all(math.isfinite(float(v)) for r in rows[1:] for v in r[1:])


def test_model_checkpoint_save_best_only(tmp_path):
    x, y = _data()
    model = _model()
    path = str(tmp_path / "best.xpnet")
    snapshots = []

    class Snap(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(model.get_weights())

    ck = callbacks.ModelCheckpoint(path, save_best_only=True)
    model.fit(x, y, epochs=4, verbose=0,
              callbacks=[Scripted([0.5, 0.3, 0.4, 0.35]), ck, Snap()])
    loaded = xpnet.load_model(path)
    for a, b in zip(loaded.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)
    pattern = str(tmp_path / "w-{epoch:02d}.weights")
    model.fit(x, y, epochs=2, verbose=0,
              callbacks=[callbacks.ModelCheckpoint(pattern, save_weights_only=True)])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("w-")) == \
        ["w-01.weights", "w-02.weights"]


def test_class_weight_equals_sample_weight():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def clf():
        keras.utils.set_random_seed(0)
        m = keras.Sequential([layers.Dense(2, activation="softmax", input_shape=(3,))],
                             backend="cpu")
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        return m

    a, b, c = clf(), clf(), clf()
    a.fit(x, y, epochs=2, verbose=0, class_weight={0: 1.0, 1: 3.0}, shuffle=False)
    b.fit(x, y, epochs=2, verbose=0, sample_weight=np.where(y == 1, 3.0, 1.0), shuffle=False)
    c.fit(x, y, epochs=2, verbose=0, shuffle=False)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6)
    assert not np.allclose(a.get_weights()[0], c.get_weights()[0])
    # a zero weight removes a sample from the loss: its value and gradient
    w = (y == 1).astype(np.float32)
    loss = a.evaluate(x, y, sample_weight=w, batch_size=64, verbose=0)
    p = np.clip(a.predict(x, verbose=0), 1e-7, 1 - 1e-7)
    assert np.isclose(loss, -(w * np.log(p[np.arange(64), y])).sum() / 64, rtol=1e-5)


def _nan_data():
    x, y = _data(n=64)
    x[37] = np.nan  # batch 2 of 4 at batch_size 16, without shuffling
    return x, y


def test_nan_in_data_stops_with_step_and_place(backend):
    """On the CPU the loss is checked before each update (a free host read), so the
    weights are those before the bad step; on a device backend it is checked from a
    device-side record, read back every nonfinite.CHECK_EVERY steps and at the epoch's end."""
    x, y = _nan_data()
    model = _model(backend)
    with pytest.raises(xpnet.NonFiniteLossError,
                       match=r"epoch 1, batch 2 \(optimizer step 2\); it first appeared in "
                             r"the input data 'input_layer(_\d+)?'") as info:
        model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
    err = info.value
    assert (err.epoch, err.batch, err.iteration) == (0, 2, 2)
    assert model.stop_training
    if backend.name == "cpu":
        assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_overflow_names_the_layer_and_terminate_on_nan(capsys):
    x, y = _data()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([layers.Dense(4, input_shape=(3,), name="first"),
                              layers.Dense(1, name="big")], backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    w = model.get_weights()
    w[2][...] = 1e38  # the second layer overflows float32
    model.set_weights(w)
    h = model.fit(x, y, epochs=2, verbose=0, callbacks=[callbacks.TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "first appeared in layer 'big' (Dense)" in out and "batch 0" in out
    assert h.history == {}


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_early_stopping_restores_before_the_nan_error():
    """Nothing is lost: when the loss blows up, the callbacks still end training, so
    EarlyStopping puts back the best epoch's weights before fit raises."""
    x, y = _data(n=64)
    model = _model()
    best = []

    class Blowup(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                best.append(model.get_weights())
                w = model.get_weights()
                w[2][...] = 1e38  # the output layer overflows float32
                model.set_weights(w)

    es = callbacks.EarlyStopping(monitor="loss", patience=5, restore_best_weights=True)
    with pytest.raises(xpnet.NonFiniteLossError, match="epoch 3, batch 0"):
        model.fit(x, y, epochs=4, batch_size=16, verbose=0, callbacks=[es, Blowup()])
    assert es.best_epoch == 1
    for a, b in zip(model.get_weights(), best[0]):
        np.testing.assert_array_equal(a, b)
