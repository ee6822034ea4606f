"""``numba.njit`` kernels for 2-D windows on channels-last NumPy arrays (1-D runs as 2-D
with a unit axis): im2col, col2im, max pooling and its gradient, the bias + ReLU passes,
and the kernel gradient of a convolution with few input channels.

The array-API engine (``reference_conv.py``) stacks K strided slices of a padded copy; these
loops read the input once, treat out-of-range pixels as padding without building the padded
copy, and write each output once (benchmarks/RESULTS.md, "Convolutions").

All are serial and release the GIL: :mod:`xpnet.kernels.conv` runs them on chunks of the
batch side by side (:mod:`xpnet.kernels.threads`).
"""

import numba
import numpy as np

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True, "boundscheck": False}
_njit = numba.njit(**_OPTIONS)


@_njit
def im2col(x, out, kh, kw, sh, sw, dh, dw, ph, pw, groups):
    """``out[b, i, j, g*K*Cg + (a*kw + e)*Cg + c] = x[b, i*sh + a*dh - ph, j*sw + e*dw - pw,
    g*Cg + c]``, zero outside ``x``, with ``K = kh*kw`` and ``Cg = C / groups``: each
    group's columns are one contiguous block of a row (with one group, the engine's
    (tap, channel) order). ``out`` is (n, oh, ow, K*C)."""
    if groups == 1:  # its own loop nest: the grouped one ran the common case 1.8x slower
        _im2col_one(x, out, kh, kw, sh, sw, dh, dw, ph, pw)
        return
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    cg = c // groups
    kg = kh * kw * cg
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for a in range(kh):
                    r = i * sh + a * dh - ph
                    for e in range(kw):
                        q = j * sw + e * dw - pw
                        tap = (a * kw + e) * cg
                        inside = r >= 0 and r < h and q >= 0 and q < w
                        for g in range(groups):
                            base, src = g * kg + tap, g * cg
                            if inside:
                                for ch in range(cg):
                                    out[b, i, j, base + ch] = x[b, r, q, src + ch]
                            else:
                                for ch in range(cg):
                                    out[b, i, j, base + ch] = 0.0


@_njit
def _im2col_one(x, out, kh, kw, sh, sw, dh, dw, ph, pw):
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


@_njit
def col2im(cols, dx, kh, kw, sh, sw, dh, dw, ph, pw, groups):
    """The adjoint of :func:`im2col` (same column order): ``dx`` (n, h, w, C) = the sum of
    the columns that read each pixel. ``dx`` is overwritten."""
    if groups == 1:  # its own loop nest, as im2col's
        _col2im_one(cols, dx, kh, kw, sh, sw, dh, dw, ph, pw)
        return
    n, h, w, c = dx.shape
    oh, ow = cols.shape[1], cols.shape[2]
    cg = c // groups
    kg = kh * kw * cg
    for b in range(n):
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
                        tap = (a * kw + e) * cg
                        for g in range(groups):
                            base, dst = g * kg + tap, g * cg
                            for ch in range(cg):
                                dx[b, r, q, dst + ch] += cols[b, i, j, base + ch]


@_njit
def _col2im_one(cols, dx, kh, kw, sh, sw, dh, dw, ph, pw):
    n, h, w, c = dx.shape
    oh, ow = cols.shape[1], cols.shape[2]
    for b in range(n):
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


@_njit
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


@_njit
def max_pool_grad(dy, arg, dx, kh, kw, sh, sw, ph, pw):
    """``dy`` routed to each window's winner, summed where windows overlap. ``dx`` is
    overwritten."""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    for b in range(n):
        dx[b] = 0.0
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    k = arg[b, i, j, ch]
                    a = k // kw
                    r, q = i * sh + a - ph, j * sw + (k - a * kw) - pw
                    if r >= 0 and r < h and q >= 0 and q < w:  # a window of -inf wins nowhere
                        dx[b, r, q, ch] += dy[b, i, j, ch]


@_njit
def max_pool_grad_tiled(dy, arg, dx, kh, kw):
    """:func:`max_pool_grad` for windows at stride == pool size without padding: every pixel
    of ``dx`` is written once, each window's winner with ``dy`` and the rest (and the rows
    and columns no window reaches) with 0."""
    n, h, w, c = dx.shape
    oh, ow = dy.shape[1], dy.shape[2]
    for b in range(n):
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


@_njit
def bias_relu(z, bias):
    """In place: ``z = max(z + bias, 0)`` on rows (M, F)."""
    m, f = z.shape
    for i in range(m):
        for j in range(f):
            v = z[i, j] + bias[j]
            z[i, j] = v if v > 0 else 0.0


@_njit
def relu_grad_bias(dy, y, dz, db):
    """``dz = dy * (y > 0)`` on rows (M, F), and ``db += sum(dz, axis=0)``: one pass over
    memory (0.68 ms at 43264x32, against 0.63 + 0.19 ms apart)."""
    m, f = dy.shape
    acc = np.zeros(f, dtype=db.dtype)  # not db itself: see grad_narrow
    for i in range(m):
        for j in range(f):
            g = dy[i, j] * (y[i, j] > 0)
            dz[i, j] = g
            acc[j] += g
    for j in range(f):
        db[j] += acc[j]


@_njit
def grad_narrow(cols, dy, y, dk_out, db_out, relu):
    """``dk_out += cols.T @ g`` and ``db_out += sum(g, axis=0)`` with ``g = dy * (y > 0)``
    under ``relu`` (else ``dy``), for columns (P, m) of few values (a first layer's one or
    three channels); ``g`` is never stored, its rows pass four at a time through a small
    buffer.

    OpenBLAS's product of this shape (m x P by P x F) does not speed up when two threads
    call it at once (0.9 ms alone, 1.2 ms as two concurrent halves at m=9, P=43264, F=32);
    this loop does (0.88 ms alone, 0.5 ms as two halves).

    The sums go to arrays this call allocates and only then into the outputs: two threads'
    small output arrays can share a cache line. (Rebinding the argument names to the new
    arrays instead made the loop 2x slower.)"""
    p_total, m = cols.shape
    n = dy.shape[1]
    g = np.empty((4, n), dtype=dy.dtype)
    dk = np.zeros((m, n), dtype=dk_out.dtype)
    db = np.zeros(n, dtype=db_out.dtype)
    for p0 in range(0, p_total, 4):
        rows = min(4, p_total - p0)
        for r in range(rows):
            if relu:
                for t in range(n):
                    v = dy[p0 + r, t] * (y[p0 + r, t] > 0)
                    g[r, t] = v
                    db[t] += v
            else:
                for t in range(n):
                    v = dy[p0 + r, t]
                    g[r, t] = v
                    db[t] += v
        if rows == 4:
            g0, g1, g2, g3 = g[0], g[1], g[2], g[3]
            for k in range(m):
                c0, c1 = cols[p0, k], cols[p0 + 1, k]
                c2, c3 = cols[p0 + 2, k], cols[p0 + 3, k]
                acc = dk[k]
                for t in range(n):
                    acc[t] += c0 * g0[t] + c1 * g1[t] + c2 * g2[t] + c3 * g3[t]
        else:
            for r in range(rows):
                for k in range(m):
                    c = cols[p0 + r, k]
                    for t in range(n):
                        dk[k, t] += c * g[r, t]
    dk_out += dk
    db_out += db
