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
import copy
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
            from xpnet.kernels.nccl import device_comm

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
        custom = getattr(model, "_custom", lambda name: False)
        for step in ("train_step", "test_step"):
            if custom(step):
                raise NotImplementedError(
                    f"{model.name}: a data-parallel fit/evaluate does not support an "
                    f"overridden {step} yet (its gradients and metrics would not be reduced "
                    "over the processes)")
        for layer in model._all_layers():
            for w in layer.params.values():
                self.comm_for(w).bcast(w)
        state = model.get_fit_rng_state()
        if state is not None:  # one shuffle for every rank: rank 0's
            model.set_fit_rng_state(self.world.bcast_obj(state))
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
        """Every metric as a float over all ranks' samples: each metric's state (totals and
        counts, confusion counts, sums: whatever its ``reset_state`` sets) summed over the
        ranks, then its ``result()``."""
        return {name: float(self.reduced(m).result()) for name, m in zip(names, metrics)}

    def reduced(self, metric):
        """A copy of ``metric`` whose state is the sum of every rank's (metrics accumulate
        sums, so the sum of the states is the state of the whole data). Scalars (Python
        numbers and 0-d arrays) go in one all-reduce; arrays one each."""
        names = _state_names(metric)
        state = {k: getattr(metric, k, None) for k in names}
        signatures = self.world.allgather_obj(_signature(state))
        if any(sig != signatures[0] for sig in signatures):
            raise DistributedError(f"xpnet.distributed: metric {metric.name!r} has state of "
                                   f"different structure on different ranks: {signatures}")
        scalars = []
        _leaves(state, scalars, lambda v: _is_scalar(v))
        buf = array.array("d", [float(v) for v in scalars])
        if scalars:
            self.world.allreduce(buf, "sum", f"reducing metric {metric.name!r}")
        sums = iter(buf)
        clone = copy.copy(metric)
        for k in names:
            setattr(clone, k, self._rebuild(state[k], sums))
        return clone

    def _rebuild(self, value, sums):
        if isinstance(value, dict):
            return {k: self._rebuild(value[k], sums) for k in value}
        if isinstance(value, (list, tuple)):
            return type(value)(self._rebuild(v, sums) for v in value)
        if _is_scalar(value):
            total = next(sums)
            if isinstance(value, (int, float)):
                return type(value)(total)
            from xpnet.backend import namespace

            xp = namespace(value)
            return xp.asarray(total, dtype=value.dtype, device=value.device)
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            from xpnet.backend import namespace

            total = namespace(value).asarray(value, copy=True)
            return self.comm_for(total).allreduce(total)
        return value  # None, strings, flags: not state that sums

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


_STATE_NAMES = {}


def _state_names(metric):
    """The attributes a metric's ``reset_state`` assigns: its state (cached per class)."""
    cls = type(metric)
    names = _STATE_NAMES.get(cls)
    if names is None:
        seen = []

        class Probe(cls):
            def __setattr__(self, key, value):
                seen.append(key)
                object.__setattr__(self, key, value)

        probe = object.__new__(Probe)
        probe.__dict__.update(metric.__dict__)
        Probe.reset_state(probe)
        names = _STATE_NAMES[cls] = sorted(set(seen))
    return names


def _is_scalar(value):
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float)) or \
        (hasattr(value, "shape") and hasattr(value, "dtype") and len(value.shape) == 0)


def _leaves(value, out, keep):
    """The leaves of a state (dicts in insertion order, lists) for which ``keep`` holds."""
    if isinstance(value, dict):
        for v in value.values():
            _leaves(v, out, keep)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _leaves(v, out, keep)
    elif keep(value):
        out.append(value)


def _signature(value):
    """The structure of a metric state (scalars, array shapes), to check that ranks agree."""
    if isinstance(value, dict):
        return {k: _signature(value[k]) for k in value}
    if isinstance(value, (list, tuple)):
        return [_signature(v) for v in value]
    if _is_scalar(value):
        return "scalar"
    if hasattr(value, "shape"):
        return ("array", tuple(value.shape), str(value.dtype))
    return type(value).__name__
