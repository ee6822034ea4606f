"""``numba.njit`` kernels for 2-D windows on channels-last NumPy arrays (1-D runs as 2-D
with a unit axis): im2col, col2im, max pooling and its gradient, and the bias + ReLU passes.

The array-API engine (``reference_conv.py``) stacks K strided slices of a padded copy; these
loops read the input once, treat out-of-range pixels as padding without building the padded
copy, and write each output once. They win where the channel axis is long enough for the
inner copy loop to matter (benchmarks/RESULTS.md, "Convolutions"); for one channel NumPy's
strided copies are faster and the dispatcher keeps them.

Each kernel is compiled twice from one source: serial (the default, as ``_cpu.py``), and
parallel over its outer ``prange`` loop, which the dispatcher uses for arrays of a million
elements or more when Numba has more than one thread. Quiet, the parallel variants halve
these memory-bound passes on 2 cores; with the other core busy, every parallel region waits
a scheduler tick (8 ms; TOOLCHAIN.md, section 3), so on a shared machine set
``NUMBA_NUM_THREADS=1``. The variants are separate Python functions because Numba's cache
key ignores the jit flags (TOOLCHAIN.md).
"""

import types

import numba
import numpy as np
from numba import prange

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True, "boundscheck": False}


class _Kernel:
    """A kernel with a serial and a (lazily compiled) parallel variant."""

    def __init__(self, f):
        self.serial = numba.njit(**_OPTIONS)(f)
        twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_parallel",
                                  f.__defaults__, f.__closure__)
        twin.__qualname__ = f.__qualname__ + "_parallel"
        self._twin, self._parallel = twin, None
        self.__doc__ = f.__doc__

    @property
    def parallel(self):
        if self._parallel is None:
            self._parallel = numba.njit(parallel=True, **_OPTIONS)(self._twin)
        return self._parallel

    def __call__(self, *args, parallel=False):
        return (self.parallel if parallel else self.serial)(*args)


def threads():
    return numba.get_num_threads()


@_Kernel
def im2col(x, out, kh, kw, sh, sw, dh, dw, ph, pw):
    """``out[b, i, j, (a*kw + e)*C + c] = x[b, i*sh + a*dh - ph, j*sw + e*dw - pw, c]``,
    zero outside ``x``. ``out`` is (n, oh, ow, kh*kw*C)."""
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for b in prange(n):
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    r = i * sh + a * dh - ph
                    for e in range(kw):
                        q = j * sw + e * dw - pw
                        base = (a * kw + e) * c
                        if r >= 0 and r < h and q >= 0 and q < w:
                            for ch in range(c):
                                out[b, i, j, base + ch] = x[b, r, q, ch]
                        else:
                            for ch in range(c):
                                out[b, i, j, base + ch] = 0.0


@_Kernel
def col2im(cols, dx, kh, kw, sh, sw, dh, dw, ph, pw):
    """The adjoint of :func:`im2col`: ``dx`` (n, h, w, C) = the sum of the columns that
    read each pixel. ``dx`` is overwritten."""
    n, h, w, c = dx.shape
    oh, ow = cols.shape[1], cols.shape[2]
    for b in prange(n):
        dx[b] = 0.0
        for i in range(oh):
            for a in range(kh):
                r = i * sh + a * dh - ph
                if r < 0 or r >= h:
                    continue
                for j in range(ow):
                    for e in range(kw):
                        q = j * sw + e * dw - pw
                        if q < 0 or q >= w:
                            continue
                        base = (a * kw + e) * c
                        for ch in range(c):
                            dx[b, r, q, ch] += cols[b, i, j, base + ch]


@_Kernel
def max_pool(x, y, arg, kh, kw, sh, sw, ph, pw):
    """Window maxima into ``y`` and the winning offset ``a*kw + e`` into ``arg``; the first
    maximum wins ties; pixels outside ``x`` (the padding) never win."""
    n, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for b in prange(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    y[b, i, j, ch] = -np.inf
                    arg[b, i, j, ch] = 0
                for a in range(kh):
                    r = i * sh + a - ph
                    if r < 0 or r >= h:
                        continue
                    for e in range(kw):
                        q = j * sw + e - pw
                        if q < 0 or q >= w:
                            continue
                        k = a * kw + e
                        for ch in range(c):
                            v = x[b, r, q, ch]
                            if v > y[b, i, j, ch]:
                                y[b, i, j, ch] = v
                                arg[b, i, j, ch] = k


@_Kernel
def max_pool_grad(dy, arg, dx, kh, kw, sh, sw, ph, pw):
    """``dy`` routed to each window's winner, summed where windows overlap. ``dx`` is
    overwritten."""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    for b in prange(n):
        dx[b] = 0.0
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    k = arg[b, i, j, ch]
                    a = k // kw
                    r, q = i * sh + a - ph, j * sw + (k - a * kw) - pw
                    if r >= 0 and r < h and q >= 0 and q < w:  # a window of -inf wins nowhere
                        dx[b, r, q, ch] += dy[b, i, j, ch]


@_Kernel
def max_pool_grad_tiled(dy, arg, dx, kh, kw):
    """:func:`max_pool_grad` for windows at stride == pool size without padding: every pixel
    of ``dx`` is written once, each window's winner with ``dy`` and the rest (and the rows
    and columns no window reaches) with 0."""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    for b in prange(n):
        for i in range(oh):
            for a in range(kh):
                r = i * kh + a
                for j in range(ow):
                    for e in range(kw):
                        k = a * kw + e
                        q = j * kw + e
                        for ch in range(c):
                            dx[b, r, q, ch] = dy[b, i, j, ch] if arg[b, i, j, ch] == k else 0.0
                for q in range(ow * kw, w):
                    for ch in range(c):
                        dx[b, r, q, ch] = 0.0
        for r in range(oh * kh, h):
            for q in range(w):
                for ch in range(c):
                    dx[b, r, q, ch] = 0.0


@_Kernel
def bias_relu(z, bias):
    """In place: ``z = max(z + bias, 0)`` on rows (M, F)."""
    m, f = z.shape
    for i in prange(m):
        for j in range(f):
            v = z[i, j] + bias[j]
            z[i, j] = v if v > 0 else 0.0


@_Kernel
def relu_grad_bias(dy, y, dz, db):
    """``dz = dy * (y > 0)`` on rows (M, F), and ``db += sum(dz, axis=0)``: one pass over
    memory (this is bandwidth-bound: 0.68 ms at 43264x32, against 0.63 + 0.19 ms apart).
    The rows are split in 8 blocks, each with its own partial sums, for the parallel loop."""
    m, f = dy.shape
    blocks = 8
    step = (m + blocks - 1) // blocks
    acc = np.zeros((blocks, f), dtype=dy.dtype)
    for t in prange(blocks):
        for i in range(t * step, min(m, (t + 1) * step)):
            for j in range(f):
                g = dy[i, j] * (y[i, j] > 0)
                dz[i, j] = g
                acc[t, j] += g
    for t in range(blocks):
        for j in range(f):
            db[j] += acc[t, j]
