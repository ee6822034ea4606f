"""Convolution and pooling, one dispatch point each: the array-API engine in
:mod:`xpnet.kernels.reference_conv` for every namespace, and the ``numba.njit`` loops of
``_cpu_conv.py`` for NumPy arrays of rank 1 or 2 where they measured faster
(``benchmarks/conv.py``; figures in benchmarks/RESULTS.md, "Convolutions").

On NumPy, :func:`conv_fused_forward` and :func:`conv_fused_backward` run a convolution with
its bias and ReLU as one pipeline per chunk of the batch, the chunks side by side on
:mod:`xpnet.kernels.threads`: im2col, the product and the bias + ReLU pass one micro-batch
at a time, so the columns are multiplied while they are still in the cache.

Layers call these functions, never the engine or the kernels directly.
"""

import importlib

import numpy as np
from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import SAVES
from xpnet.kernels import activation
from xpnet.kernels import activation_grad
from xpnet.kernels import enabled
from xpnet.kernels import matmul
from xpnet.kernels import reference_conv as ref
from xpnet.kernels import threads
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
    "conv_fused_forward",
    "conv_fused_backward",
    "FusedContext",
    "conv_transpose_forward",
    "conv_transpose_backward",
    "max_pool",
    "max_pool_grad",
    "avg_pool",
    "avg_pool_grad",
    "bias_grad",
    "bias_activation",
    "activation_bias_grad",
]

# im2col/col2im: with one input channel the njit copy loop runs one element per window
# offset and NumPy's strided slices win (0.48 vs 1.3 ms at 64x28x28x1); from 2 channels on
# the loops win (64x13x13x32: 0.7 vs 2.0 ms im2col, 0.7 vs 3.9 ms col2im).
_MIN_CHANNELS = 2

# Columns up to this wide (window taps x input channels: a first layer's one or three
# channels) take their kernel gradient from ``_cpu_conv.grad_narrow`` instead of OpenBLAS.
_NARROW = 32

# The forward pipeline's micro-batch: as many images as keep their im2col columns within
# this many bytes (the L2 cache is 2-4 MB a core on the machines measured).
_MICRO_BYTES = 1 << 20

_CPU = []


def _cpu():
    if not _CPU:
        _CPU.append(importlib.import_module("xpnet.kernels._cpu_conv"))
    return _CPU[0]


def _njit_ok(xp, win, a):
    """Whether the 2-D njit loops take ``a`` (channels-last, rank 1 or 2, float32 or
    float64: Numba has no float16 arithmetic)."""
    return (enabled() and is_numpy_namespace(xp) and len(win.ksize) <= 2
            and a.dtype in (np.float32, np.float64))


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
    cpu = _cpu()
    threads.run(lambda i, j: cpu.im2col(x4[i:j], out[i:j], kh, kw, sh, sw, dh, dw, ph, pw, 1),
            x4.shape[0])
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
    cpu = _cpu()
    threads.run(lambda i, j: cpu.col2im(c4[i:j], dx[i:j], kh, kw, sh, sw, dh, dw, ph, pw, 1),
            n)
    return dx.reshape((n,) + win.in_sizes + (c,))


def conv_forward(x, kernel, win, groups=1):
    """``(z, cols)``: the convolution of channels-last ``x`` with ``kernel``
    (*ksize, C/groups, F) over the window ``win``, and what :func:`conv_backward` needs.
    On NumPy (rank 1 or 2) this is :func:`conv_fused_forward` without bias or activation."""
    fused = conv_fused_forward(x, kernel, None, win, groups, None)
    if fused is not None:
        return fused
    return ref.conv_forward(x, kernel, win, groups, namespace(x, kernel), im2col, matmul)


def conv_backward(dz, cols, kernel, win, groups=1, need_dx=True):
    """``(dkernel, dx)`` of :func:`conv_forward`; ``dx`` is None without ``need_dx``."""
    if isinstance(cols, FusedContext):
        dk, _, dx = conv_fused_backward(cols, dz, kernel, need_dx)
        return dk, dx
    return ref.conv_backward(dz, cols, kernel, win, groups, namespace(dz, kernel), need_dx,
                             col2im, matmul)


class FusedContext:
    """What :func:`conv_fused_backward` needs: the columns, the ReLU output (or None), the
    window, the layout and the groups."""

    __slots__ = ("cols", "y4", "win", "one_d", "groups")

    def __init__(self, cols, y4, win, one_d, groups):
        self.cols, self.y4, self.win, self.one_d, self.groups = cols, y4, win, one_d, groups


def _group_kernels(kernel, groups):
    """Each group's kernel as a (K*C/groups, F/groups) matrix."""
    f = kernel.shape[-1]
    fg = f // groups
    k2 = kernel.reshape((-1, f))
    return [k2[:, g * fg:(g + 1) * fg] for g in range(groups)]


