"""xpnet's own CPU threads: the NumPy passes of a layer split the batch into chunks that
run side by side on the calling thread and a small team of daemon threads.

Why not the libraries' thread pools: OpenBLAS splits one product at a time (and gained
little from a second core on a convolution's products), and its idle threads spin for
about 0.1 s, so Numba's parallel loops and OpenBLAS took the same cores from each other (a
CNN step went from 16 to 30 ms with both on; benchmarks/RESULTS.md, "Convolutions"). Here
a layer's whole per-chunk pipeline (im2col, product, bias and ReLU) runs on one thread
with single-threaded BLAS, so the chunk stays in that core's caches, and waiting threads
yield the core to anyone who wants it, then sleep.

The team is used only inside :func:`using` (``fit``, ``evaluate`` and ``predict`` enter it
with BLAS limited to one thread); elsewhere everything runs on the calling thread and BLAS
keeps its own threads.
"""

import contextlib
import os
import threading

__all__ = ["available", "count", "using", "split", "run", "matmul", "matmuls"]

_LOCAL = threading.local()  # .threads: this thread's count inside using() (the team's are 1)


def available():
    """The CPU threads xpnet may use: ``$XPNET_CPU_THREADS``, else the cores this process
    may run on, capped by a container's CPU quota (cgroup v2 or v1)."""
    forced = os.environ.get("XPNET_CPU_THREADS")
    if forced:
        return max(1, int(forced))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpus()
    return max(1, min(cores, quota)) if quota else cores


