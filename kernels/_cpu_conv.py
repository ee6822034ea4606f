"""``numba.njit`` kernels for 2-D windows on channels-last NumPy arrays (1-D runs as 2-D
with a unit axis): im2col, col2im and max pooling with its gradient.

The array-API engine (``reference_conv.py``) stacks K strided slices of a padded copy; these
loops read the input once, treat out-of-range pixels as padding without building the padded
copy, and write each output once. They win where the channel axis is long enough for the
inner copy loop to matter (benchmarks/RESULTS.md, "Convolutions"); for one channel NumPy's
strided copies are faster and the dispatcher keeps them.

Serial and ``cache=True``, as ``_cpu.py`` (TOOLCHAIN.md, section 3).
"""

import numba
import numpy as np


def _jit(f):
    return numba.njit(cache=True, error_model="numpy", nogil=True, boundscheck=False)(f)


@_jit
def im2col(x, out, kh, kw, sh, sw, dh, dw, ph, pw):
    """``out[b, i, j, (a*kw + e)*C + c] = x[b, i*sh + a*dh - ph, j*sw + e*dw - pw, c]``,
    zero outside ``x``. ``out`` is (n, oh, ow, kh*kw*C)."""
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for b in range(n):
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


@_jit
def col2im(cols, dx, kh, kw, sh, sw, dh, dw, ph, pw):
    """The adjoint of :func:`im2col`: ``dx`` (n, h, w, C) = the sum of the columns that
    read each pixel. ``dx`` is overwritten."""
    n, h, w, c = dx.shape
    oh, ow = cols.shape[1], cols.shape[2]
    dx[...] = 0.0
    for b in range(n):
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


@_jit
def max_pool(x, y, arg, kh, kw, sh, sw, ph, pw):
    """Window maxima into ``y`` and the winning offset ``a*kw + e`` into ``arg``; the first
    maximum wins ties; pixels outside ``x`` (the padding) never win."""
    n, h, w, c = x.shape
    oh, ow = y.shape[1], y.shape[2]
    for b in range(n):
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


@_jit
def max_pool_grad(dy, arg, dx, kh, kw, sh, sw, ph, pw):
    """``dy`` routed to each window's winner, summed where windows overlap. ``dx`` is
    overwritten."""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    dx[...] = 0.0
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    k = arg[b, i, j, ch]
                    a = k // kw
                    r, q = i * sh + a - ph, j * sw + (k - a * kw) - pw
                    if r >= 0 and r < h and q >= 0 and q < w:  # a window of -inf wins nowhere
                        dx[b, r, q, ch] += dy[b, i, j, ch]


@_jit
def max_pool_grad_tiled(dy, arg, dx, kh, kw):
    """:func:`max_pool_grad` for windows that tile ``dx`` exactly (stride == pool size, no
    padding): every pixel of ``dx`` is written once, winners with ``dy``, the rest with 0."""
    n, oh, ow, c = dy.shape
    for b in range(n):
        for i in range(oh):
            for a in range(kh):
                for j in range(ow):
                    for e in range(kw):
                        k = a * kw + e
                        for ch in range(c):
                            if arg[b, i, j, ch] == k:
                                dx[b, i * kh + a, j * kw + e, ch] = dy[b, i, j, ch]
                            else:
                                dx[b, i * kh + a, j * kw + e, ch] = 0.0


@_jit
def bias_relu(z, bias):
    """In place: ``z = max(z + bias, 0)`` on rows (M, F)."""
    m, f = z.shape
    for i in range(m):
        for j in range(f):
            v = z[i, j] + bias[j]
            z[i, j] = v if v > 0 else 0.0


@_jit
def relu_grad_bias(dy, y, dz, db):
    """``dz = dy * (y > 0)`` on rows (M, F), and ``db += sum(dz, axis=0)``: one pass over
    memory (this is bandwidth-bound: 0.68 ms at 43264x32, against 0.63 + 0.19 ms apart)."""
    m, f = dy.shape
    acc = np.zeros(f, dtype=dy.dtype)
    for i in range(m):
        for j in range(f):
            g = dy[i, j] * (y[i, j] > 0)
            dz[i, j] = g
            acc[j] += g
    for j in range(f):
        db[j] += acc[j]
