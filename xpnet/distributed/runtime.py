"""What a data-parallel ``fit``/``evaluate`` does differently, in one object that the
training loop calls at a handful of points (each marked ``# distributed:`` there).

- ``prepare(model)``: rank 0's weights and shuffle seed to every rank; per-rank dropout
  streams derived from rank 0's; the gradient buckets and the backward hook.
- ``take(...)``: this rank's shard of a global batch. Global batch ``b`` of ``B`` samples is
  cut into ``N`` contiguous pieces of ``B // N`` or ``B // N + 1`` (the first ``B % N`` ranks
  take one more), from the permutation every rank draws from the same seed, the last uneven
  batch included. A rank left with no sample takes one with sample weight 0.
- ``scale(dys)``: the loss gradient times ``b_r / B``, so the sum over the ranks of their
  gradients is the gradient of the global batch's mean loss, exactly.
- ``reduce_gradients(model)``: the rest of the buckets, and the wait, before the optimizer.
- ``read_logs(...)``: losses and metrics summed over the ranks (total and count) first.
- ``callbacks(...)``, ``chief_only(...)``: rank 0 alone prints and writes, then a barrier.
"""

import array
import functools
import math
import weakref

from xpnet.distributed.buckets import GradBuckets
from xpnet.distributed.comm import DistributedError

__all__ = ["Runtime"]

# Callbacks that print or write files of their own (and their subclasses): rank 0 runs them,
# the others drop them.
_CHIEF_ONLY = ("ProgbarLogger", "CSVLogger", "TensorBoard")


