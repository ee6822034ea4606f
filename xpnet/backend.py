"""Backends: an array namespace, its device, random numbers and host transfer behind one name.

``get_backend("cpu")`` is NumPy, ``get_backend("cuda")`` is CuPy, and any other array-API
namespace (array-api-strict in the tests, torch through array-api-compat) is accepted as is.
This is one of the two modules of ``xpnet`` that import NumPy (host data and the RNG need it);
CuPy is imported lazily, so ``import xpnet`` works on a machine without CUDA.
"""

import contextlib
import os
import sys
import threading
import types

import array_api_compat
import numpy as np

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "RNG",
    "get_backend",
    "set_backend",
    "namespace",
]


class BackendUnavailableError(RuntimeError):
    """The requested backend cannot run here; the message says why."""


_NAMESPACES = {}


def namespace(*arrays):
    """The array-API namespace of ``arrays``, cached by type.

    ``array_api_compat.array_namespace`` costs 2-3 us a call (measured on NumPy); a training
    step asks dozens of times, so the answer is memoized per array type.
    """
    t = type(arrays[0])
    if all(type(a) is t for a in arrays[1:]):
        xp = _NAMESPACES.get(t)
        if xp is None:
            xp = _NAMESPACES[t] = array_api_compat.array_namespace(*arrays)
        return xp
    return array_api_compat.array_namespace(*arrays)


class RNG:
    """Random numbers on a backend's device: the array API standard has none.

    Wraps ``numpy.random.Generator`` (the CPU backend, and for any namespace without its own
    generator: draws on the host, then transfers) or ``cupy.random.Generator`` (CUDA).
    ``host=True`` always draws on the host, so the same seed gives the same numbers on every
    backend; initializers use it, which makes a seeded model identical on CPU and GPU.
    """

    def __init__(self, backend, seed=None, host=False):
        self.backend = backend
        self._cupy = backend.name == "cuda" and not host
        # Native: draw straight into the backend's arrays, in their dtype (float32 draws
        # are faster). Otherwise draw float64 on the host, then cast and transfer, so a seed
        # gives the same numbers on every backend.
        self._native = self._cupy or (backend.name == "cpu" and not host)
        self._make(seed)

    def _make(self, seed):
        if self._cupy:
            import cupy

            if seed is None:
                seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)
            self._gen = cupy.random.default_rng(seed)
        else:
            self._gen = np.random.default_rng(seed)
        self._seed, self._calls = seed, 0

    def get_state(self):
        """A JSON-serialisable snapshot of the generator, for saving and exact resumption.

        NumPy's generator (the CPU backend, and host draws for other namespaces) gives its
        exact bit-generator state. CuPy keeps its XORWOW state on the GPU with no public
        accessor, so a CUDA generator records its seed and the number of draws made.
        """
        if self._cupy:
            return {"kind": "cupy", "seed": self._seed, "calls": self._calls}
        return {"kind": "numpy", "state": self._gen.bit_generator.state}

    def set_state(self, state):
        """Continue from a :meth:`get_state` snapshot: exactly where the snapshot is NumPy's
        and this generator draws with NumPy; otherwise (CuPy, or a snapshot from the other
        kind) from a fresh generator seeded deterministically from the snapshot."""
        if state.get("kind") == "numpy" and not self._cupy:
            self._gen.bit_generator.state = state["state"]
            return
        if state.get("kind") == "cupy" and self._cupy and state.get("calls") == 0:
            self._make(state["seed"])
            return
        entropy = [int(v) for v in _state_ints(state)]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)
        self._make(seed)

    def _out(self, a, dtype):
        if self._native:
            return a if dtype is None or a.dtype == dtype else a.astype(dtype)
        return self.backend.asarray(a, dtype=dtype)

    def _float_dtype(self, dtype):
        self._calls += 1  # every float draw starts here (CuPy's state is the draw count)
        if self._native:
            return dtype if dtype is not None else np.float32
        return np.float64

    def normal(self, shape, dtype=None, mean=0.0, stddev=1.0):
        a = self._gen.standard_normal(tuple(shape), dtype=self._float_dtype(dtype))
        if stddev != 1.0:
            a *= stddev
        if mean != 0.0:
            a += mean
        return self._out(a, dtype)

    def truncated_normal(self, shape, dtype=None, mean=0.0, stddev=1.0):
        """Normal draws, redrawn until all lie within two standard deviations (as Keras)."""
        a = self._gen.standard_normal(tuple(shape), dtype=self._float_dtype(dtype))
        xp = np if not self._cupy else _cupy()
        bad = xp.abs(a) > 2.0
        while bool(bad.any()):
            a[bad] = self._gen.standard_normal(int(bad.sum()), dtype=a.dtype)
            bad = xp.abs(a) > 2.0
        return self._out(a * stddev + mean, dtype)

    def uniform(self, shape, dtype=None, minval=0.0, maxval=1.0):
        a = self._gen.random(tuple(shape), dtype=self._float_dtype(dtype))
        if (minval, maxval) != (0.0, 1.0):
            a *= maxval - minval
            a += minval
        return self._out(a, dtype)

    def bernoulli(self, p, shape, dtype=None):
        """A 0/1 mask of ``dtype`` whose entries are 1 with probability ``p``."""
        a = self._gen.random(tuple(shape), dtype=self._float_dtype(dtype)) < p
        return self._out(a, dtype if dtype is not None else np.float32)

    def draws(self, n, low=0.0, high=1.0):
        """``n`` uniform draws from ``[low, high)`` as Python floats, for a layer's small
        per-batch parameters (angles, offsets, flips). On a ``host=True`` generator they
        are the same numbers on every backend and cost no device round trip."""
        self._calls += 1
        a = self._gen.random(n) * (high - low) + low
        return [float(v) for v in (a.get() if self._cupy else a)]

    def permutation(self, n):
        """A random permutation of ``range(n)`` as an int64 array on the device."""
        self._calls += 1
        if self._cupy:
            return _cupy().argsort(self._gen.random(n))
        perm = self._gen.permutation(n)
        return perm if self._native else self.backend.asarray(perm)

    def integers(self, low, high, shape):
        """Uniform int64 draws from ``[low, high)`` on the device."""
        self._calls += 1
        a = self._gen.integers(low, high, size=tuple(shape), dtype=np.int64)
        return a if self._native else self.backend.asarray(a)

    def host_int(self, high):
        """One Python int from ``[0, high)``: a seed for a kernel that hashes its own random
        numbers (attention dropout). Drawn on the host, with no device work, by a generator
        made with ``host=True`` (a CuPy generator would make the caller wait for the GPU)."""
        self._calls += 1
        return int(self._gen.integers(0, high))


