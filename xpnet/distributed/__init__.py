"""Data-parallel training over MPI and NCCL, with Keras 3's distribution API.

Launch one process per CPU core group or per GPU with the standard launcher::

    mpiexec -n 4 python train.py

and in ``train.py`` set the distribution before building the model::

    from xpnet import keras
    keras.distribution.set_distribution(keras.distribution.DataParallel())

``fit``/``evaluate`` then split every global batch (``batch_size``) across the processes,
sum the gradients over them, and apply the same optimizer step everywhere, so N processes
follow the trajectory of one process with that batch. Without a launcher (or with
``mpiexec -n 1``) everything runs as one process, unchanged. See
:mod:`xpnet.distributed.runtime` for what each rank does.
"""

import contextlib
import os

from xpnet.distributed.comm import DistributedError
from xpnet.distributed.comm import world

__all__ = ["list_devices", "initialize", "DeviceMesh", "TensorLayout", "Distribution",
           "DataParallel", "set_distribution", "distribution", "active", "process_id",
           "num_processes", "DistributedError"]

DEFAULT_BATCH_DIM_NAME = "batch"
_STATE = {"distribution": None}


def num_processes():
    """The number of processes of this run (1 without a launcher)."""
    return world().size


def process_id():
    """This process's rank, from 0."""
    return world().rank


def list_devices(device_type=None):
    """The devices of the whole run, one per process: ``"gpu:<rank>"`` where the processes
    drive GPUs (CuPy sees one), else ``"cpu:<rank>"``, as Keras names them.

    Parameters
    ----------
    device_type : {"cpu", "gpu"}, default=None
        None picks "gpu" where CuPy sees a GPU, else "cpu".
    """
    if device_type is not None and str(device_type).lower() not in ("cpu", "gpu", "cuda"):
        raise ValueError(f"list_devices: device_type must be 'cpu' or 'gpu', "
                         f"got {device_type!r}")
    kind = "gpu" if str(device_type).lower() in ("gpu", "cuda") else "cpu"
    if device_type is None:
        from xpnet.backend import _cuda_usable

        kind = "gpu" if _cuda_usable() else "cpu"
    return [f"{kind}:{r}" for r in range(world().size)]