class Runtime:
    """The per-process side of :class:`xpnet.distributed.DataParallel`."""

    def __init__(self, world, bucket_bytes=4 << 20):
        self.world, self.rank, self.size = world, world.rank, world.size
        self.is_chief = self.rank == 0
        self.bucket_bytes = int(bucket_bytes)
        self.local_count, self.global_count = 1, 1
        self._buckets = weakref.WeakKeyDictionary()  # model -> GradBuckets
        self.armed = False  # True between a step's loss gradient and its all-reduce

    # -- communicators ----------------------------------------------------------------------
    def comm_for(self, a):
        """MPI for NumPy arrays, NCCL (or CUDA-aware/staged MPI) for CuPy arrays."""
        module = type(a).__module__.split(".")[0]
        if module == "numpy":
            return self.world
        if module == "cupy":
            from xpnet.distributed.nccl import device_comm

            return device_comm(self.world)
        raise TypeError(f"xpnet.distributed: data parallelism runs on the 'cpu' and 'cuda' "
                        f"backends, got an array of {type(a).__module__}.{type(a).__name__}")

    def allreduce(self, a):
        """Sum ``a`` over the ranks, in place (a fresh contiguous array of the backend)."""
        return self.comm_for(a).allreduce(a)

    def agree(self, flag, op="max", what="agreeing whether to stop"):
        """A Python bool or number agreed by every rank: ``max`` is "any", ``min`` "all"."""
        buf = array.array("d", [float(flag)])
        self.world.allreduce(buf, op, what)
        return buf[0]

    # -- start of fit / evaluate -------------------------------------------------------------
    def prepare(self, model):
        """Rank 0's weights and random states to every rank; the backward hook."""
        for layer in model._all_layers():
            for w in layer.params.values():
                self.comm_for(w).bcast(w)
        if model._rng is not None:
            model._rng.set_state(self.world.bcast_obj(model._rng.get_state()))
        self._seed_layers(model)
        self._hook(model)
        model._dist_prepared = self

    def _seed_layers(self, model):
        """Dropout and noise layers draw different masks on every rank, from streams derived
        from rank 0's (rank 0 keeps its own), so a run repeats with the same seed and N."""
        if getattr(model, "_dist_seeded", None) == self.size:
            return
        # a model's own _rng is its fit's shuffle, which every rank must share
        layers = [la for la in model._all_layers()
                  if la._rng is not None and not hasattr(la, "fit")]
        states = self.world.bcast_obj([la._rng.get_state() for la in layers])
        for la, state in zip(layers, states):
            la._rng.set_state(state if self.is_chief else
                              {"kind": "rank", "base": state, "rank": self.rank})
        model._dist_seeded = self.size

    def _hook(self, model):
        """The model's gradient buckets, and (graph models) the backward hook that starts
        them; a model without a flat buffer reduces weight by weight."""
        flat = model._flat
        model._grad_ready = None
        if flat is None or not flat.valid():
            self._buckets.pop(model, None)
            return
        entry = self._buckets.get(model)
        if entry is None or entry.flat is not flat:
            entry = self._buckets[model] = GradBuckets(model, self.comm_for, self.bucket_bytes)
        if getattr(model, "_graph", None) is not None:
            model._grad_ready = functools.partial(self._ready, entry)

    def _ready(self, buckets, done):
        """The backward hook: start the buckets that are final (only inside a step of a
        distributed fit; a custom loop's backward passes are left alone)."""
        if self.armed:
            buckets.ready(done)

    # -- one step ------------------------------------------------------------------------------
    def take(self, model, xp, xs, ys, sw, perm, start, batch_size, n, take_batch):
        """This rank's shard of the global batch ``[start, start + batch_size)``."""
        size = min(batch_size, n - start)
        base, extra = divmod(size, self.size)
        count = base + (self.rank < extra)
        lo = start + self.rank * base + min(self.rank, extra)
        self.local_count, self.global_count = count, size
        if count:
            return take_batch(xp, xs, ys, sw, perm, lo, count)
        bx, by, bw = take_batch(xp, xs, ys, sw, perm, start, 1)  # a stand-in, weighted 0
        zero = xp.zeros((1,), dtype=getattr(xp, model.dtype), device=model.backend.device)
        return bx, by, zero

    def on_batch(self, model, xs, ys, sw, take_batch):
        """This rank's shard of one whole global batch (``train_on_batch``,
        ``test_on_batch``); rank 0's weights everywhere before the first."""
        if getattr(model, "_dist_prepared", None) is not self:
            self.prepare(model)
        n = xs[0].shape[0]
        return self.take(model, model.backend.xp, xs, ys, sw, None, 0, n, n, take_batch)

    def scale(self, dys):
        """The loss gradients of this shard's mean times ``b_r / B``."""
        self.armed = True
        f = self.local_count / self.global_count
        return [d if d is None or f == 1.0 else d * f for d in dys]

    def reduce_gradients(self, model):
        """Sum the gradients over the ranks, in place, before the optimizer step."""
        self.armed = False
        buckets = self._buckets.get(model)
        if buckets is not None and buckets.flat is model._flat:
            buckets.check()
            buckets.finish()
            return
        for la, k in model.trainable_pairs():  # no flat buffer: weight by weight
            self.allreduce(la.grads[k])

    def sync_weight(self):
        """1.0, or 0.0 on a rank whose shard is a zero-weighted stand-in."""
        return 1.0 if self.local_count else 0.0

    # -- logs and callbacks ----------------------------------------------------------------------
    def read_logs(self, names, metrics):
        """Every metric as a float over all ranks' samples: totals and counts summed."""
        buf = array.array("d")
        for m in metrics:
            if not (hasattr(m, "total") and hasattr(m, "count")):
                raise DistributedError(f"xpnet.distributed: metric {m.name!r} "
                                       f"({type(m).__name__}) has no total/count to reduce")
            buf.extend((float(m.total), float(m.count)))
        self.world.allreduce(buf, "sum", "reducing the metrics")
        return {name: buf[2 * i] / buf[2 * i + 1] if buf[2 * i + 1] else 0.0
                for i, name in enumerate(names)}

    def callbacks(self, cbs):
        """The callbacks this rank runs: all on rank 0; the others drop the printing and
        writing ones (saving goes through :meth:`chief_only`)."""
        if self.is_chief:
            return cbs
        return [cb for cb in cbs
                if not any(k.__name__ in _CHIEF_ONLY for k in type(cb).__mro__)]

    def chief_only(self, fn, *args, **kwargs):
        """Run ``fn`` on rank 0; every rank waits for it (a barrier) before going on."""
        result = fn(*args, **kwargs) if self.is_chief else None
        self.world.barrier()
        return result

    def all_finite(self, loss):
        return self.agree(math.isfinite(float(loss)), "min", "agreeing the loss is finite") > 0
