"""``LambdaCallback``, ``BackupAndRestore`` and ``TensorBoard`` (Keras 3's), and the plot
of a :class:`~xpnet.callbacks.History`."""

import json
import os
import shutil

from xpnet.callbacks import Callback

__all__ = ["LambdaCallback", "BackupAndRestore", "TensorBoard", "plot_history"]


class LambdaCallback(Callback):
    """A callback from plain functions, as Keras: ``on_epoch_end(epoch, logs)``,
    ``on_train_begin(logs)``, ``on_train_batch_end(batch, logs)``, ... Any other hook
    (``on_test_end=...``, ``on_predict_batch_end=...``) may be given by keyword."""

    _NAMES = [name for name in vars(Callback) if name.startswith("on_")]

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_begin=None, on_train_batch_end=None,
                 **kwargs):
        super().__init__()
        given = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                     on_train_begin=on_train_begin, on_train_end=on_train_end,
                     on_train_batch_begin=on_train_batch_begin,
                     on_train_batch_end=on_train_batch_end, **kwargs)
        for name, fn in given.items():
            if name not in self._NAMES:
                raise ValueError(f"LambdaCallback: unknown hook {name!r}; hooks are "
                                 f"{', '.join(self._NAMES)}")
            if fn is not None:
                setattr(self, name, fn)


class BackupAndRestore(Callback):
    """Back up the training state at the end of every epoch; a run interrupted (even by
    SIGKILL) and started again with the same script resumes from the last backup, and
    ends with what an uninterrupted run gives, as Keras 3's.

    The backup is one atomic xpnet model file (weights, optimizer slots and step count,
    the random states of the shuffle and of the layers) plus ``training_metadata.json``
    (the epoch), written after it; both live in ``backup_dir``.

    Parameters
    ----------
    backup_dir : str
    save_freq : "epoch", default="epoch"
        Keras also takes a number of batches; xpnet backs up at epoch ends only.
    delete_checkpoint : bool, default=True
        Remove the backup once training ends normally.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore: backup_dir is required")
        if save_freq != "epoch":
            raise NotImplementedError(f"BackupAndRestore(save_freq={save_freq!r}): xpnet "
                                      "backs up at epoch ends only (save_freq='epoch')")
        if double_checkpoint:
            raise NotImplementedError("BackupAndRestore(double_checkpoint=True): each "
                                      "backup is written atomically; one copy is kept")
        self.backup_dir, self.delete_checkpoint = str(backup_dir), delete_checkpoint
        self._model_path = os.path.join(self.backup_dir, "backup.xpnet")
        self._meta_path = os.path.join(self.backup_dir, "training_metadata.json")

    def on_train_begin(self, logs=None):
        if not os.path.exists(self._meta_path) or not os.path.exists(self._model_path):
            return
        from xpnet.saving import restore_training_state

        with open(self._meta_path) as f:
            epoch = int(json.load(f)["epoch"])
        restore_training_state(self.model, self._model_path)
        self.model._initial_epoch = epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        from xpnet.saving_io import atomic_write

        os.makedirs(self.backup_dir, exist_ok=True)
        self.model.save(self._model_path)  # atomic: a kill leaves the previous backup
        atomic_write(self._meta_path, json.dumps({"epoch": epoch}).encode(), True)

    def on_train_end(self, logs=None):
        if self.delete_checkpoint and os.path.isdir(self.backup_dir):
            shutil.rmtree(self.backup_dir, ignore_errors=True)


class TensorBoard(Callback):
    """Event files for TensorBoard, written by ``tensorboardX`` (optional dependency:
    ``pip install xpnet[tensorboard]``), laid out as Keras 3's: ``log_dir/train`` and
    ``log_dir/validation``, scalars ``epoch_<metric>`` per epoch (the ``val_`` ones under
    ``validation``), ``batch_<metric>`` every ``update_freq`` batches when it is an int
    or ``"batch"``, and a histogram of every weight every ``histogram_freq`` epochs.

    Parameters
    ----------
    log_dir : str, default="logs"
    histogram_freq : int, default=0
    update_freq : "epoch", "batch" or int, default="epoch"
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True,
                 write_images=False, write_steps_per_second=False, update_freq="epoch",
                 profile_batch=0, embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        if profile_batch:
            raise NotImplementedError("TensorBoard(profile_batch=...): xpnet has no "
                                      "profiler trace")
        if embeddings_freq:
            raise NotImplementedError("TensorBoard(embeddings_freq=...): embedding "
                                      "projector files are not written")
        if write_images:
            raise NotImplementedError("TensorBoard(write_images=True): weight images are "
                                      "not written (histograms are)")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"TensorBoard: update_freq must be 'epoch', 'batch' or a "
                             f"positive int, got {update_freq!r}")
        self.log_dir, self.histogram_freq = str(log_dir), int(histogram_freq)
        self.update_freq = update_freq
        self._writers, self._batch = {}, 0

    def _writer(self, kind):
        if kind not in self._writers:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError("TensorBoard needs tensorboardX: pip install "
                                  "xpnet[tensorboard]") from None
            self._writers[kind] = SummaryWriter(os.path.join(self.log_dir, kind))
        return self._writers[kind]

    def on_train_begin(self, logs=None):
        self._writer("train")

    def on_train_batch_end(self, batch, logs=None):
        self._batch += 1
        if self.update_freq == "epoch" or self._batch % self.update_freq or not logs:
            return
        writer = self._writer("train")
        for k, v in dict(logs).items():
            _scalar(writer, f"batch_{k}", v, self._batch)

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            kind, name = ("validation", k[4:]) if k.startswith("val_") else ("train", k)
            _scalar(self._writer(kind), f"epoch_{name}", v, epoch)
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            writer = self._writer("train")
            for layer in self.model._all_layers():
                for name, w in layer.params.items():
                    writer.add_histogram(f"{layer.name}/{name}",
                                         self.model.backend.to_numpy(w), epoch)
        for w in self._writers.values():
            w.flush()

    def on_train_end(self, logs=None):
        for w in self._writers.values():
            w.close()
        self._writers = {}


def _scalar(writer, tag, value, step):
    if isinstance(value, (int, float)):
        writer.add_scalar(tag, float(value), step)
    else:  # a per-class result: one scalar per class, as tag/0, tag/1, ...
        for i, v in enumerate(getattr(value, "tolist", lambda: value)()):
            writer.add_scalar(f"{tag}/{i}", float(v), step)


def plot_history(history, path=None, keys=None):
    """One panel per metric of ``history`` (a dict of lists, or a History), its
    ``val_`` twin in the same panel; saved to ``path`` when given. Returns the Figure."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("History.plot needs matplotlib: pip install xpnet[plot]") from None
    history = getattr(history, "history", history)
    names = keys or [k for k in history if not k.startswith("val_")]
    if not names:
        raise ValueError("History.plot: nothing recorded yet (call fit first)")
    fig = Figure(figsize=(4.5 * len(names), 3.5))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for key in (name, f"val_{name}"):
            if key in history:
                values = history[key]
                ax.plot(range(1, len(values) + 1), values, marker="o", label=key)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    if path is not None:
        fig.savefig(path)
    return fig
