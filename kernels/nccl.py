"""Collectives on CuPy arrays: NCCL (``cupy.cuda.nccl``) between the GPUs of the ranks,
one GPU per process; CUDA-aware MPI where NCCL is missing; a host copy as the last resort.

NCCL calls are queued on CuPy's current stream, after the kernels that computed the
gradients and before the optimizer's, so they need no host wait: ``wait`` is a no-op and
stream order does the rest. The NCCL communicator is made once, from a unique id that rank 0
draws and MPI broadcasts. CuPy is imported here only, and only when a CuPy array arrives.
"""

__all__ = ["device_comm", "select_device"]


def select_device(world):
    """Make GPU ``local_rank % count`` this process's current device, so that a model built
    afterwards on backend "cuda" lives there (one process per GPU). Returns the index, or
    None where CuPy or a GPU is missing."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, no driver: the CPU path
        return None
    if count == 0:
        return None
    from xpnet import backend

    index = world.local_rank % count
    backend._CACHE.pop(("cuda", "None"), None)  # made on another device before this call
    backend.get_backend(f"cuda:{index}")  # GPU `index` becomes the current device
    return index


class NCCLComm:
    """In-place all-reduce and broadcast of CuPy arrays over NCCL."""

    def __init__(self, world):
        import cupy
        from cupy.cuda import nccl

        self.cupy, self.nccl, self.world = cupy, nccl, world
        self.rank, self.size = world.rank, world.size
        uid = nccl.get_unique_id() if world.rank == 0 else None
        uid = world.bcast_obj(uid)
        self.comm = nccl.NcclCommunicator(world.size, uid, world.rank)
        self._types = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32,
                       "float64": nccl.NCCL_FLOAT64, "int32": nccl.NCCL_INT32,
                       "int64": nccl.NCCL_INT64}
        self._ops = {"sum": nccl.NCCL_SUM, "max": nccl.NCCL_MAX, "min": nccl.NCCL_MIN}

    def _args(self, buf):
        if not buf.flags.c_contiguous:
            raise ValueError(f"xpnet.distributed: NCCL needs contiguous arrays, got strides "
                             f"{buf.strides}")
        kind = self._types.get(str(buf.dtype))
        if kind is None:
            raise TypeError(f"xpnet.distributed: NCCL cannot reduce dtype {buf.dtype}")
        return buf.data.ptr, buf.size, kind, self.cupy.cuda.get_current_stream().ptr

    def iallreduce(self, buf, op="sum"):
        ptr, n, kind, stream = self._args(buf)
        self.comm.allReduce(ptr, ptr, n, kind, self._ops[op], stream)
        return None

    def allreduce(self, buf, op="sum"):
        self.iallreduce(buf, op)
        return buf

    def bcast(self, buf, root=0):
        ptr, n, kind, stream = self._args(buf)
        self.comm.bcast(ptr, n, kind, root, stream)
        return buf

    def wait(self, requests, what="collective"):
        return None  # stream-ordered

    def progress(self, requests):
        return None


class StagedComm:
    """CuPy arrays through MPI: directly where MPI is CUDA-aware, else via a host copy."""

    def __init__(self, world, cuda_aware):
        import cupy

        self.cupy, self.world, self.direct = cupy, world, cuda_aware
        self.rank, self.size = world.rank, world.size

    def iallreduce(self, buf, op="sum"):
        self.allreduce(buf, op)
        return None

    def allreduce(self, buf, op="sum"):
        self.cupy.cuda.get_current_stream().synchronize()  # MPI does not know the stream
        if self.direct:
            return self.world.allreduce(buf, op)
        host = self.world.allreduce(self.cupy.asnumpy(buf), op)
        buf[...] = self.cupy.asarray(host)
        return buf

    def bcast(self, buf, root=0):
        self.cupy.cuda.get_current_stream().synchronize()
        if self.direct:
            return self.world.bcast(buf, root)
        buf[...] = self.cupy.asarray(self.world.bcast(self.cupy.asnumpy(buf), root))
        return buf

    def wait(self, requests, what="collective"):
        return None

    def progress(self, requests):
        return None


_DEVICE = {}


def device_comm(world):
    """The communicator for CuPy arrays (made on first use, collectively)."""
    comm = _DEVICE.get("comm")
    if comm is None:
        try:
            import cupy
            from cupy.cuda import nccl

            available = getattr(nccl, "available", True)
            # NCCL refuses two ranks on one GPU: more processes than GPUs go through MPI
            available = available and \
                world.local_size <= cupy.cuda.runtime.getDeviceCount()
        except ImportError:
            available = False
        # every rank must take the same path: agree on NCCL's availability first
        if world.size > 1:
            available = all(world.allgather_obj(bool(available)))
        comm = NCCLComm(world) if available else \
            StagedComm(world, getattr(world, "_cuda_aware", False))
        _DEVICE["comm"] = comm
    return comm