def _state_ints(state):
    """The non-negative integers in a (nested) state snapshot, as entropy for reseeding."""
    if isinstance(state, dict):
        return [i for k in sorted(state) for i in _state_ints(state[k])]
    if isinstance(state, (list, tuple)):
        return [i for v in state for i in _state_ints(v)]
    if isinstance(state, bool) or not isinstance(state, int):
        return []
    return [abs(state)]


def _cupy():
    import cupy

    return cupy


class Backend:
    """One array namespace on one device.

    Attributes
    ----------
    name : str
        ``"cpu"`` (NumPy), ``"cuda"`` (CuPy), or the module name of another namespace.
    xp : module
        The array-API namespace (wrapped by array-api-compat where needed).
    device : object
        The device new arrays are created on.
    """

    def __init__(self, name, xp, device=None):
        self.name, self.xp, self.device = name, xp, device

    def __repr__(self):
        return f"Backend({self.name!r}, device={self.device!r})"

    def asarray(self, a, dtype=None):
        """Host data (NumPy, lists, scalars) or an array of this namespace, on this device."""
        if self.name == "cuda":
            return _cupy().asarray(a, dtype=dtype)
        if self.name == "cpu":
            return np.asarray(a, dtype=dtype)
        return self.xp.asarray(a, dtype=dtype, device=self.device)

    def dtype(self, name):
        """The namespace's dtype called ``name`` (``"float16"``); ``"bfloat16"`` on the CPU
        backend is ml_dtypes' (NumPy has none)."""
        dt = getattr(self.xp, name, None)
        if dt is None and name == "bfloat16" and self.name == "cpu":
            import ml_dtypes

            return np.dtype(ml_dtypes.bfloat16)
        if dt is None:
            raise ValueError(f"backend {self.name!r} has no dtype {name!r}")
        return dt

    def to_numpy(self, a):
        """A NumPy copy (or view, on the CPU) of ``a``."""
        if isinstance(a, np.ndarray) or np.isscalar(a):
            return np.asarray(a)
        if self.name == "cuda":
            return a.get()
        if self.name == "cpu":
            return np.asarray(a)
        try:  # array-api-strict on a non-CPU device refuses __array__; DLPack from the CPU works
            cpu = getattr(self.xp, "Device", None)
            host = a.to_device(cpu("CPU_DEVICE")) if cpu is not None else a
            return np.from_dlpack(host)
        except (AttributeError, TypeError, RuntimeError, BufferError):
            return np.asarray(a)

    def rng(self, seed=None, host=False):
        """A random generator on this backend; see :class:`RNG`."""
        return RNG(self, seed, host=host)

    def synchronize(self):
        """Wait for queued device work (a no-op off the GPU); for timing."""
        if self.name == "cuda":
            _cupy().cuda.get_current_stream().synchronize()

    def limit_threads(self, n):
        """A context in which BLAS uses at most ``n`` threads (CPU backend; ``None``: no
        limit). Costs about 20 us to enter, so it wraps loops, not steps."""
        if n is None or self.name != "cpu":
            return contextlib.nullcontext()
        return _blas_limit(n)

    @property
    def supports_views(self):
        """Whether a reshaped slice of an array writes through to it (NumPy, CuPy).

        The standard does not promise views; the flat-parameter optimizer needs them.
        """
        return self.name in ("cpu", "cuda")


