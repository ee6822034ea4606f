"""Convolution and pooling, one dispatch point each: the array-API engine in
:mod:`xpnet.kernels.reference_conv` for every namespace, and the ``numba.njit`` loops of
``_cpu_conv.py`` for NumPy arrays of rank 1 or 2 where they measured faster
(``benchmarks/conv.py``; figures in benchmarks/RESULTS.md, "Convolutions").

Layers call these functions, never the engine or the kernels directly.
"""

import importlib
import os

from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import SAVES
from xpnet.kernels import activation
from xpnet.kernels import activation_grad
from xpnet.kernels import enabled
from xpnet.kernels import reference_conv as ref
from xpnet.kernels.reference_conv import Window
from xpnet.kernels.reference_conv import output_length
from xpnet.kernels.reference_conv import transpose_output_length
from xpnet.kernels.reference_conv import transpose_window
from xpnet.kernels.reference_conv import window

__all__ = [
    "Window",
    "window",
    "transpose_window",
    "output_length",
    "transpose_output_length",
    "pad",
    "crop",
    "im2col",
    "col2im",
    "conv_forward",
    "conv_backward",
    "conv_transpose_forward",
    "conv_transpose_backward",
    "max_pool",
    "max_pool_grad",
    "avg_pool",
    "avg_pool_grad",
    "bias_grad",
    "bias_activation",
    "activation_bias_grad",
    "parallel",
]

# im2col/col2im: with one input channel the njit copy loop runs one element per window
# offset and NumPy's strided slices win (0.48 vs 1.3 ms at 64x28x28x1); from 2 channels on
# the loops win (64x13x13x32: 0.7 vs 2.0 ms im2col, 0.7 vs 3.9 ms col2im).
_MIN_CHANNELS = 2

# Arrays from this size on take the parallel variants of the loops (when Numba has more than
# one thread): on 2 quiet cores im2col 0.58 -> 0.36 ms, col2im 0.56 -> 0.25, ReLU-grad + bias
# 0.78 -> 0.38 (benchmarks/RESULTS.md); below about a million elements the thread start-up
# eats the gain (TOOLCHAIN.md, section 3).
_PARALLEL_MIN = 1 << 20
_PARALLEL = [os.environ.get("XPNET_PARALLEL_KERNELS", "0") == "1"]

_CPU = []


def _cpu():
    if not _CPU:
        _CPU.append(importlib.import_module("xpnet.kernels._cpu_conv"))
    return _CPU[0]


def _njit_ok(xp, win, a):
    """Whether the 2-D njit loops take ``a`` (channels-last, rank 1 or 2, float)."""
    return (enabled() and is_numpy_namespace(xp) and len(win.ksize) <= 2
            and a.dtype.kind == "f")


def parallel(value=None):
    """Whether large im2col/col2im/pooling/ReLU passes run on all of Numba's threads;
    ``parallel(True)`` turns that on (as does ``XPNET_PARALLEL_KERNELS=1``), ``parallel(False)``
    off (the default).

    Off by default: NumPy's OpenBLAS threads spin for about 0.1 s after each matrix product,
    and Numba's OpenMP threads then fight them for the cores (a CNN step went from 16 to
    30 ms). With both told to sleep when idle, ``OPENBLAS_THREAD_TIMEOUT=4
    OMP_WAIT_POLICY=passive`` (set before NumPy is imported), turning this on made the step
    13 % faster (benchmarks/RESULTS.md, "Convolutions").
    """
    if value is not None:
        _PARALLEL[0] = bool(value)
    return _PARALLEL[0]


def _parallel(size):
    return _PARALLEL[0] and size >= _PARALLEL_MIN and _cpu().threads() > 1


def _as2d(win):
    """Window parameters as 2-D: a 1-D window gets a leading unit axis."""
    one = len(win.ksize) == 1
    k = ((1,) if one else ()) + win.ksize
    s = ((1,) if one else ()) + win.strides
    d = ((1,) if one else ()) + win.dilation
    p = ((0,) if one else ()) + tuple(b for b, _ in win.pads)
    return k, s, d, p