def _cgroup_cpus(root="/sys/fs/cgroup"):
    """CPUs a cgroup quota allows (rounded up), or None without a quota."""
    def read(path):
        try:
            with open(os.path.join(root, path)) as f:
                return f.read().split()
        except (OSError, ValueError):
            return None

    limit = read("cpu.max")  # v2: "quota period" or "max period"
    if limit and len(limit) == 2 and limit[0] != "max":
        quota, period = int(limit[0]), int(limit[1])
    else:
        quota, period = read("cpu/cpu.cfs_quota_us"), read("cpu/cpu.cfs_period_us")  # v1
        if not quota or not period or int(quota[0]) <= 0:
            return None
        quota, period = int(quota[0]), int(period[0])
    return max(1, -(-quota // period)) if period > 0 else None


def count():
    """Threads the calling thread's next :func:`run` may use (1 outside :func:`using`, and
    on the team's own threads)."""
    return getattr(_LOCAL, "threads", 1)


# A thread that waits sleeps only after this many ``sched_yield`` calls (about 0.25 us
# each: 2 ms). On the virtual machines measured, a thread woken from sleep took 30-60 us
# to start, 200 us or more one time in twenty, and a CNN step has 10 parallel regions
# with up to a millisecond of serial work between them; PyTorch's OpenMP threads spin in
# the same way between regions. A yielding spin gives the core to any other process
# that wants it.
_SPINS = 8000
_SPIN = []


def _spin():
    """``spin_wait(flags, count, value, spins)`` (kernels/_cpu.py), or None where the C
    library has no ``sched_yield`` (then waiting threads sleep at once)."""
    if not _SPIN:
        import numpy as np

        from xpnet.kernels import _cpu

        try:
            _cpu.spin_wait(np.zeros(1, dtype=np.int64), 1, 0, 1)  # load or compile now
            _SPIN.append(_cpu.spin_wait)
        except Exception:  # noqa: BLE001 - any failure to link: no spinning
            _SPIN.append(None)
    return _SPIN[0]


class _Team:
    """Daemon threads that each run the current job once per :meth:`run`.

    A raw lock pair per thread hands the job over and back (12 us a round trip, against
    56 us through ``concurrent.futures``); before blocking on its lock, a waiting thread
    spins for up to ``_SPINS`` yields on a generation counter, so one that is needed again
    soon has not gone to sleep."""

    def __init__(self):
        self.job = None
        self.members = []
        self.busy = threading.Lock()  # one job at a time: other callers run theirs serially
        self.growing = threading.Lock()  # two threads entering using() at once
        self.generation = None  # [the current job's number]
        self.finished = None  # per member: the number of the last job it finished

    def grow(self, n):
        if n <= len(self.members):
            return
        with self.growing:
            self._grow(n)

    def _grow(self, n):
        import numpy as np

        wait = _spin()
        if self.generation is None:
            self.generation = np.zeros(1, dtype=np.int64)
        finished = np.zeros(n, dtype=np.int64)
        if self.finished is not None:
            finished[:len(self.finished)] = self.finished
        self.finished = finished
        while len(self.members) < n:
            start, done = threading.Lock(), threading.Lock()
            start.acquire()
            done.acquire()
            index = len(self.members)
            threading.Thread(target=self._serve, args=(index, start, done, wait),
                             daemon=True, name=f"xpnet-{index + 1}").start()
            self.members.append((start, done))

    def _serve(self, index, start, done, wait):
        seen = int(self.generation[0])
        while True:
            if wait is not None:
                wait(self.generation, 1, seen + 1, _SPINS)
            start.acquire()
            seen = int(self.generation[0])
            try:
                self.job()
            finally:
                self.finished[index] = seen
                done.release()

    def run(self, job, helpers):
        """``job()`` on the calling thread and on ``helpers`` members at once. The caller
        holds ``busy``. Returns only when every member it started has finished, even when
        the caller is interrupted (Ctrl-C) meanwhile: the members may still be writing into
        the caller's arrays, and a member whose ``done`` lock was left unclaimed would
        desynchronise the next job. A ``KeyboardInterrupt`` that arrives while waiting is
        raised after the wait."""
        self.job = job
        members = self.members[:helpers]
        self.generation[0] += 1
        started, interrupted = [], None
        try:
            for start, done in members:
                start.release()
                started.append(done)
            job()
        finally:
            wait = _SPIN[0]
            while started:
                try:
                    if wait is not None:
                        wait(self.finished, len(members), self.generation[0], _SPINS)
                    while started:
                        started[0].acquire()
                        started.pop(0)
                except BaseException as exc:  # noqa: B036 - raised below, after the wait
                    interrupted = interrupted or exc
            self.job = None
        if interrupted is not None:
            raise interrupted


_TEAM = _Team()


def _after_fork():
    """A forked child has none of the parent's threads: it starts a team of its own."""
    global _TEAM
    _TEAM = _Team()
    _LOCAL.threads = 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


@contextlib.contextmanager
def using(n):
    """A context in which the calling thread's :func:`run` calls split their work over
    ``n`` threads (the count is per thread: other threads are not affected)."""
    n = max(1, int(n))
    _TEAM.grow(n - 1)
    previous, _LOCAL.threads = count(), n
    try:
        yield
    finally:
        _LOCAL.threads = previous


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


# Chunks per thread: the threads take chunks from a shared queue until it is empty, so a
# thread that starts late (a sleeping thread takes 20-100 us to wake) or runs slower does
# less. With one chunk per thread, the caller waited for the other 1.9 ms of a 15 ms step.
_CHUNKS_PER_THREAD = 2


def run(fn, total, min_chunk=1):
    """``[fn(start, stop), ...]`` over contiguous chunks of ``range(total)`` (at least
    ``min_chunk`` items each), in chunk order. The calling thread and the team's threads
    take chunks until none are left; the first exception (by chunk) is raised once every
    thread has stopped, so none still writes into the caller's arrays. Outside
    :func:`using`, on a team thread, or while another thread's call holds the team, it is
    one call ``[fn(0, total)]`` on the calling thread."""
    per = max(1, min_chunk)
    threads = min(count(), max(1, total // per))
    team = _TEAM
    if threads == 1 or not team.busy.acquire(blocking=False):  # busy: a nested call
        return [fn(0, total)]
    try:
        bounds = split(total, min(threads * _CHUNKS_PER_THREAD, max(1, total // per)))
        results, errors = [None] * len(bounds), []
        queue, lock = iter(range(len(bounds))), threading.Lock()

        def drain():
            while True:
                with lock:
                    k = next(queue, None)
                if k is None:
                    return
                try:
                    results[k] = fn(*bounds[k])
                except BaseException as exc:  # noqa: B036 - re-raised below, in the caller
                    errors.append((k, exc))
                    return

        team.run(drain, threads - 1)
    finally:
        team.busy.release()
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return results


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
