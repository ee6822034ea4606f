"""xpnet's own CPU threads: the NumPy passes of a layer split the batch into chunks that
run side by side, one on the calling thread and the rest on a small persistent pool.

Why not the libraries' thread pools: OpenBLAS splits one product at a time and its idle
threads spin for about 0.1 s, so Numba's parallel loops and OpenBLAS took the same cores
from each other (a CNN step went from 16 to 30 ms with both on; benchmarks/RESULTS.md,
"Convolutions"). Here a layer's whole per-chunk pipeline (im2col, product, bias and ReLU)
runs on one thread with single-threaded BLAS, the chunks of a thread stay in its caches,
and idle pool threads block instead of spinning, so a busy machine slows a step down
instead of stalling it.

The pool is used only inside :func:`using` (``fit``, ``evaluate`` and ``predict`` enter it
with BLAS limited to one thread); elsewhere everything runs on the calling thread and BLAS
keeps its own threads.
"""

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["available", "count", "using", "split", "run", "matmul", "matmuls"]

_STATE = {"threads": 1, "pool": None, "size": 0}
_LOCAL = threading.local()  # marks the pool's own threads: they never submit to it


def available():
    """The CPU threads xpnet may use: ``$XPNET_CPU_THREADS``, else the cores this process
    may run on."""
    forced = os.environ.get("XPNET_CPU_THREADS")
    if forced:
        return max(1, int(forced))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def count():
    """Threads the next :func:`run` may use (1 outside :func:`using`)."""
    return 1 if getattr(_LOCAL, "worker", False) else _STATE["threads"]


def _mark_worker():
    _LOCAL.worker = True


@contextlib.contextmanager
def using(n):
    """A context in which :func:`run` splits its work over ``n`` threads."""
    n = max(1, int(n))
    if n > 1 and _STATE["size"] < n - 1:
        if _STATE["pool"] is not None:
            _STATE["pool"].shutdown(wait=True)
        _STATE["pool"] = ThreadPoolExecutor(n - 1, thread_name_prefix="xpnet",
                                            initializer=_mark_worker)
        _STATE["size"] = n - 1
    previous, _STATE["threads"] = _STATE["threads"], n
    try:
        yield
    finally:
        _STATE["threads"] = previous


def split(total, parts):
    """``parts`` contiguous (start, stop) ranges covering ``range(total)``, sizes differing by
    at most one; fewer when ``total < parts``."""
    parts = max(1, min(parts, total))
    step, extra = divmod(total, parts)
    bounds, start = [], 0
    for i in range(parts):
        stop = start + step + (i < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def run(fn, total, min_chunk=1):
    """``[fn(start, stop), ...]`` over contiguous chunks of ``range(total)``, one chunk per
    thread (chunks of at least ``min_chunk`` items); the first chunk runs on the calling
    thread. Results come back in chunk order; the first exception is raised after every
    chunk has finished (so no thread still writes into the caller's arrays)."""
    threads = min(count(), max(1, total // max(1, min_chunk)))
    bounds = split(total, threads)
    if len(bounds) == 1:
        return [fn(0, total)]
    futures = [_STATE["pool"].submit(fn, *b) for b in bounds[1:]]
    try:
        first = fn(*bounds[0])
    finally:
        for f in futures:  # wait for all, even when the first chunk failed
            f.exception()
    return [first] + [f.result() for f in futures]


# Products below this many multiply-adds stay whole: each thread packs its own copy of the
# shared operand, and at 64x1600x128 (a CNN's dense layer) halves took as long as the whole.
_MATMUL_MIN_MACS = 3e7
_MATMUL_MIN_ROWS = 64


def matmul(a, b, out=None):
    """``a @ b`` for 2-D NumPy arrays, split over the threads by rows of ``a`` (or columns of
    ``b`` when ``a`` has few rows); one BLAS call per thread."""
    m, k = a.shape
    n = b.shape[1]
    threads = count()
    if threads == 1 or m * n * k < _MATMUL_MIN_MACS:
        if out is None:
            return a @ b
        return _matmul_into(a, b, out)
    import numpy as np

    if out is None:
        out = np.empty((m, n), dtype=np.result_type(a, b))
    if m >= threads * _MATMUL_MIN_ROWS or m >= n:
        run(lambda i, j: _matmul_into(a[i:j], b, out[i:j]), m)
    else:
        run(lambda i, j: _matmul_into(a, b[:, i:j], out[:, i:j]), n)
    return out


def _matmul_into(a, b, out):
    import numpy as np

    np.matmul(a, b, out=out)
    return out


def matmuls(pairs):
    """``[a @ b for a, b in pairs]`` for independent 2-D NumPy products (a layer's kernel and
    input gradients): side by side, one per thread, when there are threads to spare and
    the products are large enough; else one after the other, each split as
    :func:`matmul` splits it."""
    macs = sum(a.shape[0] * a.shape[1] * b.shape[1] for a, b in pairs)
    if count() > 1 and len(pairs) > 1 and macs >= _PAIR_MIN_MACS:
        return [r for part in run(lambda i, j: [a @ b for a, b in pairs[i:j]], len(pairs))
                for r in part]
    return [matmul(a, b) for a, b in pairs]


# Two products side by side pay off from about this size (a 64x1600x128 pair: 0.75 ms one
# after the other, 0.45 ms side by side).
_PAIR_MIN_MACS = 4e6
