"""Batches for ``fit``/``evaluate``/``predict``: from arrays (shuffled on the device), or
from Python generators, iterators and :class:`PyDataset` (``keras.utils.PyDataset``, alias
``Sequence``) loaded by worker threads or processes, as Keras 3.
"""

import concurrent.futures
import multiprocessing
import sys

from xpnet.engine.data_adapter import take_batch

__all__ = ["PyDataset", "Sequence", "is_stream", "ArrayBatches", "StreamBatches"]


class PyDataset:
    """A dataset of batches, as ``keras.utils.PyDataset``: subclass it, define
    ``__len__`` (the number of batches) and ``__getitem__(index)`` returning ``x``,
    ``(x, y)`` or ``(x, y, sample_weight)``; ``on_epoch_end`` runs after each epoch.

    Parameters
    ----------
    workers : int, default=1
        Batches loaded ahead in parallel by this many workers (threads, or processes with
        ``use_multiprocessing``); batches keep their order.
    use_multiprocessing : bool, default=False
        Workers are forked processes (the dataset must survive ``fork``; POSIX only).
    max_queue_size : int, default=10
        Batches prepared ahead of the one being trained on.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"PyDataset: workers must be a positive int, got {workers!r}")
        self._workers, self._use_multiprocessing = workers, bool(use_multiprocessing)
        self._max_queue_size = max(int(max_queue_size), 1)

    # Keras reads these as properties; a subclass that forgot super().__init__() still works
    workers = property(lambda self: getattr(self, "_workers", 1))
    use_multiprocessing = property(lambda self: getattr(self, "_use_multiprocessing", False))
    max_queue_size = property(lambda self: getattr(self, "_max_queue_size", 10))

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: define __getitem__(index)")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__}: define __len__()")

    @property
    def num_batches(self):
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


Sequence = PyDataset


def is_stream(x):
    """Whether ``x`` is fed batch by batch (a PyDataset, a generator or an iterator)
    rather than as arrays."""
    if isinstance(x, PyDataset):
        return True
    if hasattr(x, "shape") or hasattr(x, "__array__") or \
            isinstance(x, (list, tuple, dict, str, bytes)):
        return False
    return hasattr(x, "__next__") or hasattr(x, "__iter__")


def _get_item(dataset, index):  # module level: a process pool pickles it by name
    return dataset[index]


class _Loader:
    """The batches of a PyDataset, in order, ``max_queue_size`` ahead on its workers."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.pool = None
        if dataset.workers > 1:
            if dataset.use_multiprocessing:
                if sys.platform == "win32":
                    raise NotImplementedError("PyDataset(use_multiprocessing=True) on "
                                              "Windows: use threads (the default)")
                ctx = multiprocessing.get_context("fork")
                self.pool = concurrent.futures.ProcessPoolExecutor(dataset.workers,
                                                                   mp_context=ctx)
            else:
                self.pool = concurrent.futures.ThreadPoolExecutor(dataset.workers)

    def batches(self, stop):
        if self.pool is None:
            for i in range(stop):
                yield self.dataset[i]
            return
        ahead = self.dataset.max_queue_size
        futures = {}
        for i in range(stop):
            for j in range(i, min(i + ahead, stop)):
                if j not in futures:
                    futures[j] = self.pool.submit(_get_item, self.dataset, j)
            yield futures.pop(i).result()

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


