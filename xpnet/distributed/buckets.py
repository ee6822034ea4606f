"""Gradient buckets: slices of a model's flat gradient buffers, each all-reduced as soon as
the backward pass has finished every gradient in it.

``FlatParams`` packs the trainable weights in the order of the model's layers, and the
backward pass visits the layers in reverse, so the buffer fills from its end: the last
layers' bucket is final first, and its all-reduce runs while the earlier layers are still
differentiating (as Horovod's tensor fusion and PyTorch DDP's buckets do).
"""

from xpnet.distributed.comm import DistributedError

__all__ = ["GradBuckets"]


def _leaves(layer):
    """The layer and every layer it holds (a nested model's, an RNN's cell)."""
    return layer._all_layers() if hasattr(layer, "_all_layers") else [layer]


def _final_position(model):
    """For each leaf layer (by id), the number of reverse-order backward steps after which
    its gradients are final: a layer used by several graph nodes is final after the node
    that comes first in the forward order."""
    steps = getattr(model, "_graph", None) or []  # a call-based model: all at the end
    final = {}
    for i, step in enumerate(steps):
        for leaf in _leaves(step.layer):
            final[id(leaf)] = max(final.get(id(leaf), 0), len(steps) - i)
    return final, len(steps)


class GradBuckets:
    """The buckets of one model's flat gradient buffers, and the requests in flight.

    Parameters
    ----------
    model : xpnet.Model
        Compiled, with ``model._flat`` (one flat gradient buffer per dtype).
    comm_for : callable
        The communicator for an array (MPI for NumPy, NCCL for CuPy).
    bucket_bytes : int
        A bucket closes once it holds at least this many bytes (a weight is never split);
        buckets are cut from the end of the buffer, where the backward pass starts.
    """

    def __init__(self, model, comm_for, bucket_bytes):
        self.name, self.flat, self.comm_for = model.name, model._flat, comm_for
        final, n_steps = _final_position(model)
        self.buckets = []  # (ready after this many reverse steps, view of the flat buffer)
        for (flat_g, _), (_, entries) in zip(self.flat.groups, self.flat.layout):
            # filled from the buffer's end, the order in which the gradients become final
            itemsize = flat_g.dtype.itemsize
            hi, ready = flat_g.shape[0], 0
            for la, _, offset, _, _ in reversed(entries):
                ready = max(ready, final.get(id(la), n_steps))
                if (hi - offset) * itemsize >= bucket_bytes or offset == 0:
                    self.buckets.append((ready, flat_g[offset:hi]))
                    hi, ready = offset, 0
        self.buckets.sort(key=lambda b: b[0])
        self.bytes = sum(b[1].shape[0] * b[1].dtype.itemsize for b in self.buckets)
        self._next, self._requests = 0, []
        self.started_in_backward = 0  # over the last step: buckets started before finish

    def ready(self, done):
        """The backward pass has finished ``done`` reverse steps: start every bucket that is
        now final, and let MPI progress the ones in flight."""
        if self._requests:
            self._requests[0][0].progress([r for _, r in self._requests])
        while self._next < len(self.buckets) and self.buckets[self._next][0] <= done:
            view = self.buckets[self._next][1]
            comm = self.comm_for(view)
            if not self._requests and hasattr(comm, "start_progress"):
                comm.start_progress()
            self._requests.append((comm, comm.iallreduce(view)))
            self._next += 1

    def finish(self):
        """Start what is left, then wait for every bucket; the buffers hold the sums."""
        self.started_in_backward = self._next
        self.ready(float("inf"))
        by_comm = {}
        for comm, request in self._requests:
            by_comm.setdefault(id(comm), (comm, []))[1].append(request)
        for comm, requests in by_comm.values():
            comm.wait(requests, "the gradient all-reduce")
            if hasattr(comm, "stop_progress"):
                comm.stop_progress()
        self._next, self._requests = 0, []

    def check(self):
        if not self.flat.valid():
            raise DistributedError(f"{self.name}: the flat gradient buffers changed "
                                   "after compile; compile again")