def _c4(a, one_d):
    """``a`` as a C-contiguous 4-D array (a 1-D layout gets a unit axis)."""
    a = a if a.flags.c_contiguous else a.copy(order="C")
    return a.reshape((a.shape[0], 1) + a.shape[1:]) if one_d else a


def pad(x, pads, value=0.0):
    """``x`` (batch, *spatial, C) with ``pads`` [(before, after), ...] of ``value`` around."""
    return ref.pad(x, pads, namespace(x), value)


def crop(x, pads):
    """The interior of ``x``: :func:`pad` undone."""
    return ref.crop(x, pads)


def im2col(x, win, xp=None):
    """Windows of channels-last ``x`` as ``(batch, *out, K, C)``."""
    xp = xp or namespace(x)
    if win.identity or x.shape[-1] < _MIN_CHANNELS or not _njit_ok(xp, win, x):
        return ref.im2col(x, win, xp)
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = _as2d(win)
    one = len(win.ksize) == 1
    x4 = _c4(x, one)
    out = xp.empty((x4.shape[0],) + ((1,) if one else ()) + win.out_sizes +
                   (win.size * x.shape[-1],), dtype=x.dtype)
    _cpu().im2col(x4, out, kh, kw, sh, sw, dh, dw, ph, pw, parallel=_parallel(out.size))
    return out.reshape((x.shape[0],) + win.out_sizes + (win.size, x.shape[-1]))


def col2im(cols, win, xp=None):
    """The adjoint of :func:`im2col`: ``(batch, *out, K, C)`` summed into
    ``(batch, *in, C)``."""
    xp = xp or namespace(cols)
    c = cols.shape[-1]
    if win.identity or c < _MIN_CHANNELS or not _njit_ok(xp, win, cols):
        return ref.col2im(cols, win, xp)
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = _as2d(win)
    one = len(win.ksize) == 1
    n = cols.shape[0]
    c4 = _c4(cols, False).reshape((n,) + ((1,) if one else ()) + win.out_sizes + (-1,))
    dx = xp.empty((n,) + ((1,) if one else ()) + win.in_sizes + (c,), dtype=cols.dtype)
    _cpu().col2im(c4, dx, kh, kw, sh, sw, dh, dw, ph, pw, parallel=_parallel(c4.size))
    return dx.reshape((n,) + win.in_sizes + (c,))


def conv_forward(x, kernel, win, groups=1):
    """``(z, cols)``: the convolution of channels-last ``x`` with ``kernel``
    (*ksize, C/groups, F) over the window ``win``, and what :func:`conv_backward` needs."""
    return ref.conv_forward(x, kernel, win, groups, namespace(x, kernel), im2col)


def conv_backward(dz, cols, kernel, win, groups=1, need_dx=True):
    """``(dkernel, dx)`` of :func:`conv_forward`; ``dx`` is None without ``need_dx``."""
    return ref.conv_backward(dz, cols, kernel, win, groups, namespace(dz, kernel), need_dx,
                             col2im)


def conv_transpose_forward(x, kernel, win):
    """Transposed convolution: the input gradient of the convolution ``win`` describes."""
    return ref.conv_transpose_forward(x, kernel, win, namespace(x, kernel), col2im)


def conv_transpose_backward(dy, x, kernel, win, need_dx=True):
    """``(dkernel, dx)`` of :func:`conv_transpose_forward`."""
    return ref.conv_transpose_backward(dy, x, kernel, win, namespace(dy, kernel), need_dx,
                                       im2col)


def max_pool(x, win):
    """``(y, arg)``: each window's maximum and the offset that won it (the first on ties)."""
    xp = namespace(x)
    if not _njit_ok(xp, win, x):
        return ref.max_pool(x, win, xp)
    (kh, kw), (sh, sw), _, (ph, pw) = _as2d(win)
    one = len(win.ksize) == 1
    x4 = _c4(x, one)
    shape = (x4.shape[0],) + ((1,) if one else ()) + win.out_sizes + (x.shape[-1],)
    y = xp.empty(shape, dtype=x.dtype)
    arg = xp.empty(shape, dtype=xp.int8 if win.size < 128 else xp.int16)
    _cpu().max_pool(x4, y, arg, kh, kw, sh, sw, ph, pw, parallel=_parallel(x4.size))
    out = (x.shape[0],) + win.out_sizes + (x.shape[-1],)
    return y.reshape(out), arg.reshape(out)


