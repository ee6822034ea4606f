"""Image sampling for the preprocessing layers, in array-API operations only (NumPy, CuPy,
any namespace): resizing as one matrix product per spatial axis, and the affine sampling of
the random rotation, zoom and translation layers as a gather whose transpose (the input
gradient) is a scatter-add. The fallback of :mod:`xpnet.kernels.image` and the oracle its
``numba.njit`` loops (``_cpu_image.py``) are tested against.

Images are channels-last ``(batch, height, width, channels)`` here; layers with
``channels_first`` data permute at their edges.

Resizing follows Keras's NumPy/JAX backend (``jax.image.scale_and_translate``): half-pixel
centres, output pixel ``j`` samples input position ``(j + 0.5) * in / out - 0.5``, kernel
weights normalised to sum to one, and with ``antialias`` the kernel widened by the
downscaling factor. ``nearest`` takes input pixel ``floor((j + 0.5) * in / out)``.

Affine sampling follows Keras's ``affine_transform`` (scipy's ``map_coordinates`` on the
integer pixel grid): output pixel ``(y, x)`` reads input position
``(b0 x + b1 y + b2, a0 x + a1 y + a2)``; ``bilinear`` mixes the four neighbours,
``nearest`` rounds; neighbours outside the image map back inside by ``fill_mode``
(``reflect``: d c b a | a b c d | d c b a, ``wrap``, ``nearest``: the edge) or, for
``constant``, read ``fill_value``.
"""

import math

from xpnet.backend import namespace

__all__ = ["resize_weights", "resize", "resize_grad", "affine_plan", "affine_sample",
           "affine_sample_grad", "scatter_add_rows"]

FILL_MODES = ("reflect", "wrap", "constant", "nearest")


def _triangle(x, xp):
    return xp.maximum(1.0 - xp.abs(x), xp.zeros_like(x))


def _keys_cubic(x, xp):
    out = ((1.5 * x - 2.5) * x) * x + 1.0
    out = xp.where(x >= 1.0, ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0, out)
    return xp.where(x >= 2.0, xp.zeros_like(x), out)


def _lanczos(radius):
    def kernel(x, xp):
        y = radius * xp.sin(math.pi * x) * xp.sin(math.pi * x / radius)
        safe = xp.where(x != 0, math.pi ** 2 * x * x, xp.ones_like(x))
        out = xp.where(x > 1e-3, y / safe, xp.ones_like(x))
        return xp.where(x > radius, xp.zeros_like(x), out)
    return kernel


KERNELS = {"bilinear": _triangle, "bicubic": _keys_cubic, "lanczos3": _lanczos(3.0),
           "lanczos5": _lanczos(5.0)}
INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "lanczos3", "lanczos5")


def resize_weights(n_in, n_out, interpolation, antialias, xp, device, dtype):
    """The ``(n_in, n_out)`` matrix taking one axis of length ``n_in`` to ``n_out``."""
    f64 = xp.float64
    if interpolation == "nearest":
        j = xp.arange(n_out, dtype=xp.float32, device=device)
        src = xp.astype(xp.floor((j + 0.5) * (n_in / n_out)), xp.int64)  # float32, as Keras
        i = xp.arange(n_in, dtype=xp.int64, device=device)
        return xp.astype(i[:, None] == src[None, :], dtype)
    inv_scale = n_in / n_out
    kernel_scale = max(inv_scale, 1.0) if antialias else 1.0
    sample = (xp.arange(n_out, dtype=f64, device=device) + 0.5) * inv_scale - 0.5
    dist = xp.abs(sample[None, :] - xp.arange(n_in, dtype=f64, device=device)[:, None])
    w = KERNELS[interpolation](dist / kernel_scale, xp)
    total = xp.sum(w, axis=0, keepdims=True)
    ok = xp.abs(total) > 1000.0 * 1.1920929e-07  # 1000 float32 epsilons, as JAX
    w = xp.where(ok, w / xp.where(total != 0, total, xp.ones_like(total)), xp.zeros_like(w))
    inside = (sample >= -0.5) & (sample <= n_in - 0.5)
    return xp.astype(xp.where(inside[None, :], w, xp.zeros_like(w)), dtype)


def _along(x, w, axis, xp):
    """Contract axis ``axis`` of ``x`` with the rows of ``w``: the axis becomes ``w``'s
    columns."""
    perm = [i for i in range(x.ndim) if i != axis] + [axis]
    back = [0] * x.ndim
    for i, p in enumerate(perm):
        back[p] = i
    return xp.permute_dims(xp.permute_dims(x, tuple(perm)) @ w, tuple(back))


def resize(x, weights):
    """``x`` (channels last) with axes 1 and 2 resized by ``weights = (w_h, w_w)``, each
    ``(n_in, n_out)`` or None (axis unchanged)."""
    xp = namespace(x)
    for axis, w in zip((1, 2), weights):
        if w is not None:
            x = _along(x, w, axis, xp)
    return x


def resize_grad(dy, weights):
    """The input gradient of :func:`resize`: the transposed products."""
    xp = namespace(dy)
    for axis, w in zip((1, 2), weights):
        if w is not None:
            dy = _along(dy, xp.matrix_transpose(w), axis, xp)
    return dy


