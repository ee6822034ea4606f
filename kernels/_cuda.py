"""``numba.cuda`` kernels for CuPy arrays.

Arrays go in through ``__cuda_array_interface__`` with no copy, and every launch is queued on
CuPy's current stream, so nothing waits for the device. Under Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1``, the CI) the same launchers take NumPy arrays.

The softmax-cross-entropy kernel gives each row one block and reduces with shared memory
(no warp shuffles: the simulator lacks them); the others are grid-stride loops.
"""

import math

import numba
from numba import cuda

from xpnet.kernels._math import CODES
from xpnet.kernels._math import dact

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
# Threads per block: small under the simulator, where each thread is a Python thread.
TPB = 16 if SIMULATOR else 256
_MAX_TPB = 1024
_MAX_BLOCKS = 4096

_dact = cuda.jit(device=True, inline=True)(dact)


def _stream(a):
    """CuPy's current stream as a Numba stream (the default stream under the simulator)."""
    if SIMULATOR:
        return 0
    import cupy

    ptr = cupy.cuda.get_current_stream().ptr
    stream = _STREAMS.get(ptr)
    if stream is None:
        stream = _STREAMS[ptr] = cuda.external_stream(ptr)
    return stream


_STREAMS = {}


def _module(a):
    """``cupy`` for CuPy arrays, ``numpy`` for the simulator's arrays."""
    return __import__(type(a).__module__.split(".")[0])


def _empty_like(a, shape=None):
    return _module(a).empty(a.shape if shape is None else shape, dtype=a.dtype)


