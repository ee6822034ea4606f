"""The processes of a data-parallel run and the collectives between them, over MPI.

``world()`` is the communicator of the processes ``mpiexec`` started: one process alone
(:class:`LocalComm`) without ``mpiexec`` or without mpi4py, else :class:`MPIComm` on
``MPI.COMM_WORLD`` (MPI is initialised only under a launcher). Every wait polls the request
(``Test``) instead of blocking inside MPI, so Ctrl-C reaches Python, a peer that died on this
host is noticed within ``_LIVENESS_EVERY`` seconds, and a collective that does not complete
within ``$XPNET_DIST_TIMEOUT`` seconds raises :class:`DistributedError` naming the ranks that
did not arrive, instead of hanging.

Arrays of the CPU backend (NumPy) go through mpi4py's buffer interface; CuPy arrays go
through NCCL (:mod:`xpnet.kernels.nccl`) when it is present, else through MPI when it is
CUDA-aware, else through a host copy. No NumPy import: mpi4py takes any buffer.
"""

import os
import socket
import sys
import threading
import time

__all__ = ["DistributedError", "LocalComm", "MPIComm", "world", "launched_by_mpi"]

_LIVENESS_EVERY = 0.5  # seconds between checks that the peers on this host are alive
_SPIN = 2e-4  # seconds of busy polling before a wait starts sleeping between tests


class DistributedError(RuntimeError):
    """A collective failed: a process died, raised, or did not arrive in time."""


def launched_by_mpi():
    """The number of processes the launcher says it started (1 when not under a launcher:
    MPICH/Intel MPI set PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE, MVAPICH MV2_COMM_WORLD_SIZE;
    ``$XPNET_MPI=1`` makes :func:`world` initialise MPI under any other launcher)."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


class LocalComm:
    """One process: every collective is the identity."""

    rank, size, local_rank, local_size = 0, 1, 0, 1

    def iallreduce(self, buf):
        return None

    def wait(self, requests, what="collective"):
        return None

    def progress(self, requests):
        return None

    def start_progress(self):
        return None

    def stop_progress(self):
        return None

    def allreduce(self, buf, op="sum", what=None):
        return buf

    def bcast(self, buf, root=0):
        return buf

    def bcast_obj(self, obj, root=0):
        return obj

    def allgather_obj(self, obj):
        return [obj]

    def barrier(self):
        return None

    def abort(self, code=1):
        os._exit(code)


class MPIComm:
    """``MPI.COMM_WORLD`` through mpi4py, with polled waits (see the module docstring)."""

    def __init__(self, MPI):
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.side = self.comm.Dup()  # for fault notices, apart from the collectives
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = float(os.environ.get("XPNET_DIST_TIMEOUT", "600"))
        host = socket.gethostname()
        self.peers = self.comm.allgather((host, os.getpid()))
        same = [r for r, (h, _) in enumerate(self.peers) if h == host]
        self.local_rank, self.local_size = same.index(self.rank), len(same)
        self._local_peers = [(r, pid) for r, (h, pid) in enumerate(self.peers)
                             if h == host and r != self.rank]
        self._ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}
        self._cuda_aware = _cuda_aware(MPI)
        us = os.environ.get("XPNET_DIST_PROGRESS_US")
        multiple = MPI.Query_thread() == MPI.THREAD_MULTIPLE  # two threads calling MPI
        self._progress_us = float(us) if us and multiple else None
        self._progress = None

    # -- waiting ---------------------------------------------------------------------------
    def wait(self, requests, what="collective"):
        """Wait for ``requests`` by polling, so that faults and Ctrl-C are seen."""
        requests = [r for r in requests if r is not None]
        if not requests:
            return
        if self.MPI.Request.Testall(requests):
            return
        start = last_check = time.perf_counter()
        while not self.MPI.Request.Testall(requests):
            now = time.perf_counter()
            if now - start > _SPIN:
                time.sleep(5e-5)
            if now - last_check > _LIVENESS_EVERY:
                last_check = now
                self._check_peers(what)
                if now - start > self.timeout:
                    missing = self._missing()
                    raise DistributedError(
                        f"xpnet.distributed: rank {self.rank} waited {self.timeout:.0f} s "
                        f"(XPNET_DIST_TIMEOUT) in {what}; rank(s) {missing} did not arrive: "
                        "hung, or running different code")

    def _missing(self, grace=2.0):
        """The ranks that are not waiting too: every rank that times out tells the others
        on a side communicator, and the ones not heard from within ``grace`` s are named."""
        tag = 7177
        for r in range(self.size):
            if r != self.rank:
                self.side.isend(self.rank, dest=r, tag=tag)
        heard, status = {self.rank}, self.MPI.Status()
        deadline = time.perf_counter() + grace
        while time.perf_counter() < deadline and len(heard) < self.size:
            while self.side.Iprobe(source=self.MPI.ANY_SOURCE, tag=tag, status=status):
                heard.add(self.side.recv(source=status.Get_source(), tag=tag))
            time.sleep(0.01)
        return sorted(set(range(self.size)) - heard)

    def _check_peers(self, what):
        for r, pid in self._local_peers:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise DistributedError(
                    f"xpnet.distributed: rank {r} (pid {pid}) died; rank {self.rank} stops "
                    f"instead of waiting in {what}") from None
            except PermissionError:
                pass

    def progress(self, requests):
        """Let MPI move the requests in flight along (it has no progress thread)."""
        requests = [r for r in requests if r is not None]
        if requests:
            self.MPI.Request.Testall(requests)

    def start_progress(self):
        """Until :meth:`stop_progress`, a thread enters MPI's progress engine every
        ``$XPNET_DIST_PROGRESS_US`` microseconds (an ``Iprobe`` on the side communicator,
        which touches no request of the main thread), so that buckets in flight advance while
        the backward pass computes. Off unless that variable is set."""
        if self._progress_us is None or self._progress is not None:
            return
        stop = threading.Event()
        period = self._progress_us * 1e-6

        def run():
            while not stop.wait(period):
                self.side.Iprobe(source=self.MPI.ANY_SOURCE, tag=7178)

        thread = threading.Thread(target=run, name="xpnet-mpi-progress", daemon=True)
        thread.start()
        self._progress = (stop, thread)

    def stop_progress(self):
        if self._progress is not None:
            stop, thread = self._progress
            stop.set()
            thread.join()
            self._progress = None

    # -- collectives on arrays -------------------------------------------------------------
    def iallreduce(self, buf, op="sum"):
        """Start an in-place sum over the ranks; ``wait`` on what it returns."""
        return self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self._ops[op])

    def allreduce(self, buf, op="sum", what=None):
        """Sum (or max/min) ``buf`` over the ranks, in place; returns ``buf``."""
        self.wait([self.iallreduce(buf, op)], what or f"an all-reduce ({op})")
        return buf

    def bcast(self, buf, root=0):
        """Overwrite ``buf`` with the root's, in place."""
        self.wait([self.comm.Ibcast(buf, root=root)], "broadcast")
        return buf

    # -- collectives on Python objects (small) ---------------------------------------------
    def bcast_obj(self, obj, root=0):
        self.barrier()
        return self.comm.bcast(obj, root=root)

    def allgather_obj(self, obj):
        self.barrier()
        return self.comm.allgather(obj)

    def barrier(self):
        self.wait([self.comm.Ibarrier()], "barrier")

    def abort(self, code=1):
        self.comm.Abort(code)


