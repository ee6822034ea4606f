"""``numba.njit`` kernels for NumPy arrays: one pass over memory where the array-API
composition makes several, each with its own temporary.

- Serial on purpose: on two cores ``parallel=True`` gains at most 1.1x and, with the other
  core busy, costs milliseconds per call (TOOLCHAIN.md, section 3).
- ``error_model="numpy"``: Numba's default ("python") checks every division for zero, which
  stops LLVM from vectorizing the loop (Adam: 94 us -> 54 us on 55k float32 weights).
- One compiled function per activation: the activation code is a closure constant, so each
  kernel is a branch-free loop (a runtime code inside the loop ran 16x slower for ReLU).
- The optimizer loops write at most two arrays each: LLVM vectorizes a loop only while the
  runtime alias checks between its arrays stay under its threshold (8).
"""

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils
from numba.extending import intrinsic

from xpnet.kernels._math import CODES
from xpnet.kernels._math import dact


def _jit(f):
    return numba.njit(cache=True, error_model="numpy", nogil=True)(f)


_dact = numba.njit(inline="always")(dact)


def _make_activation_grad(kind, code):
    def kernel(dy, saved, alpha, out):
        for i in range(dy.shape[0]):
            out[i] = _dact(code, dy[i], saved[i], alpha)

    kernel.__name__ = kernel.__qualname__ = f"{kind}_grad"
    return _jit(kernel)


ACTIVATION_GRAD = {kind: _make_activation_grad(kind, code) for kind, code in CODES.items()}


@_jit
def softmax_grad(dy, y, out):
    """Rows of ``y * (dy - sum(dy * y))``."""
    for r in range(dy.shape[0]):
        s = 0.0
        for c in range(dy.shape[1]):
            s += dy[r, c] * y[r, c]
        for c in range(dy.shape[1]):
            out[r, c] = y[r, c] * (dy[r, c] - s)


@_jit
def log_softmax_grad(dy, y, out):
    """Rows of ``dy - exp(y) * sum(dy)``."""
    for r in range(dy.shape[0]):
        s = 0.0
        for c in range(dy.shape[1]):
            s += dy[r, c]
        for c in range(dy.shape[1]):
            out[r, c] = dy[r, c] - math.exp(y[r, c]) * s


@numba.njit(inline="always")
def _row_exp(z, r, out):
    """``out[r] = exp(z[r] - max(z[r]))``; returns ``(max, sum)``, the sum in float64."""
    m = z[r, 0]
    for c in range(1, z.shape[1]):
        if z[r, c] > m:
            m = z[r, c]
    s = 0.0
    for c in range(z.shape[1]):
        e = math.exp(z[r, c] - m)
        out[r, c] = e
        s += e
    return m, s


@_jit
def softmax_ce_sparse(z, labels, weights, smoothing, loss, out):
    """Per row: ``loss = -sum(t log p)`` and ``out = w (p - t) / N`` for integer labels,
    ``t`` the (smoothed) one-hot row. ``weights``: one per row, or a single 1.0."""
    n, c = z.shape
    on, off = 1.0 - smoothing + smoothing / c, smoothing / c
    for r in range(n):
        m, s = _row_exp(z, r, out)
        lse = m + math.log(s)
        t = labels[r]
        k = (weights[0] if weights.shape[0] == 1 else weights[r]) / n
        if smoothing == 0.0:
            loss[r] = lse - z[r, t]
            for j in range(c):
                out[r, j] = out[r, j] / s * k
            out[r, t] -= k
            continue
        acc = 0.0
        for j in range(c):
            tj = on if j == t else off
            acc += tj * (lse - z[r, j])
            out[r, j] = (out[r, j] / s - tj) * k
        loss[r] = acc


@_jit
def softmax_ce_dense(z, target, weights, smoothing, loss, out):
    """As :func:`softmax_ce_sparse` for float targets: ``out = w (p sum(t) - t) / N``."""
    n, c = z.shape
    for r in range(n):
        m, s = _row_exp(z, r, out)
        lse = m + math.log(s)
        k = (weights[0] if weights.shape[0] == 1 else weights[r]) / n
        tsum, acc = 0.0, 0.0
        for j in range(c):
            tj = target[r, j] * (1.0 - smoothing) + smoothing / c
            tsum += tj
            acc += tj * (lse - z[r, j])
        for j in range(c):
            tj = target[r, j] * (1.0 - smoothing) + smoothing / c
            out[r, j] = (out[r, j] / s * tsum - tj) * k
        loss[r] = acc


