"""``numba.njit`` loops for the affine sampling of channels-last NumPy images: one pass
over the output pixels computes each one's source position, its neighbours and their
weights, and reads (forward) or adds into (backward) the input directly, where the array-API
composition materialises index and weight arrays and scatters through a sort
(benchmarks in /work/notes/results-layers10.md: 32x32x32x3, rotation forward 8.0 -> ~1 ms,
backward 22 -> ~1 ms). Same rules as ``reference_image.py``; serial."""

import math

import numba

_njit = numba.njit(cache=True, error_model="numpy", nogil=True, boundscheck=False)

REFLECT, WRAP, CONSTANT, NEAREST = 0, 1, 2, 3
MODES = {"reflect": REFLECT, "wrap": WRAP, "constant": CONSTANT, "nearest": NEAREST}


@_njit
def _fold(i, n, mode):
    """Integer position ``i`` mapped into ``[0, n)``; -1 where ``constant`` reads outside."""
    if 0 <= i < n:
        return i
    if mode == REFLECT:
        m = i % (2 * n)
        return m if m < n else 2 * n - 1 - m
    if mode == WRAP:
        return i % n
    if mode == NEAREST:
        return 0 if i < 0 else n - 1
    return -1


@_njit
def _taps(c, n, order, mode, idx, wts):
    """Neighbours of position ``c`` on an axis of length ``n`` into ``idx``/``wts``;
    returns how many (1 for nearest, 2 for linear)."""
    if order == 0:
        idx[0] = _fold(int(math.floor(c + 0.5)), n, mode)
        wts[0] = 1.0
        return 1
    lo = math.floor(c)
    frac = c - lo
    idx[0] = _fold(int(lo), n, mode)
    idx[1] = _fold(int(lo) + 1, n, mode)
    wts[0], wts[1] = 1.0 - frac, frac
    return 2


@_njit
def affine_forward(x, t, order, mode, fill, out):
    """``out[b, y, x]`` = the image ``b`` sampled at ``(t3 x + t4 y + t5, t0 x + t1 y + t2)``."""
    n, h, w, ch = x.shape
    iy = [0, 0]
    ix = [0, 0]
    wy = [0.0, 0.0]
    wx = [0.0, 0.0]
    for b in range(n):
        a0, a1, a2, b0, b1, b2 = t[b, 0], t[b, 1], t[b, 2], t[b, 3], t[b, 4], t[b, 5]
        for yy in range(h):
            for xx in range(w):
                ny = _taps(b0 * xx + b1 * yy + b2, h, order, mode, iy, wy)
                nx = _taps(a0 * xx + a1 * yy + a2, w, order, mode, ix, wx)
                for c in range(ch):
                    out[b, yy, xx, c] = 0.0
                for p in range(ny):
                    for q in range(nx):
                        wt = wy[p] * wx[q]
                        if iy[p] < 0 or ix[q] < 0:
                            for c in range(ch):
                                out[b, yy, xx, c] += wt * fill
                        else:
                            for c in range(ch):
                                out[b, yy, xx, c] += wt * x[b, iy[p], ix[q], c]


@_njit
def affine_backward(dy, t, order, mode, dx):
    """The transpose of :func:`affine_forward`: ``dx`` (zeroed here) gathers each output
    pixel's gradient, weighted, into the input pixels it read."""
    n, h, w, ch = dy.shape
    iy = [0, 0]
    ix = [0, 0]
    wy = [0.0, 0.0]
    wx = [0.0, 0.0]
    dx[...] = 0.0
    for b in range(n):
        a0, a1, a2, b0, b1, b2 = t[b, 0], t[b, 1], t[b, 2], t[b, 3], t[b, 4], t[b, 5]
        for yy in range(h):
            for xx in range(w):
                ny = _taps(b0 * xx + b1 * yy + b2, h, order, mode, iy, wy)
                nx = _taps(a0 * xx + a1 * yy + a2, w, order, mode, ix, wx)
                for p in range(ny):
                    for q in range(nx):
                        if iy[p] >= 0 and ix[q] >= 0:
                            wt = wy[p] * wx[q]
                            for c in range(ch):
                                dx[b, iy[p], ix[q], c] += wt * dy[b, yy, xx, c]
