"""Callbacks with Keras's hook names, the History a ``fit`` returns, and the progress bar.

Batch-level ``logs`` are lazy: a value is read back from the device only when a callback
looks at it, so a training step never waits on the host unless something asks.
"""

import contextlib
import csv
import math
import os
import string
import time
import warnings
from collections.abc import Mapping

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "LazyLogs",
           "EarlyStopping", "ModelCheckpoint", "ReduceLROnPlateau", "LearningRateScheduler",
           "CSVLogger", "TerminateOnNaN", "LambdaCallback", "BackupAndRestore",
           "TensorBoard"]


class LazyLogs(Mapping):
    """A read-only mapping whose values are fetched (one host sync each) when read."""

    def __init__(self, sources, convert=float):
        self._sources = sources  # name -> zero-argument callable returning a 0-d array
        self._convert = convert  # array -> float (or a NumPy array for a per-class result)

    def __getitem__(self, key):
        return self._convert(self._sources[key]())

    def __iter__(self):
        return iter(self._sources)

    def __len__(self):
        return len(self._sources)


class Callback:
    """Base class: override any of the ``on_*`` hooks. ``self.model`` is the model being
    trained, ``self.params`` holds ``epochs``, ``steps`` and ``verbose``."""

    def __init__(self):
        self.model, self.params = None, {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_predict_begin(self, logs=None): ...
    def on_predict_end(self, logs=None): ...
    def on_predict_batch_begin(self, batch, logs=None): ...
    def on_predict_batch_end(self, batch, logs=None): ...


_HOOKS = [name for name in vars(Callback) if name.startswith("on_")]


class CallbackList:
    """Calls a hook on every callback that overrides it (the others cost nothing)."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        for hook in _HOOKS:
            bound = [getattr(cb, hook) for cb in self.callbacks
                     if getattr(type(cb), hook) is not getattr(Callback, hook)
                     or hook in vars(cb)]  # LambdaCallback's functions
            setattr(self, hook, _fan_out(bound))
        self._training = False
        begin, end = self.on_train_begin, self.on_train_end

        def on_train_begin(logs=None):
            self._training = True
            begin(logs)

        def on_train_end(logs=None):
            self._training = False
            end(logs)

        self.on_train_begin, self.on_train_end = on_train_begin, on_train_end

    @contextlib.contextmanager
    def ending_on_error(self):
        """A context that, when training stops on an exception (a failed checkpoint, Ctrl-C)
        after ``on_train_begin``, still runs every callback's ``on_train_end`` (closing
        files, restoring weights), then raises the exception."""
        try:
            yield
        except BaseException as error:
            if self._training:
                self._training = False
                for cb in self.callbacks:
                    try:
                        cb.on_train_end(None)
                    except Exception as e:  # noqa: BLE001 - the first error is the one raised
                        error.add_note(f"{type(cb).__name__}.on_train_end also failed: {e!r}")
            raise


def _fan_out(bound):
    if not bound:
        return lambda *args, **kwargs: None
    if len(bound) == 1:
        return bound[0]

    def call(*args, **kwargs):
        for f in bound:
            f(*args, **kwargs)

    return call


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is a list of floats."""

    def __init__(self):
        super().__init__()
        self.history, self.epoch = {}, []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path=None, keys=None):
        """Plot the curves (each metric with its ``val_`` twin) with matplotlib, one panel
        per metric; save to ``path`` (PNG, PDF, ... by its suffix) when given. Returns the
        matplotlib Figure. matplotlib is an optional dependency (``pip install
        xpnet[plot]``)."""
        from xpnet.callbacks_extra import plot_history

        return plot_history(self.history, path, keys)