_THREADPOOLS = None
_BLAS = {"lock": threading.Lock(), "depth": 0, "limiter": None}


def _load_scipy_blas():
    """Load SciPy's BLAS, which Numba's ``np.dot`` inside the kernels calls, so that a limit
    reaches it too: loaded later, inside a limited section, it would run its own threads
    under xpnet's (oversubscription: 4x the CPU time per product, measured)."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401
    except ImportError:
        pass


@contextlib.contextmanager
def _blas_limit(n):
    """BLAS limited to ``n`` threads while any caller, on any Python thread, is inside.

    The BLAS thread count is one setting for the whole process. threadpoolctl's own context
    restores the count it found on entry, so two threads whose contexts interleave (A in,
    B in, A out, B out) leave B's "original" -- A's limit -- in place for good. Here the
    first caller in records the count and sets the limit, and the last caller out restores
    it, whatever the order (callers asking for another ``n`` meanwhile share the first
    limit)."""
    global _THREADPOOLS
    with _BLAS["lock"]:
        if _BLAS["depth"] == 0:
            # The controller sees the BLAS libraries loaded when it is made (0.8 ms); one
            # loaded later (SciPy's OpenBLAS, which importing Numba loads) would keep its
            # threads, so it is made again whenever modules have been imported since.
            if _THREADPOOLS is None or _BLAS.get("modules") != len(sys.modules):
                from threadpoolctl import ThreadpoolController

                _load_scipy_blas()

                _THREADPOOLS = ThreadpoolController()
                _BLAS["modules"] = len(sys.modules)
            _BLAS["limiter"] = _THREADPOOLS.limit(limits=n, user_api="blas")
        _BLAS["depth"] += 1
    try:
        yield
    finally:
        with _BLAS["lock"]:
            _BLAS["depth"] -= 1
            if _BLAS["depth"] == 0:
                _BLAS["limiter"].restore_original_limits()
                _BLAS["limiter"] = None
_DEFAULT = {"name": None}
_CACHE = {}


def set_backend(name):
    """Set the default backend for models built afterwards: ``"auto"``, ``"cpu"``, ``"cuda"``."""
    get_backend(name)  # fail now, not at the first model
    _DEFAULT["name"] = name


def _cuda_backend(index=None):
    try:
        import cupy
    except ImportError as e:
        raise BackendUnavailableError(
            "backend 'cuda' needs CuPy, which is not installed: pip install 'xpnet[cuda]'"
        ) from e
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, driver too old for the runtime
        raise BackendUnavailableError(
            f"backend 'cuda': CuPy is installed but cannot use a GPU here: {e}"
        ) from e
    if count == 0:
        raise BackendUnavailableError("backend 'cuda': CuPy sees no CUDA device")
    if index is not None:  # "cuda:N": GPU N becomes this process's current device
        if not 0 <= index < count:
            raise BackendUnavailableError(f"backend 'cuda:{index}': CuPy sees {count} "
                                          f"device(s), 0 to {count - 1}")
        cupy.cuda.Device(index).use()
    return Backend("cuda", array_api_compat.array_namespace(cupy.empty(0)), cupy.cuda.Device())


def _cuda_usable():
    try:
        _cuda_backend()
    except BackendUnavailableError:
        return False
    return True


def get_backend(spec=None, device=None):
    """The :class:`Backend` for ``spec``.

    Parameters
    ----------
    spec : str, module or Backend, default=None
        ``"auto"`` (CUDA where CuPy sees a GPU, else CPU), ``"cpu"`` / ``"numpy"``,
        ``"cuda"`` / ``"gpu"`` / ``"cupy"``, ``"cuda:N"`` / ``"gpu:N"`` (GPU N, made the
        process's current device: one process per GPU), an array-API namespace module, or a
        Backend.
        None means the default: :func:`set_backend`, else ``$XPNET_BACKEND``, else ``"auto"``.
    device : object, default=None
        The device of a namespace backend (``array_api_strict.Device("device1")``).
    """
    if isinstance(spec, Backend):
        return spec
    if spec is None:
        spec = _DEFAULT["name"] or os.environ.get("XPNET_BACKEND") or "auto"
    if isinstance(spec, str):
        spec = _ALIASES.get(spec.lower(), spec.lower())
        if spec.startswith("gpu:"):
            spec = "cuda:" + spec[4:]
        if spec == "auto":
            return get_backend("cuda") if _cuda_usable() else get_backend("cpu")
    key = (spec if isinstance(spec, str) else id(spec), str(device))
    backend = _CACHE.get(key)
    if backend is None:
        backend = _CACHE[key] = _make_backend(spec, device)
    elif isinstance(spec, str) and spec.startswith("cuda:"):
        backend.device.use()  # "cuda:N" always makes GPU N current
    return backend


_ALIASES = {"numpy": "cpu", "gpu": "cuda", "cupy": "cuda"}


def _make_backend(spec, device):
    if isinstance(spec, types.ModuleType):
        name = spec.__name__.split(".")[-1]
        if name == "numpy":
            return get_backend("cpu")
        if name == "cupy":
            return get_backend("cuda")
        xp = array_api_compat.array_namespace(spec.empty((0,), device=device))
        return Backend(spec.__name__, xp, device if device is not None else None)
    if not isinstance(spec, str):
        raise TypeError(f"backend must be a name or an array namespace, got {spec!r}")
    if spec == "cpu":
        return Backend("cpu", array_api_compat.array_namespace(np.empty(0)), "cpu")
    if spec == "cuda":
        return _cuda_backend()
    if spec.startswith("cuda:") and spec[5:].isdigit():  # one process per GPU (distributed)
        return _cuda_backend(int(spec[5:]))
    raise ValueError(
        f"unknown backend {spec!r}: expected 'auto', 'cpu', 'cuda' or an array namespace"
    )


def seed_global_generators(seed):
    """Seed NumPy's global generator (``np.random.seed``), and CuPy's where CuPy is already
    imported, as ``keras.utils.set_random_seed`` seeds its backends' global generators."""
    np.random.seed(seed % 2**32)
    cupy = sys.modules.get("cupy")
    if cupy is not None and _cuda_usable():
        cupy.random.seed(seed % 2**32)


def backend_of(x):
    """The Backend that arrays like ``x`` live on."""
    xp = namespace(x)
    if array_api_compat.is_numpy_namespace(xp):
        return get_backend("cpu")
    if array_api_compat.is_cupy_namespace(xp):
        return get_backend("cuda")
    dev = array_api_compat.device(x)
    mod = xp
    if array_api_compat.is_array_api_strict_namespace(xp):
        import array_api_strict as mod
    return get_backend(mod, device=dev)