def initialize(job_addresses=None, num_processes=None, process_id=None):
    """Start the communicator (``mpiexec`` already told every process who it is); checks
    ``num_processes`` and ``process_id`` against it when given, as Keras's ``initialize``.
    With CuPy and GPUs, each process takes GPU ``local rank % GPU count`` as its current
    device, before any model is built; the processes on one host share its cores
    (``$XPNET_CPU_THREADS`` = cores / processes on the host, unless already set)."""
    comm = world()
    if num_processes is not None and int(num_processes) != comm.size:
        raise ValueError(f"initialize: num_processes={num_processes}, but the launcher "
                         f"started {comm.size}")
    if process_id is not None and int(process_id) != comm.rank:
        raise ValueError(f"initialize: process_id={process_id}, but this process has rank "
                         f"{comm.rank}")
    if comm.size > 1 and os.environ.get("XPNET_BACKEND", "auto") in ("auto", "cuda", "gpu"):
        from xpnet.kernels.nccl import select_device

        select_device(comm)
    if comm.local_size > 1 and not os.environ.get("XPNET_CPU_THREADS"):
        # the processes on one host share its cores instead of each taking all of them
        from xpnet.kernels import threads

        share = max(1, threads.available() // comm.local_size)
        os.environ["XPNET_CPU_THREADS"] = str(share)
    return comm


class DeviceMesh:
    """The devices of the run arranged in a grid with named axes (Keras 3).

    Parameters
    ----------
    shape : tuple of int
        ``(N,)`` for data parallelism over N processes.
    axis_names : list of str
        One name per axis of ``shape``, e.g. ``["batch"]``.
    devices : list of str, default=None
        Defaults to :func:`list_devices`.
    """

    def __init__(self, shape, axis_names, devices=None):
        if not shape or not axis_names:
            raise ValueError(f"DeviceMesh: shape and axis_names cannot be empty. Received: "
                             f"shape={shape}, axis_names={axis_names}")
        if len(shape) != len(axis_names):
            raise ValueError(f"DeviceMesh: shape and axis_names should have the same size. "
                             f"Received: shape={shape}, axis_names={axis_names}")
        devices = list(devices) if devices is not None else list_devices()
        total = 1
        for d in shape:
            total *= int(d)
        if total != len(devices):
            raise ValueError(f"DeviceMesh: shape {tuple(shape)} does not match the number of "
                             f"devices. Received: shape={tuple(shape)}; "
                             f"{len(devices)} devices")
        self._shape, self._axis_names = tuple(int(d) for d in shape), list(axis_names)
        self._devices = devices

    @property
    def shape(self):
        return self._shape

    @property
    def axis_names(self):
        return self._axis_names

    @property
    def devices(self):
        return list(self._devices)

    def __repr__(self):
        return f"DeviceMesh(shape={self._shape}, axis_names={self._axis_names})"


class TensorLayout:
    """How a tensor is laid out on a mesh: one mesh axis name (or None) per tensor axis."""

    def __init__(self, axes, device_mesh=None):
        self.axes, self.device_mesh = tuple(axes), device_mesh


class Distribution:
    """Base class: a device mesh, and ``scope()`` making the distribution current."""

    def __init__(self, device_mesh):
        self._device_mesh = device_mesh

    @property
    def device_mesh(self):
        return self._device_mesh

    @contextlib.contextmanager
    def scope(self):
        """Make this distribution current inside a ``with`` block."""
        previous = distribution()
        set_distribution(self)
        try:
            yield self
        finally:
            set_distribution(previous)

    def get_data_layout(self, data_shape):
        raise NotImplementedError

    def get_variable_layout(self, variable):
        raise NotImplementedError

    def distribute_dataset(self, dataset):
        raise NotImplementedError


class DataParallel(Distribution):
    """Data parallelism: every process holds all the weights and takes its slice of each
    global batch; gradients are summed over the processes (MPI for NumPy arrays, NCCL for
    CuPy arrays) in buckets, started while the backward pass runs.

    Parameters
    ----------
    device_mesh : DeviceMesh, default=None
        A 1-D mesh with one device per process; its first axis is the batch axis.
    devices : list of str, default=None
        The devices for a 1-D mesh (one per process); default :func:`list_devices`.
    auto_shard_dataset : bool, default=True
        Accepted for Keras compatibility: arrays given to ``fit`` are always sharded.
    bucket_mb : float, default=4.0
        Size of a gradient bucket in MiB (xpnet's own knob, as Horovod's fusion buffer).
    """

    def __init__(self, device_mesh=None, devices=None, auto_shard_dataset=True,
                 bucket_mb=4.0):
        comm = initialize()
        if device_mesh is not None:
            if not isinstance(device_mesh, DeviceMesh):
                raise ValueError(f"DataParallel: device_mesh must be a DeviceMesh. Received: "
                                 f"device_mesh={device_mesh!r}")
        else:
            devices = list(devices) if devices else list_devices()
            device_mesh = DeviceMesh((len(devices),), [DEFAULT_BATCH_DIM_NAME], devices)
        super().__init__(device_mesh)
        n = len(device_mesh.devices)
        if n != comm.size:
            raise ValueError(f"DataParallel: xpnet runs one process per device; the mesh has "
                             f"{n} devices but the launcher started {comm.size} process(es) "
                             f"(mpiexec -n {n})")
        if not bucket_mb > 0:
            raise ValueError(f"DataParallel: bucket_mb must be > 0, got {bucket_mb!r}")
        self.batch_dim_name = device_mesh.axis_names[0]
        self.auto_shard_dataset = auto_shard_dataset
        self.bucket_mb = float(bucket_mb)
        self._runtime = None
        if comm.size > 1:
            from xpnet.distributed.runtime import Runtime

            self._runtime = Runtime(comm, int(self.bucket_mb * (1 << 20)))

    def get_data_layout(self, data_shape):
        return TensorLayout([self.batch_dim_name] + [None] * (len(data_shape) - 1),
                            self.device_mesh)

    def get_variable_layout(self, variable):
        return TensorLayout([None] * len(variable.shape), self.device_mesh)

    def get_tensor_layout(self, path):
        return None


def set_distribution(value):
    """Make ``value`` (a :class:`Distribution`, or None) the distribution that ``fit``,
    ``evaluate`` and ``save`` follow from now on."""
    if value is not None and not isinstance(value, Distribution):
        raise TypeError(f"set_distribution expects a Distribution or None, got {value!r}")
    _STATE["distribution"] = value


def distribution():
    """The current distribution, or None."""
    return _STATE["distribution"]


def active():
    """The runtime of the current distribution when it spans several processes, else None:
    the one call the training loop makes to know whether to act distributed."""
    d = _STATE["distribution"]
    return None if d is None else d._runtime