def _grid(n):
    return max(1, min(_MAX_BLOCKS, -(-n // TPB)))


@cuda.jit
def _activation_grad(code, dy, saved, alpha, out):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dy.shape[0], stride):
        out[i] = _dact(code, dy[i], saved[i], alpha)


@cuda.jit
def _softmax_grad(dy, y, log, out):
    """One block per row: ``y (dy - sum(dy y))``, or ``dy - exp(y) sum(dy)`` if ``log``."""
    r, tid, tpb = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    sh = cuda.shared.array(_MAX_TPB, numba.float64)
    s = 0.0
    for j in range(tid, dy.shape[1], tpb):
        s += dy[r, j] if log else dy[r, j] * y[r, j]
    total = _block_reduce(sh, s, tid, tpb, False)
    for j in range(tid, dy.shape[1], tpb):
        if log:
            out[r, j] = dy[r, j] - math.exp(y[r, j]) * total
        else:
            out[r, j] = y[r, j] * (dy[r, j] - total)


@cuda.jit(device=True, inline=True)
def _block_reduce(sh, value, tid, tpb, is_max):
    """The block's sum (or maximum) of one value per thread, through shared memory."""
    sh[tid] = value
    cuda.syncthreads()
    step = tpb // 2
    while step > 0:
        if tid < step:
            sh[tid] = max(sh[tid], sh[tid + step]) if is_max else sh[tid] + sh[tid + step]
        cuda.syncthreads()
        step //= 2
    total = sh[0]
    cuda.syncthreads()
    return total


@cuda.jit
def _softmax_ce(z, labels, target, sparse, weights, smoothing, loss, out):
    """One block per row: the loss and ``w (p sum(t) - t) / N`` in three sweeps of the row
    (max; exp and sums; gradient). ``labels`` or ``target`` is used, as ``sparse`` says."""
    r, tid, tpb = cuda.blockIdx.x, cuda.threadIdx.x, cuda.blockDim.x
    n, c = z.shape
    sh = cuda.shared.array(_MAX_TPB, numba.float64)
    m = -math.inf
    for j in range(tid, c, tpb):
        m = max(m, z[r, j])
    m = _block_reduce(sh, m, tid, tpb, True)
    s, tz, ts = 0.0, 0.0, 0.0  # sum exp(z - m), sum t z, sum t
    t_label = labels[r] if sparse else -1
    for j in range(tid, c, tpb):
        zj = z[r, j]
        e = math.exp(zj - m)
        out[r, j] = e
        s += e
        tj = (1.0 if j == t_label else 0.0) if sparse else target[r, j]
        tj = tj * (1.0 - smoothing) + smoothing / c
        tz += tj * zj
        ts += tj
    s = _block_reduce(sh, s, tid, tpb, False)
    tz = _block_reduce(sh, tz, tid, tpb, False)
    ts = _block_reduce(sh, ts, tid, tpb, False)
    k = (weights[0] if weights.shape[0] == 1 else weights[r]) / n
    for j in range(tid, c, tpb):
        tj = (1.0 if j == t_label else 0.0) if sparse else target[r, j]
        tj = tj * (1.0 - smoothing) + smoothing / c
        out[r, j] = (out[r, j] / s * ts - tj) * k
    if tid == 0:
        loss[r] = ts * (m + math.log(s)) - tz


@cuda.jit
def _adam(p, g, m, v, vhat, amsgrad, alpha, c1, c2, eps, decay):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * c1
        vi = v[i] + (gi * gi - v[i]) * c2
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vhat[i], vi)
            vhat[i] = vi
        pi = p[i] - decay * p[i]
        p[i] = pi - alpha * mi / (math.sqrt(vi) + eps)


@cuda.jit
def _rmsprop(p, g, v, mom, mg, use_momentum, centered, rho, lr, eps, momentum):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        vi = rho * v[i] + (1.0 - rho) * gi * gi
        v[i] = vi
        denom = vi
        if centered:
            mgi = rho * mg[i] + (1.0 - rho) * gi
            mg[i] = mgi
            denom = vi - mgi * mgi
        step = lr * gi / math.sqrt(denom + eps)
        if use_momentum:
            step += momentum * mom[i]
            mom[i] = step
        p[i] -= step


@cuda.jit
def _sgd(p, g, vel, use_momentum, nesterov, lr, momentum):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        if not use_momentum:
            p[i] -= lr * gi
        else:
            vi = momentum * vel[i] - lr * gi
            vel[i] = vi
            if nesterov:
                p[i] += momentum * vi - lr * gi
            else:
                p[i] += vi


@cuda.jit
def _adagrad(p, g, acc, lr, eps):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        a = acc[i] + gi * gi
        acc[i] = a
        p[i] -= lr * gi / math.sqrt(a + eps)


def activation_grad(kind, dy, saved, alpha):
    """Launch the activation-gradient kernel on contiguous ``dy``/``saved``; returns dz."""
    out = _empty_like(dy)
    stream = _stream(dy)
    if kind in ("softmax", "log_softmax"):
        c = dy.shape[-1]
        rows = dy.size // c if c else 0
        shape2 = (rows, c)
        if rows:
            _softmax_grad[rows, TPB, stream](dy.reshape(shape2), saved.reshape(shape2),
                                             kind == "log_softmax", out.reshape(shape2))
        return out
    n = dy.size
    if n:
        _activation_grad[_grid(n), TPB, stream](CODES[kind], dy.reshape(-1),
                                                saved.reshape(-1), alpha, out.reshape(-1))
    return out


def softmax_cross_entropy(z, target, weights, smoothing):
    """Launch the fused softmax-cross-entropy kernel; returns ``(loss (N,), dlogits)``."""
    n = z.shape[0]
    loss, out = _empty_like(z, (n,)), _empty_like(z)
    sparse = target.ndim == 1
    # The kernel reads labels or target, as ``sparse`` says; the other is a placeholder.
    labels = target if sparse else _module(z).zeros(1, dtype=_module(z).int64)
    dense = _module(z).zeros((1, 1), dtype=z.dtype) if sparse else target
    _softmax_ce[n, TPB, _stream(z)](z, labels, dense, sparse, weights, smoothing, loss, out)
    return loss, out


def _or_placeholder(a, like):
    """``a``, or a one-element stand-in for an unused optional array. Never an alias of
    another argument: the simulator copies each argument back after the launch, and an
    aliased stale copy would overwrite the real update."""
    return a if a is not None else _module(like).zeros(1, dtype=like.dtype)


def adam(p, g, m, v, vhat, alpha, c1, c2, eps, decay=0.0):
    n = p.shape[0]
    _adam[_grid(n), TPB, _stream(p)](p, g, m, v, _or_placeholder(vhat, p), vhat is not None,
                                      alpha, c1, c2, eps, decay)


def rmsprop(p, g, v, mom, mg, rho, lr, eps, momentum):
    n = p.shape[0]
    _rmsprop[_grid(n), TPB, _stream(p)](p, g, v, _or_placeholder(mom, p),
                                         _or_placeholder(mg, p), mom is not None,
                                         mg is not None, rho, lr, eps, momentum)


def sgd(p, g, vel, lr, momentum, nesterov):
    n = p.shape[0]
    _sgd[_grid(n), TPB, _stream(p)](p, g, _or_placeholder(vel, p), vel is not None,
                                     bool(nesterov), lr, momentum)


def adagrad(p, g, acc, lr, eps):
    n = p.shape[0]
    _adagrad[_grid(n), TPB, _stream(p)](p, g, acc, lr, eps)
