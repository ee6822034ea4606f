"""Keras 3's LambdaCallback, BackupAndRestore (a run killed by SIGKILL resumes and ends as
an uninterrupted one), TensorBoard (event files read back by TensorBoard's own reader) and
History.plot (issue 10, point 12)."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from xpnet import callbacks
from xpnet import keras
from xpnet import layers

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(4, activation="tanh",
                                                                     name="hidden"),
                              layers.Dense(1, name="out")], backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    return model


def _data(n=16):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    return x, x @ np.array([[1.0], [-1.0], [0.5]], np.float32)


def test_lambda_callback():
    x, y = _data()
    seen = []
    cb = callbacks.LambdaCallback(
        on_train_begin=lambda logs: seen.append(("train_begin", logs)),
        on_epoch_end=lambda epoch, logs: seen.append(("epoch_end", epoch, logs["loss"])),
        on_train_batch_end=lambda batch, logs: seen.append(("batch", batch)),
        on_test_end=lambda logs: seen.append(("test_end", sorted(logs))))
    h = _model().fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb],
                     validation_data=(x, y))
    assert seen[0] == ("train_begin", {})
    assert [s[:2] for s in seen[1:5]] == [("batch", 0), ("batch", 1),
                                          ("test_end", ["loss", "mae"]), ("epoch_end", 0)]
    assert seen[4][2] == h.history["loss"][0]
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_ending'"):
        callbacks.LambdaCallback(on_epoch_ending=print)


SCRIPT = textwrap.dedent('''
    import os, signal, sys
    import numpy as np
    from xpnet import callbacks, keras, layers

    backup, out, kill = sys.argv[1], sys.argv[2], sys.argv[3] == "kill"
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(8, activation="relu"),
                              layers.Dropout(0.3), layers.Dense(1)], backend="cpu")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-1.0], [0.5]], np.float32)

    class Log(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            with open(out + ".epochs", "a") as f:
                f.write(f"{epoch}\\n")

        def on_train_batch_end(self, batch, logs=None):
            if kill and self.epoch == 2 and batch == 2:
                os.kill(os.getpid(), signal.SIGKILL)  # mid-epoch, no cleanup

    model.fit(x, y, batch_size=8, epochs=4, verbose=0,
              callbacks=[callbacks.BackupAndRestore(backup), Log()])
    np.save(out, np.concatenate([w.ravel() for w in model.get_weights()]))
''')


def test_backup_and_restore_survives_sigkill(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(backup, out, mode):
        return subprocess.run([sys.executable, str(script), str(tmp_path / backup),
                               str(tmp_path / out), mode], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)

    killed = run("backup", "resumed", "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (tmp_path / "backup" / "backup.xpnet").exists()  # epochs 0 and 1 backed up
    resumed = run("backup", "resumed", "run")
    assert resumed.returncode == 0, resumed.stderr
    # the first run began epochs 0, 1, 2 (killed in 2); the rerun resumed at epoch 2
    assert (tmp_path / "resumed.epochs").read_text().split() == ["0", "1", "2", "2", "3"]
    assert not (tmp_path / "backup").exists()  # deleted once training ended
    whole = run("backup2", "whole", "run")
    assert whole.returncode == 0, whole.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "resumed.npy"),
                                  np.load(tmp_path / "whole.npy"))


def test_backup_and_restore_refuses_batch_frequency():
    with pytest.raises(NotImplementedError, match="save_freq=100"):
        callbacks.BackupAndRestore("b", save_freq=100)


def test_tensorboard_events_read_by_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX")
    ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    x, y = _data()
    model = _model()
    tb = callbacks.TensorBoard(tmp_path / "logs", histogram_freq=1, update_freq="batch")
    h = model.fit(x, y, batch_size=8, epochs=3, verbose=0, validation_data=(x, y),
                  callbacks=[tb])
    train = ea.EventAccumulator(str(tmp_path / "logs" / "train"), size_guidance={
        ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    train.Reload()
    tags = train.Tags()
    assert {"epoch_loss", "epoch_mae", "batch_loss", "batch_mae"} <= set(tags["scalars"])
    assert [e.step for e in train.Scalars("epoch_loss")] == [0, 1, 2]
    np.testing.assert_allclose([e.value for e in train.Scalars("epoch_loss")],
                               h.history["loss"], rtol=1e-6)
    assert [e.step for e in train.Scalars("batch_loss")] == [1, 2, 3, 4, 5, 6]
    assert {"hidden/kernel", "hidden/bias", "out/kernel", "out/bias"} <= \
        set(tags["histograms"])
    assert len(train.Histograms("hidden/kernel")) == 3
    val = ea.EventAccumulator(str(tmp_path / "logs" / "validation"))
    val.Reload()
    np.testing.assert_allclose([e.value for e in val.Scalars("epoch_loss")],
                               h.history["val_loss"], rtol=1e-6)
    with pytest.raises(NotImplementedError, match="profile_batch"):
        callbacks.TensorBoard(tmp_path, profile_batch=2)


def test_history_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = _data()
    h = _model().fit(x, y, epochs=2, verbose=0, validation_split=0.25)
    fig = h.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "mae"]
    assert [ln.get_label() for ln in fig.axes[0].lines] == ["loss", "val_loss"]