def _cuda_aware(MPI):
    """Whether MPI takes GPU buffers: ``$XPNET_MPI_CUDA_AWARE`` (0/1) if set, else the MPI
    library's own ``MPIX_Query_cuda_support()`` (Open MPI, MPICH >= 4), which mpi4py does not
    wrap: looked up in the libmpi this process has loaded."""
    forced = os.environ.get("XPNET_MPI_CUDA_AWARE")
    if forced is not None:
        return forced.strip() not in ("", "0", "false", "no")
    try:
        import ctypes

        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "libmpi" in line})
        for lib in libs:
            query = getattr(ctypes.CDLL(lib), "MPIX_Query_cuda_support", None)
            if query is not None:
                return bool(query())
    except OSError:  # not Linux, or the library cannot be opened again
        pass
    return False


_WORLD = []


def world():
    """The communicator of this run (made once): MPI under a launcher, else one process."""
    if _WORLD:
        return _WORLD[0]
    n = launched_by_mpi()
    if n <= 1 and os.environ.get("XPNET_MPI", "") in ("", "0"):
        _WORLD.append(LocalComm())  # no launcher: one process, and MPI is not initialised
        return _WORLD[0]
    try:
        from mpi4py import MPI
    except ImportError:
        if n > 1:
            raise DistributedError(
                f"xpnet.distributed: the launcher started {n} processes but mpi4py is not "
                "installed; pip install 'xpnet[mpi]'") from None
        _WORLD.append(LocalComm())
        return _WORLD[0]
    comm = MPIComm(MPI)
    _WORLD.append(comm if comm.size > 1 else LocalComm())
    if comm.size > 1:
        _install_fault_handler(comm)
    return _WORLD[0]


def _install_fault_handler(comm):
    """An uncaught exception (Ctrl-C included) on any rank names the rank and aborts the
    whole job, so that no other rank waits forever in a collective."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        # the one line first: another rank's abort may end this process mid-traceback
        reason = "was interrupted" if issubclass(kind, KeyboardInterrupt) else \
            f"failed with {kind.__name__}: {value}"
        sys.stderr.write(f"xpnet.distributed: rank {comm.rank} of {comm.size} {reason}; "
                         "aborting every rank\n")
        sys.stderr.flush()
        previous(kind, value, tb)
        sys.stderr.flush()
        comm.abort(1)

    sys.excepthook = hook