class ArrayBatches:
    """The batches of arrays already on the device: ``steps`` per epoch, shuffled by the
    model's generator when asked."""

    def __init__(self, xp, xs, ys, sw, batch_size, steps=None, shuffle=False, shard=None):
        self.xp, self.xs, self.ys, self.sw = xp, xs, ys, sw
        self.shard = shard  # data parallelism: this rank's part of each global batch
        self.n, self.batch_size = xs[0].shape[0], batch_size
        full = -(-self.n // batch_size)
        self.steps = full if not steps else min(full, steps)
        self.shuffle, self._perm = shuffle, None

    def epoch(self, rng=None):
        self._perm = rng.permutation(self.n) if self.shuffle and rng is not None else None
        for step in range(self.steps):
            yield self.batch(step)

    def batch(self, step):
        if self.shard is not None:
            return self.shard(self.xp, self.xs, self.ys, self.sw, self._perm,
                              step * self.batch_size, self.batch_size, self.n, take_batch)
        return take_batch(self.xp, self.xs, self.ys, self.sw, self._perm,
                          step * self.batch_size, self.batch_size)

    def close(self):
        pass


class StreamBatches:
    """The batches of a generator, an iterator or a PyDataset, each checked and moved to
    the device by ``adapt(raw_batch) -> (xs, ys, sw)``.

    ``steps`` batches make an epoch (a PyDataset's length when not given); without it a
    generator's epoch ends when it is exhausted. A generator given ``steps`` continues
    where the previous epoch stopped, as Keras's.
    """

    def __init__(self, source, adapt, steps=None, what="fit"):
        self.source, self.adapt, self.what = source, adapt, what
        self.dataset = source if isinstance(source, PyDataset) else None
        if self.dataset is not None:
            length = len(self.dataset)
            self.steps = length if not steps else min(steps, length)
            self._loader = _Loader(self.dataset)
        else:
            # a re-iterable (a DataLoader, any object with __iter__ but no __next__) starts a
            # fresh pass each epoch; a generator or iterator continues where it stopped
            self._reiterable = not hasattr(source, "__next__")
            length = len(source) if self._reiterable and hasattr(source, "__len__") else None
            self.steps = (min(steps, length) if length else steps) if steps else length
            self._iter = iter(source)
            self._loader = None
        self._kept = {}
        self._epochs = 0
        self._pending = []

    def prime(self):
        """Adapt the first batch now, so that a model built from its data exists before
        the first step (a generator's batch is kept and yielded first)."""
        if self.dataset is not None:
            if len(self.dataset):
                self.adapt(self.dataset[0])
            return self
        try:
            batch = next(self._iter)
        except StopIteration:
            raise ValueError(f"{self.what}: the data generator yielded no batch") from None
        self._pending.append(batch)
        self.adapt(batch)
        return self

    def epoch(self, rng=None):
        self._kept = {}
        if self.dataset is not None:
            if self._epochs:
                self.dataset.on_epoch_end()
            self._epochs += 1
            raw = self._loader.batches(self.steps)
        else:
            if self._reiterable and self._epochs and not self._pending:
                self._iter = iter(self.source)
            self._epochs += 1
            raw = self._raw()
        for step, batch in enumerate(raw):
            data = self.adapt(batch)
            self._kept[step] = data
            self._kept.pop(step - 256, None)  # what a non-finite report can still name
            yield data

    def _raw(self):
        step = 0
        while self.steps is None or step < self.steps:
            try:
                batch = self._pending.pop() if self._pending else next(self._iter)
            except StopIteration:
                if step == 0:
                    raise ValueError(f"{self.what}: the data generator is exhausted (it "
                                     "yielded no batch this epoch); give steps_per_epoch "
                                     "and a generator that loops, or a PyDataset") from None
                return
            yield batch
            step += 1

    def batch(self, step):
        return self._kept.get(step)

    def close(self):
        if self.dataset is not None:
            self.dataset.on_epoch_end()
            self._loader.close()


def unpack(batch):
    """``(x, y, sample_weight)`` from a batch a generator yields."""
    if isinstance(batch, tuple):
        if len(batch) == 1:
            return batch[0], None, None
        if len(batch) == 2:
            return batch[0], batch[1], None
        if len(batch) == 3:
            return batch
        raise ValueError(f"a batch is x, (x, y) or (x, y, sample_weight); got a tuple of "
                         f"{len(batch)}")
    return batch, None, None