def softmax_ce_wide(z, target, weights, smoothing):
    """NumPy in place for wide rows, where its SIMD ``exp`` beats Numba's scalar one
    (llvmlite's wheels lack SVML): six passes, two temporaries."""
    n, c = z.shape
    m = z.max(axis=1, keepdims=True)
    out = np.subtract(z, m)
    np.exp(out, out=out)
    s = out.sum(axis=1, keepdims=True, dtype=np.float64)
    lse = (np.log(s) + m).astype(z.dtype, copy=False)
    np.divide(out, s.astype(z.dtype), out=out)
    rows = np.arange(n)
    if target.ndim == 1:
        loss = lse[:, 0] - z[rows, target]
        if smoothing:
            loss = (1.0 - smoothing) * loss + smoothing * (lse[:, 0] - z.mean(axis=1))
            out -= smoothing / c
        out[rows, target] -= 1.0 - smoothing
    else:
        t = target * (1.0 - smoothing) + smoothing / c if smoothing else target
        tsum = t.sum(axis=1, keepdims=True)
        loss = (tsum[:, 0] * lse[:, 0] - (t * z).sum(axis=1))
        out *= tsum
        out -= t
    k = (weights[:, None] if weights.shape[0] == n and n > 1 else weights[0]) / n
    out *= np.asarray(k, dtype=z.dtype)
    return loss.astype(z.dtype, copy=False), out


@_jit
def adam(p, g, m, v, alpha, c1, c2, eps, decay):
    """Keras's Adam: ``alpha`` holds the bias corrections, ``c1 = 1 - beta_1``, ...;
    ``decay`` (AdamW's lr * weight_decay, else 0) shrinks the weights in the same pass."""
    for i in range(p.shape[0]):
        gi = g[i]
        m[i] += (gi - m[i]) * c1
        v[i] += (gi * gi - v[i]) * c2
    for i in range(p.shape[0]):
        pi = p[i] - decay * p[i]
        p[i] = pi - alpha * m[i] / (math.sqrt(v[i]) + eps)


@_jit
def adam_amsgrad(p, g, m, v, vhat, alpha, c1, c2, eps, decay):
    for i in range(p.shape[0]):
        gi = g[i]
        m[i] += (gi - m[i]) * c1
        v[i] += (gi * gi - v[i]) * c2
    for i in range(p.shape[0]):
        vhat[i] = max(vhat[i], v[i])
    for i in range(p.shape[0]):
        pi = p[i] - decay * p[i]
        p[i] = pi - alpha * m[i] / (math.sqrt(vhat[i]) + eps)


@_jit
def rmsprop(p, g, v, rho, c, lr, eps):
    """Plain RMSprop: ``v = rho v + c g^2`` (``c = 1 - rho``), ``p -= lr g / sqrt(v + eps)``."""
    for i in range(p.shape[0]):
        gi = g[i]
        v[i] = rho * v[i] + c * gi * gi
    for i in range(p.shape[0]):
        p[i] -= lr * g[i] / math.sqrt(v[i] + eps)


@_jit
def rmsprop_full(p, g, v, mom, mg, rho, c, lr, eps, momentum, use_momentum, centered):
    """RMSprop with momentum and/or centering."""
    for i in range(p.shape[0]):
        gi = g[i]
        v[i] = rho * v[i] + c * gi * gi
        if centered:
            mg[i] = rho * mg[i] + c * gi
    for i in range(p.shape[0]):
        denom = v[i] - mg[i] * mg[i] if centered else v[i]
        step = lr * g[i] / math.sqrt(denom + eps)
        if use_momentum:
            step += momentum * mom[i]
            mom[i] = step
        p[i] -= step


@_jit
def sgd(p, g, lr):
    for i in range(p.shape[0]):
        p[i] -= lr * g[i]


@_jit
def sgd_momentum(p, g, vel, lr, momentum, nesterov):
    for i in range(p.shape[0]):
        vel[i] = momentum * vel[i] - lr * g[i]
    for i in range(p.shape[0]):
        p[i] += momentum * vel[i] - lr * g[i] if nesterov else vel[i]


@_jit
def adagrad(p, g, acc, lr, eps):
    for i in range(p.shape[0]):
        gi = g[i]
        acc[i] += gi * gi
    for i in range(p.shape[0]):
        p[i] -= lr * g[i] / math.sqrt(acc[i] + eps)


@intrinsic
def _sched_yield(typingctx):
    """``sched_yield()`` from the C library, declared by name (not a ctypes pointer, which
    would keep the caller out of Numba's cache)."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        return builder.call(cgutils.get_or_insert_function(builder.module, fnty,
                                                           "sched_yield"), [])
    return numba.types.int32(), codegen


@_jit
def spin_wait(flags, count, value, spins):
    """Whether ``flags[:count]`` all equal ``value``, testing up to ``spins`` times and
    yielding the core between tests (about 0.25 us a yield). The opaque call makes each test
    read the flags afresh; the GIL is released meanwhile (kernels/threads.py)."""
    for _ in range(spins):
        ready = True
        for k in range(count):
            if flags[k] != value:
                ready = False
        if ready:
            return True
        _sched_yield()
    return False