def _format(logs):
    from xpnet.progbar import format_value

    return " - ".join(f"{k}: {format_value(v)}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """Keras 3's progress lines: ``Epoch 1/5`` (when there are several epochs), then
    ``32/32 ━━━━━━━━━━━━━━━━━━━━ 1s 12ms/step - loss: 0.6931 - val_loss: 0.6810``
    redrawn as steps go (``verbose=1``) or printed once per epoch (``verbose=2``); the
    same for ``evaluate`` and ``predict``. Metrics are read from the device at most every
    ``interval`` seconds."""

    def __init__(self, verbose=1, interval=0.25):
        super().__init__()
        self.verbose, self.interval = verbose, interval
        self._bar, self._in_fit, self._seen = None, False, 0

    def _new_bar(self):
        from xpnet.progbar import Progbar

        self._bar = Progbar(self.params.get("steps"), verbose=self.verbose,
                            interval=self.interval)
        self._last, self._seen = -math.inf, 0

    def _step(self, batch, logs):
        if self._bar is None:
            return
        now = time.perf_counter()
        due = self.verbose == 1 and now - self._last >= self.interval
        if due:
            self._last = now
        self._seen = batch + 1
        self._bar.update(batch + 1, list(dict(logs).items()) if due and logs else None,
                         finalize=False)

    def _finish(self, logs):
        if self._bar is not None:
            self._bar.update(self._seen, list((logs or {}).items()), finalize=True)
            self._bar = None

    def on_train_begin(self, logs=None):
        self._in_fit = True

    def on_train_end(self, logs=None):
        self._in_fit = False

    def on_epoch_begin(self, epoch, logs=None):
        if (self.params.get("epochs") or 1) > 1:
            print(f"Epoch {epoch + 1}/{self.params.get('epochs')}")
        self._new_bar()

    def on_train_batch_end(self, batch, logs=None):
        self._step(batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if not self._in_fit:
            self._new_bar()

    def on_test_batch_end(self, batch, logs=None):
        if not self._in_fit:
            self._step(batch, logs)

    def on_test_end(self, logs=None):
        if not self._in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._new_bar()

    def on_predict_batch_end(self, batch, logs=None):
        self._step(batch, None)

    def on_predict_end(self, logs=None):
        self._finish({})


def _direction(monitor, mode, who):
    """``"min"`` or ``"max"``; ``"auto"`` maximises accuracy-like metrics, as Keras."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    name = monitor.removeprefix("val_")
    up = ("acc", "auc", "precision", "recall", "f1", "iou")
    return "max" if any(k in name for k in up) else "min"


def _monitored(logs, monitor, who):
    value = (logs or {}).get(monitor)
    if value is None:
        warnings.warn(f"{who} monitors {monitor!r}, which is not in the logs; available: "
                      f"{', '.join(logs or {})}", stacklevel=3)
    return value


class EarlyStopping(Callback):
    """Stop training when ``monitor`` has stopped improving, as Keras 3.

    Parameters
    ----------
    monitor : str, default="val_loss"
    min_delta : float, default=0
        An improvement must beat the best value by more than this.
    patience : int, default=0
        Epochs without improvement before stopping.
    mode : {"auto", "min", "max"}, default="auto"
    baseline : float, default=None
        Training stops unless the monitored value beats it within ``patience`` epochs.
    restore_best_weights : bool, default=False
        At the end of training (stopped early or not), set the weights of the best epoch.
    start_from_epoch : int, default=0
        Epochs of warm-up before monitoring starts.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.patience, self.verbose = monitor, patience, verbose
        self.min_delta, self.baseline = abs(min_delta), baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, \
            start_from_epoch
        self.mode = _direction(monitor, mode, "EarlyStopping")
        self._reset()

    def _reset(self):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None

    def _better(self, value, reference):
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs=None):
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = _monitored(logs, self.monitor, "EarlyStopping")
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._better(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._better(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: "
                      f"{self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (or its weights) at the end of every epoch, or of the best one.

    ``filepath`` may hold ``{epoch}`` (1-based) and any logged value, as
    ``"ckpt-{epoch:02d}-{val_loss:.3f}.xpnet"``. Saving is atomic (see
    :meth:`xpnet.Model.save`): a crash mid-save leaves the previous checkpoint intact.

    Parameters
    ----------
    filepath : str
    monitor : str, default="val_loss"
    save_best_only : bool, default=False
        Save only when ``monitor`` improves on the best value so far.
    save_weights_only : bool, default=False
    mode : {"auto", "min", "max"}, default="auto"
    save_freq : "epoch" or int, default="epoch"
        An int saves every that many batches instead.
    initial_value_threshold : float, default=None
        With ``save_best_only``, the value to beat at first.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__()
        if save_freq != "epoch" and not (isinstance(save_freq, int) and save_freq > 0):
            raise ValueError(f"ModelCheckpoint: save_freq must be 'epoch' or a positive int, "
                             f"got {save_freq!r}")
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only
        self.save_freq = save_freq
        self.mode = _direction(monitor, mode, "ModelCheckpoint")
        if initial_value_threshold is not None:
            self.best = initial_value_threshold
        else:
            self.best = math.inf if self.mode == "min" else -math.inf
        self._batches, self._epoch = 0, 0

    def on_train_begin(self, logs=None):
        self._check_pattern()

    def _check_pattern(self):
        """Refuse, before the first epoch, a file-name pattern naming a value the logs will
        not have (``{val_loss}`` without validation data) or a format that cannot apply."""
        names = list(getattr(self.model, "metrics_names", []) or [])
        validation = self.params.get("validation", True)
        known = {"epoch", "learning_rate", *names}
        if validation:
            known |= {f"val_{n}" for n in names}
        if self.save_freq != "epoch":
            known.add("batch")
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.filepath)
                      if f is not None]
        except ValueError as e:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} is not a valid "
                             f"pattern: {e}") from None
        for field in fields:
            root = field.split(".")[0].split("[")[0]
            if root in known:
                continue
            hint = " (val_* values exist only with validation data)" if \
                root.startswith("val_") and not validation else ""
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names {root!r}, "
                             f"which the logs will not have{hint}; available: "
                             f"{', '.join(sorted(known))}")
        try:
            self.filepath.format(**{k: (1 if k in ("epoch", "batch") else 0.5) for k in known})
        except (ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} cannot be "
                             f"formatted: {e}") from None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.save_freq == "epoch":
            return
        self._batches += 1
        if self._batches % self.save_freq == 0:
            self._save(self._epoch, dict(logs or {}), batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save(epoch, dict(logs or {}))

    def _save(self, epoch, logs, batch=None):
        path = self.filepath.format(epoch=epoch + 1, batch=batch, **logs)
        if self.save_best_only:
            current = _monitored(logs, self.monitor, "ModelCheckpoint")
            if current is None:
                return
            better = current < self.best if self.mode == "min" else current > self.best
            if not better:
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from "
                          f"{self.best:.5f}")
                return
            if self.verbose > 0:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{current:.5f}, saving model to {path}")
        elif self.verbose > 0:
            print(f"Epoch {epoch + 1}: saving model to {path}")
        try:
            if self.save_weights_only:
                self.model.save_weights(path)
            else:
                self.model.save(path)
        except OSError as e:  # best stays where it was: this epoch's model is not on disk
            e.add_note(f"ModelCheckpoint: the checkpoint of epoch {epoch + 1} was not saved")
            raise
        if self.save_best_only:
            self.best = current


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved for
    ``patience`` epochs, then wait ``cooldown`` epochs; never below ``min_lr`` (Keras 3).

    Parameters
    ----------
    monitor : str, default="val_loss"
    factor : float, default=0.1
    patience : int, default=10
    mode : {"auto", "min", "max"}, default="auto"
    min_delta : float, default=1e-4
    cooldown : int, default=0
    min_lr : float, default=0.0
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        super().__init__()
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, got factor={factor}")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.verbose, self.min_delta = verbose, min_delta
        self.cooldown, self.min_lr = cooldown, min_lr
        self.mode = _direction(monitor, mode, "ReduceLROnPlateau")
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait, self.cooldown_counter = 0, 0

    def on_train_begin(self, logs=None):
        self._reset()

    def _better(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        if callable(optimizer._learning_rate):
            raise TypeError("ReduceLROnPlateau: the optimizer's learning rate is a schedule; "
                            "it can only reduce a constant learning rate")
        if logs is not None:
            logs["learning_rate"] = optimizer.learning_rate
        current = _monitored(logs, self.monitor, "ReduceLROnPlateau")
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._better(current):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = optimizer.learning_rate
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    optimizer.learning_rate = new
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                              f"to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (or
    ``schedule(epoch)``), as Keras; the rate is logged as ``"learning_rate"``."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, optimizer.learning_rate)
        except TypeError:  # a schedule of the epoch alone
            lr = self.schedule(epoch)
        if not isinstance(lr, (int, float)) or isinstance(lr, bool):
            raise ValueError(f"LearningRateScheduler: the schedule must return a float, got "
                             f"{lr!r}")
        optimizer.learning_rate = float(lr)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class CSVLogger(Callback):
    """Write each epoch's logs as a row of a CSV file: ``epoch`` then the sorted keys."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = str(filename), separator, append
        self._file, self._keys = None, None

    def on_train_begin(self, logs=None):
        has_rows = self.append and os.path.exists(self.filename) and \
            os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._writer = csv.writer(self._file, delimiter=self.sep)
        self._keys = None if not has_rows else self._existing_keys()

    def _existing_keys(self):
        with open(self.filename, newline="") as f:
            header = next(csv.reader(f, delimiter=self.sep), None)
        return header[1:] if header else None

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer.writerow(["epoch"] + self._keys)
        self._writer.writerow([epoch] + [logs.get(k, "NA") for k in self._keys])
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None


class TerminateOnNaN(Callback):
    """Stop training at the first batch whose loss is NaN or infinite (Keras).

    It reads the loss after every batch, one host read per step on a GPU. Without it,
    ``fit`` still notices a non-finite loss (see :class:`xpnet.NonFiniteLossError`) and
    raises; with it, ``fit`` prints where the loss went bad and returns instead.
    """

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


from xpnet.callbacks_extra import BackupAndRestore  # noqa: E402  (it subclasses Callback)
from xpnet.callbacks_extra import LambdaCallback  # noqa: E402
from xpnet.callbacks_extra import TensorBoard  # noqa: E402