def _fold(i, n, mode, xp):
    """Integer positions ``i`` (float array) mapped into ``[0, n)`` by ``mode``, and whether
    they were inside (only ``constant`` reads outside as ``fill_value``)."""
    inside = (i >= 0) & (i <= n - 1)
    if mode == "reflect":
        m = xp.remainder(i, 2.0 * n)
        i = xp.where(m < n, m, 2.0 * n - 1.0 - m)
    elif mode == "wrap":
        i = xp.remainder(i, float(n))
    else:  # nearest, constant: clamp (constant then ignores the read)
        i = xp.clip(i, 0.0, float(n - 1))
    if mode != "constant":
        inside = xp.ones_like(inside)
    return xp.astype(i, xp.int64), inside


def _corners(c, n, interpolation, mode, xp):
    """Per axis: [(index, weight, inside)] for the neighbours of positions ``c``."""
    if interpolation == "nearest":
        i, inside = _fold(xp.floor(c + 0.5), n, mode, xp)
        return [(i, xp.ones_like(c), inside)]
    lo = xp.floor(c)
    frac = c - lo
    out = []
    for step, w in ((0.0, 1.0 - frac), (1.0, frac)):
        i, inside = _fold(lo + step, n, mode, xp)
        out.append((i, w, inside))
    return out


def affine_plan(transforms, shape, interpolation, fill_mode, dtype):
    """What sampling ``(batch, h, w, c)`` images by per-image affine ``transforms`` reads.

    ``transforms`` is a float64 ``(batch, 6)`` array ``[a0, a1, a2, b0, b1, b2]``. Returns
    ``(rows, weights, fill)``: ``rows (batch, K, h * w)`` indices into the images flattened
    to ``(batch * h * w, c)``, ``weights (batch, K, h * w)`` (zero where ``constant`` reads
    outside) and ``fill (batch, h * w)``, the weight of ``fill_value``.
    """
    xp = namespace(transforms)
    b, h, w = shape[0], shape[1], shape[2]
    dev = getattr(transforms, "device", None)
    ys = xp.reshape(xp.arange(h, dtype=xp.float64, device=dev), (1, h, 1))
    xs = xp.reshape(xp.arange(w, dtype=xp.float64, device=dev), (1, 1, w))
    t = [xp.reshape(transforms[:, k], (b, 1, 1)) for k in range(6)]
    cx = t[0] * xs + t[1] * ys + t[2]
    cy = t[3] * xs + t[4] * ys + t[5]
    base = xp.reshape(xp.arange(b, dtype=xp.int64, device=dev) * (h * w), (b, 1, 1))
    rows, weights = [], []
    for iy, wy, in_y in _corners(cy, h, interpolation, fill_mode, xp):
        for ix, wx, in_x in _corners(cx, w, interpolation, fill_mode, xp):
            rows.append(xp.reshape(base + iy * w + ix, (b, h * w)))
            wt = xp.where(in_y & in_x, wy * wx, xp.zeros_like(wx))
            weights.append(xp.reshape(wt, (b, h * w)))
    weights = xp.stack(weights, axis=1)
    fill = 1.0 - xp.sum(weights, axis=1)
    return xp.stack(rows, axis=1), xp.astype(weights, dtype), xp.astype(fill, dtype)


def affine_sample(x, plan, fill_value):
    """Images ``x (batch, h, w, c)`` sampled by an :func:`affine_plan`."""
    xp = namespace(x)
    rows, weights, fill = plan
    b, h, w, c = x.shape
    flat = xp.reshape(x, (b * h * w, c))
    got = xp.reshape(xp.take(flat, xp.reshape(rows, (-1,)), axis=0),
                     tuple(rows.shape) + (c,))
    y = xp.sum(got * weights[..., None], axis=1)
    if fill_value:
        y = y + fill_value * fill[..., None]
    return xp.reshape(y, (b, h, w, c))


def affine_sample_grad(dy, plan):
    """The input gradient of :func:`affine_sample`: each output's gradient, weighted, added
    into the input pixels it read."""
    xp = namespace(dy)
    rows, weights, _ = plan
    b, h, w, c = dy.shape
    d = xp.reshape(dy, (b, 1, h * w, c)) * weights[..., None]
    dx = scatter_add_rows(xp.reshape(rows, (-1,)), xp.reshape(d, (-1, c)), b * h * w)
    return xp.reshape(dx, (b, h, w, c))


def scatter_add_rows(index, values, n):
    """``out[index[k]] += values[k]`` for ``out`` of ``n`` rows, in standard operations: sort
    the rows by index, take prefix sums (float64, so differences stay exact to ~1e-16 of
    the running total), and difference them at each index's first and last position."""
    xp = namespace(index, values)
    order = xp.argsort(index)
    sorted_index = xp.take(index, order)
    v = xp.astype(xp.take(values, order, axis=0), xp.float64)
    cum = xp.cumulative_sum(v, axis=0, include_initial=True)
    bounds = xp.searchsorted(sorted_index, xp.arange(n + 1, dtype=index.dtype,
                                                     device=getattr(index, "device", None)))
    out = xp.take(cum, bounds[1:], axis=0) - xp.take(cum, bounds[:-1], axis=0)
    return xp.astype(out, values.dtype)
