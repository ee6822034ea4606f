"""Callbacks with Keras's hook names, the History a ``fit`` returns, and the progress bar.

Batch-level ``logs`` are lazy: a value is read back from the device only when a callback
looks at it, so a training step never waits on the host unless something asks.
"""

import time
from collections.abc import Mapping

__all__ = ["Callback", "CallbackList", "History", "ProgbarLogger", "LazyLogs"]


class LazyLogs(Mapping):
    """A read-only mapping whose values are fetched (one host sync each) when read."""

    def __init__(self, sources):
        self._sources = sources  # name -> zero-argument callable returning a 0-d array

    def __getitem__(self, key):
        return float(self._sources[key]())

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
                     if getattr(type(cb), hook) is not getattr(Callback, hook)]
            setattr(self, hook, _fan_out(bound))


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


def _format(logs):
    return " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())


class ProgbarLogger(Callback):
    """Keras-style progress: a tqdm bar per epoch (``verbose=1``) or a line per epoch
    (``verbose=2``). Metrics are read from the device at most every ``interval`` seconds."""

    def __init__(self, verbose=1, interval=0.25):
        super().__init__()
        self.verbose, self.interval = verbose, interval
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._last = 0.0
        epochs = self.params.get("epochs")
        print(f"Epoch {epoch + 1}/{epochs}")
        if self.verbose == 1:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.params.get("steps"), unit="step", leave=True,
                             bar_format="{n_fmt}/{total_fmt} {bar} {elapsed} {rate_fmt}"
                                        "{postfix}", dynamic_ncols=True, mininterval=0.1)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:
            return
        now = time.perf_counter() - self._start
        if now - self._last >= self.interval and logs is not None:
            self._last = now
            self._bar.set_postfix_str(_format(dict(logs)), refresh=False)
        self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        took = time.perf_counter() - self._start
        steps = self.params.get("steps") or 1
        if self._bar is not None:
            self._bar.set_postfix_str(_format(logs or {}), refresh=False)
            self._bar.close()
            self._bar = None
        elif self.verbose == 2:
            print(f"{steps}/{steps} - {took:.0f}s - {took / steps * 1e3:.0f}ms/step - "
                  f"{_format(logs or {})}")