def _micro(n_pixels, row_values, itemsize):
    """Images per micro-batch: their im2col columns fit in ``_MICRO_BYTES``."""
    return max(1, _MICRO_BYTES // max(1, n_pixels * row_values * itemsize))


def _steps(i, j, mb):
    """``range(i, j)`` in (start, stop) pieces of at most ``mb``, as even as can be."""
    return threads.split(j - i, -(-(j - i) // mb)) if j > i else []


def conv_fused_forward(x, kernel, bias, win, groups, kind):
    """``(y, ctx)``: ``activation(conv(x, kernel) + bias)`` on channels-last ``x`` in one
    chunked pass, for NumPy, rank 1 or 2, ``kind`` None or "relu" and float32 or float64
    throughout; None where these do not hold (the caller then composes
    :func:`conv_forward` and :func:`bias_activation`). With ``groups``, one im2col pass
    lays each group's columns out as a contiguous block of a row, and each group's product
    reads its block in place (the engine's grouped columns are a permuting copy of the whole
    array: 96 against 4 ms a call at 64x32x32x32 in 4 groups)."""
    xp = namespace(x, kernel)
    if (kind not in (None, "relu") or not _njit_ok(xp, win, x)
            or x.dtype != kernel.dtype or (bias is not None and bias.dtype != x.dtype)):
        return None
    relu, cpu = kind == "relu", _cpu()
    geometry = _as2d(win)
    one = len(win.ksize) == 1
    x4 = _c4(x, one)
    n, c, f = x.shape[0], x.shape[-1], kernel.shape[-1]
    oh, ow = ((1,) if one else ()) + win.out_sizes
    kc, kg, fg = win.size * c, win.size * (c // groups), f // groups
    y4 = np.empty((n, oh, ow, f), dtype=x.dtype)
    ws = _group_kernels(kernel, groups)
    cols = x4 if win.identity else np.empty((n, oh, ow, kc), dtype=x.dtype)
    mb = _micro(oh * ow, kc, x.itemsize)

    def forward(i, j):
        for s, e in _steps(i, j, mb):
            s, e = s + i, e + i
            if not win.identity:
                _im2col_into(x4[s:e], cols[s:e], win, geometry, groups, cpu)
            z2, cols2 = y4[s:e].reshape((-1, f)), cols[s:e].reshape((-1, kc))
            for g, w in enumerate(ws):
                np.matmul(cols2[:, g * kg:(g + 1) * kg], w, out=z2[:, g * fg:(g + 1) * fg])
            if relu:
                cpu.bias_relu(z2, bias if bias is not None else np.zeros(f, dtype=x.dtype))
            elif bias is not None:
                z2 += bias

    threads.run(forward, n)
    return _out(y4, x.ndim), FusedContext(cols, y4 if relu else None, win, one, groups)


def conv_fused_backward(ctx, dy, kernel, need_dx=True):
    """``(dkernel, dbias, dx)`` of :func:`conv_fused_forward` for channels-last ``dy``:
    the ReLU mask, the bias sum, the kernel gradient and (``need_dx``) the input gradient,
    per chunk of the batch; ``dx`` is None without ``need_dx``."""
    cpu = _cpu()
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = _as2d(ctx.win)
    dy4 = _c4(dy, ctx.one_d)
    n, oh, ow, f = dy4.shape
    relu, groups = ctx.y4 is not None, ctx.groups
    c = kernel.shape[-2] * groups
    kc, kg, fg = kh * kw * c, kh * kw * (c // groups), f // groups
    h, w = ((1,) + ctx.win.in_sizes) if ctx.one_d else ctx.win.in_sizes
    dx4 = np.empty((n, h, w, c), dtype=dy.dtype) if need_dx else None
    ws = _group_kernels(kernel, groups)
    mb = _micro(oh * ow, kc, dy.itemsize)

    def backward(i, j):
        dz2 = dy4[i:j].reshape((-1, f))
        cols2 = ctx.cols[i:j].reshape((-1, kc))
        db = np.zeros(f, dtype=dy.dtype)
        if kc <= _NARROW and groups == 1 and not need_dx:  # a first layer: no dz, no product
            dk = np.zeros((kc, f), dtype=dy.dtype)
            cpu.grad_narrow(cols2, dz2, ctx.y4[i:j].reshape((-1, f)) if relu else dz2, dk,
                            db, relu)
            return dk, db
        if relu:
            dz2 = np.empty_like(dz2)
            cpu.relu_grad_bias(dy4[i:j].reshape((-1, f)), ctx.y4[i:j].reshape((-1, f)), dz2,
                               db)
        else:
            db = bias_grad(dz2)
        dk = np.empty((kg, f), dtype=dy.dtype)  # each group's (K*C/groups, F/groups) side by side
        for g in range(groups):
            np.matmul(cols2[:, g * kg:(g + 1) * kg].T, dz2[:, g * fg:(g + 1) * fg],
                      out=dk[:, g * fg:(g + 1) * fg])
        if need_dx:
            dcols = None if ctx.win.identity else np.empty((mb * oh * ow, kc), dtype=dy.dtype)
            for s, e in _steps(i, j, mb):
                lo, hi = s * oh * ow, e * oh * ow
                s, e = s + i, e + i
                part = dx4[s:e].reshape((-1, c)) if ctx.win.identity else dcols[:hi - lo]
                for g, wg in enumerate(ws):
                    np.matmul(dz2[lo:hi, g * fg:(g + 1) * fg], wg.T,
                              out=part[:, g * kg:(g + 1) * kg])
                if not ctx.win.identity:
                    cpu.col2im(part.reshape((e - s, oh, ow, kc)), dx4[s:e], kh, kw, sh, sw,
                               dh, dw, ph, pw, groups)
        return dk, db

    parts = threads.run(backward, n)
    dk, db = parts[0]
    for p in parts[1:]:
        dk += p[0]
        db += p[1]
    dx = _out(dx4, dy.ndim) if need_dx else None
    return dk.reshape(kernel.shape), db, dx


def _im2col_into(x4, cols, win, geometry, groups, cpu):
    """im2col of 4-D ``x4`` into ``cols`` (n, oh, ow, K*C, each group's block contiguous):
    the njit loop, or for one channel the engine's strided slices of the padded input,
    written in place (0.46 against 1.3 ms at 64x28x28x1)."""
    n, c = x4.shape[0], x4.shape[-1]
    if c >= _MIN_CHANNELS:
        (kh, kw), (sh, sw), (dh, dw), (ph, pw) = geometry
        cpu.im2col(x4, cols, kh, kw, sh, sw, dh, dw, ph, pw, groups)
        return
    xpad = ref.pad(x4.reshape((n,) + win.in_sizes + (c,)), win.pads, np)
    out = cols.reshape((n,) + win.out_sizes + (-1,))
    for k, taps in enumerate(win.slices()):
        out[..., k * c:(k + 1) * c] = xpad[taps]


def _out(a4, ndim):
    """A 4-D result in the caller's rank (a 1-D layout loses its unit axis)."""
    return a4.reshape((a4.shape[0],) + a4.shape[2:]) if ndim == 3 else a4


def conv_transpose_forward(x, kernel, win):
    """Transposed convolution: the input gradient of the convolution ``win`` describes."""
    return ref.conv_transpose_forward(x, kernel, win, namespace(x, kernel), col2im, matmul)


def conv_transpose_backward(dy, x, kernel, win, need_dx=True):
    """``(dkernel, dx)`` of :func:`conv_transpose_forward`."""
    return ref.conv_transpose_backward(dy, x, kernel, win, namespace(dy, kernel), need_dx,
                                       im2col, matmul)


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
    cpu = _cpu()
    threads.run(lambda i, j: cpu.max_pool(x4[i:j], y[i:j], arg[i:j], kh, kw, sh, sw, ph, pw),
            x4.shape[0])
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
        def grad(i, j):
            cpu.max_pool_grad_tiled(dy4[i:j], arg4[i:j], dx[i:j], kh, kw)
    else:
        def grad(i, j):
            cpu.max_pool_grad(dy4[i:j], arg4[i:j], dx[i:j], kh, kw, sh, sw, ph, pw)
    cpu = _cpu()
    threads.run(grad, dx.shape[0])
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
            a.dtype in (np.float32, np.float64) and a.flags.c_contiguous)


def bias_activation(z, bias, kind, alpha=None):
    """``(y, saved)``: ``y = f(z + bias)`` computed in place on ``z`` (an array the caller
    owns: a convolution's fresh output), and what :func:`activation_bias_grad` needs
    (``y``, or ``z + bias`` for the activations that differentiate from their input).

    On NumPy, ReLU and the bias are one pass (``_cpu_conv.bias_relu``) instead of two.
    """
    xp = namespace(z)
    if kind == "relu" and _fusable(xp, kind, z) and (bias is None or bias.dtype == z.dtype):
        b = bias if bias is not None else xp.zeros(z.shape[-1], dtype=z.dtype)
        z2, cpu = z.reshape(-1, z.shape[-1]), _cpu()
        threads.run(lambda i, j: cpu.bias_relu(z2[i:j], b), z2.shape[0])
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
        dy2, y2, dz2 = (a.reshape(-1, f) for a in (dy, saved, dz))
        cpu = _cpu()

        def grad(i, j):
            db = np.zeros(f, dtype=dy.dtype)
            cpu.relu_grad_bias(dy2[i:j], y2[i:j], dz2[i:j], db)
            return db

        return dz, sum(threads.run(grad, dy2.shape[0]))
    dz = dy if kind is None else activation_grad(kind, dy, saved, alpha)
    return dz, (bias_grad(dz) if with_bias else None)