def max_pool_grad(dy, arg, win):
    """``dx``: ``dy`` routed to each window's winner."""
    xp = namespace(dy)
    if not _njit_ok(xp, win, dy):
        return ref.max_pool_grad(dy, arg, win, xp)
    (kh, kw), (sh, sw), _, (ph, pw) = _as2d(win)
    one = len(win.ksize) == 1
    dy4, arg4 = _c4(dy, one), _c4(arg, one)
    dx = xp.empty((dy.shape[0],) + ((1,) if one else ()) + win.in_sizes + (dy.shape[-1],),
                  dtype=dy.dtype)
    if (sh, sw) == (kh, kw) and not win.padded:  # disjoint windows: one write per pixel
        _cpu().max_pool_grad_tiled(dy4, arg4, dx, kh, kw, parallel=_parallel(dx.size))
    else:
        _cpu().max_pool_grad(dy4, arg4, dx, kh, kw, sh, sw, ph, pw,
                              parallel=_parallel(dx.size))
    return dx.reshape((dy.shape[0],) + win.in_sizes + (dy.shape[-1],))


def avg_pool(x, win):
    """Each window's mean over its unpadded inputs."""
    return ref.avg_pool(x, win, namespace(x))


def avg_pool_grad(dy, win):
    return ref.avg_pool_grad(dy, win, namespace(dy))


def bias_grad(dz):
    """The bias gradient of a channels-last ``dz``: its sum over every axis but the last.

    NumPy reduces the leading axis of a tall (rows, C) array one row at a time (1.2 ms at
    43264x32); a product with a ones vector is one BLAS call (0.2 ms), exact enough in
    float32 for a gradient. Other namespaces sum.
    """
    xp = namespace(dz)
    if enabled() and is_numpy_namespace(xp):
        dz2 = xp.reshape(dz, (-1, dz.shape[-1]))
        return xp.ones(dz2.shape[0], dtype=dz.dtype) @ dz2
    return xp.sum(dz, axis=tuple(range(dz.ndim - 1)))


def _fusable(xp, kind, a):
    return (kind in (None, "relu") and enabled() and is_numpy_namespace(xp) and
            a.dtype.kind == "f" and a.flags.c_contiguous)


def bias_activation(z, bias, kind, alpha=None):
    """``(y, saved)``: ``y = f(z + bias)`` computed in place on ``z`` (an array the caller
    owns: a convolution's fresh output), and what :func:`activation_bias_grad` needs
    (``y``, or ``z + bias`` for the activations that differentiate from their input).

    On NumPy, ReLU and the bias are one pass (``_cpu_conv.bias_relu``) instead of two.
    """
    xp = namespace(z)
    if kind == "relu" and _fusable(xp, kind, z):
        b = bias if bias is not None else xp.zeros(z.shape[-1], dtype=z.dtype)
        _cpu().bias_relu(z.reshape(-1, z.shape[-1]), b, parallel=_parallel(z.size))
        return z, z
    if bias is not None:
        z += bias
    if kind is None:
        return z, None
    y = activation(kind, z, alpha)
    return y, (z if SAVES[kind] == "z" else y)


def activation_bias_grad(kind, dy, saved, alpha=None, with_bias=True):
    """``(dz, dbias)`` for :func:`bias_activation`: ``dz = dy * f'`` and, ``with_bias``, its
    sum over every axis but the last (else None). On NumPy, ReLU's gradient and the bias
    sum are one pass."""
    xp = namespace(dy)
    if kind == "relu" and with_bias and _fusable(xp, kind, dy) and _fusable(xp, kind, saved):
        f = dy.shape[-1]
        dz = xp.empty_like(dy)
        db = xp.zeros(f, dtype=dy.dtype)
        _cpu().relu_grad_bias(dy.reshape(-1, f), saved.reshape(-1, f), dz.reshape(-1, f), db,
                              parallel=_parallel(dy.size))
        return dz, db
    dz = dy if kind is None else activation_grad(kind, dy, saved, alpha)
    return dz, (bias_grad(dz) if with_bias else None)
