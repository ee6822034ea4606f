"""The convolution engine, in array-API operations only: one implementation for every rank
(1-D, 2-D, 3-D), every padding, stride, dilation and group count, on NumPy, CuPy and any
other namespace. It is also the oracle the Numba kernels in ``_cpu_conv.py`` are tested
against.

Everything works on channels-last arrays ``(batch, *spatial, channels)``; layers with
``data_format="channels_first"`` permute at their edges.

- im2col: the window at each kernel offset is one strided slice of the zero-padded input;
  ``K`` slices stacked on a new axis give ``(batch, *out, K, C)``, which reshapes for free into
  the ``(batch * out, K * C)`` operand of a single matrix product with the kernel
  ``(*kernel_size, C, F)`` reshaped to ``(K * C, F)``. No loop over the batch or the pixels.
- col2im (the input gradient): each offset's columns are added back into a zero-padded
  gradient through the same strided slices, then the padding is cropped off.
- Pooling: the maximum or the sum of the same ``K`` slices; the max records which offset won
  (the first one on ties, as TensorFlow) so the gradient goes to that input alone.
"""

import itertools
import math

__all__ = [
    "Window",
    "window",
    "transpose_window",
    "output_length",
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
]


class Window:
    """Where a sliding-window operation reads its input, per spatial axis.

    Attributes
    ----------
    in_sizes, out_sizes : tuple of int
        Spatial sizes of the input and of the output.
    ksize, strides, dilation : tuple of int
    pads : tuple of (int, int)
        Zeros (or -inf, for max pooling) added before and after each spatial axis.
    """

    __slots__ = ("in_sizes", "out_sizes", "ksize", "strides", "dilation", "pads", "_slices")

    def __init__(self, in_sizes, out_sizes, ksize, strides, dilation, pads):
        self.in_sizes, self.out_sizes = tuple(in_sizes), tuple(out_sizes)
        self.ksize, self.strides = tuple(ksize), tuple(strides)
        self.dilation, self.pads = tuple(dilation), tuple(tuple(p) for p in pads)
        self._slices = None

    @property
    def size(self):
        """``K``, the number of kernel offsets."""
        return math.prod(self.ksize)

    @property
    def padded_sizes(self):
        return tuple(n + b + a for n, (b, a) in zip(self.in_sizes, self.pads))

    @property
    def padded(self):
        return any(b or a for b, a in self.pads)

    @property
    def identity(self):
        """A 1x1 window at stride 1 without padding: im2col is a reshape."""
        return self.size == 1 and not self.padded and all(s == 1 for s in self.strides)

    @property
    def tiles(self):
        """Windows that tile the padded input exactly: no overlap, no gap."""
        return all(s == k * d and d == 1 and o * s == n for s, k, d, o, n in zip(
            self.strides, self.ksize, self.dilation, self.out_sizes, self.padded_sizes))

    def slices(self):
        """One index tuple per kernel offset, in the kernel's row-major order: the strided
        slice of the padded input ``(batch, *padded, C)`` that this offset reads."""
        if self._slices is None:
            out = []
            for offset in itertools.product(*(range(k) for k in self.ksize)):
                spatial = tuple(slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in
                                zip(offset, self.dilation, self.strides, self.out_sizes))
                out.append((slice(None),) + spatial + (slice(None),))
            self._slices = out
        return self._slices

    def __repr__(self):
        return (f"Window(in={self.in_sizes}, out={self.out_sizes}, k={self.ksize}, "
                f"s={self.strides}, d={self.dilation}, pads={self.pads})")


def output_length(n, k, s, d, padding):
    """Keras's output length of a window op along one axis (None stays None)."""
    if n is None:
        return None
    if padding == "valid":
        return (n - d * (k - 1) - 1) // s + 1
    return (n + s - 1) // s  # "same" and "causal"


def window(in_sizes, ksize, strides, dilation, padding):
    """The :class:`Window` of a convolution or pooling, with Keras's padding: "same" puts
    the odd extra pixel at the end; "causal" (1-D) pads only before."""
    out, pads = [], []
    for n, k, s, d in zip(in_sizes, ksize, strides, dilation):
        o = output_length(n, k, s, d, padding)
        span = d * (k - 1) + 1
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "causal":
            pads.append((span - 1, 0))
        else:
            total = max((o - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
        out.append(o)
    return Window(in_sizes, out, ksize, strides, dilation, pads)


def transpose_output_length(n, k, s, d, padding, output_padding=None):
    """Keras's output length of a transposed convolution along one axis."""
    if n is None:
        return None
    span = d * (k - 1) + 1
    if output_padding is None:
        return n * s if padding == "same" else (n - 1) * s + max(span, s)
    if padding == "same":
        return (n - 1) * s + span % 2 + output_padding
    return (n - 1) * s + span + output_padding


def transpose_window(in_sizes, ksize, strides, dilation, padding, output_padding=None):
    """The window of the convolution whose input gradient a transposed convolution is.

    A transposed convolution from ``in_sizes`` to ``out_sizes`` is the adjoint of a
    convolution from ``out_sizes`` to ``in_sizes``: the returned Window maps the output to
    the input (its ``in_sizes`` are the transposed convolution's output sizes). The crop
    before each axis follows Keras (equal to TensorFlow's "same" padding when
    ``output_padding`` is None).
    """
    outs, pads = [], []
    for i, (n, k, s, d) in enumerate(zip(in_sizes, ksize, strides, dilation)):
        op = None if output_padding is None else output_padding[i]
        o = transpose_output_length(n, k, s, d, padding, op)
        span = d * (k - 1) + 1
        if padding == "valid":
            before = 0
        else:
            pad_len = s + span - 2 if op is None else span + span % 2 - 2 + op
            before = span - 1 - min(pad_len // 2 + pad_len % 2, span - 1)
        full = (n - 1) * s + span  # what the scatter of every input pixel covers
        pads.append((before, max(full - before - o, 0)))
        outs.append(o)
    return Window(outs, in_sizes, ksize, strides, dilation, pads)


def _device(x):
    return getattr(x, "device", None)


def pad(x, pads, xp, value=0.0):
    """``x`` (batch, *spatial, C) with ``pads`` [(before, after), ...] of ``value`` added."""
    if not any(b or a for b, a in pads):
        return x
    shape = (x.shape[0],) + tuple(n + b + a for n, (b, a) in zip(x.shape[1:-1], pads)) + \
        (x.shape[-1],)
    out = xp.full(shape, value, dtype=x.dtype, device=_device(x))
    out[_inner(pads, x.shape[1:-1])] = x
    return out


def _inner(pads, sizes):
    return (slice(None),) + tuple(slice(b, b + n) for (b, _), n in zip(pads, sizes)) + \
        (slice(None),)


def crop(x, pads):
    """The inverse of :func:`pad`: the interior of ``x`` (a view where the namespace has
    views)."""
    if not any(b or a for b, a in pads):
        return x
    sizes = tuple(n - b - a for n, (b, a) in zip(x.shape[1:-1], pads))
    return x[_inner(pads, sizes)]


def im2col(x, win, xp):
    """Windows of ``x`` (batch, *in, C) as ``(batch, *out, K, C)``: K strided slices."""
    if win.identity:
        return xp.reshape(x, tuple(x.shape[:-1]) + (1, x.shape[-1]))
    xpad = pad(x, win.pads, xp)
    return xp.stack([xpad[s] for s in win.slices()], axis=-2)


def col2im(cols, win, xp):
    """The adjoint of :func:`im2col`: ``cols`` (batch, *out, K, C) summed back into
    ``(batch, *in, C)``."""
    n, c = cols.shape[0], cols.shape[-1]
    if win.identity:
        return xp.reshape(cols, (n,) + win.in_sizes + (c,))
    tiles = win.tiles  # each input pixel belongs to one window: assign, don't add
    acc = _buffer(cols, (n,) + win.padded_sizes + (c,), tiles, xp)
    for k, s in enumerate(win.slices()):
        if tiles:
            acc[s] = cols[..., k, :]
        else:
            acc[s] += cols[..., k, :]
    return crop(acc, win.pads)


def _buffer(like, shape, tiles, xp):
    """A gradient buffer: uninitialized where the windows will overwrite all of it."""
    make = xp.empty if tiles else xp.zeros
    return make(shape, dtype=like.dtype, device=_device(like))


# -- convolution: im2col and one matrix product (grouped: one batched product) ----------
def _pack_cols(cols, groups, xp):
    """(batch, *out, K, C) -> (M, K*C), or (G, M, K*C/G) for grouped convolutions."""
    m, k, c = math.prod(cols.shape[:-2]), cols.shape[-2], cols.shape[-1]
    if groups == 1:
        return xp.reshape(cols, (m, k * c))
    g = xp.reshape(cols, (m, k, groups, c // groups))
    return xp.reshape(xp.permute_dims(g, (2, 0, 1, 3)), (groups, m, k * (c // groups)))


def _unpack_cols(cols2, shape, groups, xp):
    """The inverse of :func:`_pack_cols`, back to ``shape`` (batch, *out, K, C)."""
    if groups == 1:
        return xp.reshape(cols2, shape)
    m, k, c = math.prod(shape[:-2]), shape[-2], shape[-1]
    g = xp.reshape(cols2, (groups, m, k, c // groups))
    return xp.reshape(xp.permute_dims(g, (1, 2, 0, 3)), shape)


def _pack_kernel(kernel, groups, xp):
    """(*ksize, C/G, F) -> (K*C, F), or (G, K*C/G, F/G): filter f belongs to group
    ``f // (F/G)``, as Keras and TensorFlow group them."""
    k, cg, f = math.prod(kernel.shape[:-2]), kernel.shape[-2], kernel.shape[-1]
    if groups == 1:
        return xp.reshape(kernel, (k * cg, f))
    w = xp.reshape(kernel, (k, cg, groups, f // groups))
    return xp.reshape(xp.permute_dims(w, (2, 0, 1, 3)), (groups, k * cg, f // groups))


def _unpack_kernel(w2, shape, groups, xp):
    if groups == 1:
        return xp.reshape(w2, shape)
    k, cg, f = math.prod(shape[:-2]), shape[-2], shape[-1]
    w = xp.reshape(w2, (groups, k, cg, f // groups))
    return xp.reshape(xp.permute_dims(w, (1, 2, 0, 3)), shape)


def _merge_groups(z, xp):
    """(G, M, F/G) -> (M, F)."""
    g, m, fg = z.shape
    return xp.reshape(xp.permute_dims(z, (1, 0, 2)), (m, g * fg))


def _split_groups(dz2, groups, xp):
    """(M, F) -> (G, M, F/G)."""
    m, f = dz2.shape
    return xp.permute_dims(xp.reshape(dz2, (m, groups, f // groups)), (1, 0, 2))


def _matmul(a, b):
    return a @ b


def conv_forward(x, kernel, win, groups, xp, im2col_fn=None, matmul=_matmul):
    """``z = conv(x, kernel)`` on channels-last ``x``; returns ``(z (batch, *out, F), cols)``,
    ``cols`` being what :func:`conv_backward` needs. ``im2col_fn`` and ``matmul`` replace
    :func:`im2col` and ``@`` (the dispatcher passes its faster ones)."""
    cols = _pack_cols((im2col_fn or im2col)(x, win, xp), groups, xp)
    z = matmul(cols, _pack_kernel(kernel, groups, xp))
    if groups != 1:
        z = _merge_groups(z, xp)
    return xp.reshape(z, (x.shape[0],) + win.out_sizes + (kernel.shape[-1],)), cols


def conv_backward(dz, cols, kernel, win, groups, xp, need_dx=True, col2im_fn=None,
                  matmul=_matmul):
    """``(dkernel, dx)`` for ``dz`` (batch, *out, F); ``dx`` is None without ``need_dx``."""
    f = kernel.shape[-1]
    dz2 = xp.reshape(dz, (-1, f))
    if groups != 1:
        dz2 = _split_groups(dz2, groups, xp)
    dkernel = _unpack_kernel(matmul(cols.mT, dz2), tuple(kernel.shape), groups, xp)
    if not need_dx:
        return dkernel, None
    dcols = matmul(dz2, _pack_kernel(kernel, groups, xp).mT)
    c = kernel.shape[-2] * groups
    shape = (dz.shape[0],) + win.out_sizes + (win.size, c)
    return dkernel, (col2im_fn or col2im)(_unpack_cols(dcols, shape, groups, xp), win, xp)


def conv_transpose_forward(x, kernel, win, xp, col2im_fn=None, matmul=_matmul):
    """Transposed convolution of channels-last ``x`` (batch, *in, F): the input gradient of
    the convolution ``win`` describes, with ``kernel`` (*ksize, C, F). Returns
    ``(batch, *win.in_sizes, C)``."""
    w2 = _pack_kernel(kernel, 1, xp)
    x2 = xp.reshape(x, (-1, kernel.shape[-1]))
    shape = (x.shape[0],) + win.out_sizes + (win.size, kernel.shape[-2])
    return (col2im_fn or col2im)(xp.reshape(matmul(x2, w2.mT), shape), win, xp)


def conv_transpose_backward(dy, x, kernel, win, xp, need_dx=True, im2col_fn=None,
                            matmul=_matmul):
    """``(dkernel, dx)`` of :func:`conv_transpose_forward`: a convolution of ``dy``."""
    cols = _pack_cols((im2col_fn or im2col)(dy, win, xp), 1, xp)
    x2 = xp.reshape(x, (-1, kernel.shape[-1]))
    dkernel = xp.reshape(matmul(cols.mT, x2), tuple(kernel.shape))
    if not need_dx:
        return dkernel, None
    return dkernel, xp.reshape(matmul(cols, _pack_kernel(kernel, 1, xp)), tuple(x.shape))


# -- pooling -----------------------------------------------------------------------------
def max_pool(x, win, xp):
    """``(y, arg)``: the maximum of each window and the offset (int8/int16) it came from;
    the first offset wins ties. Padding is -inf, so it never wins."""
    xpad = pad(x, win.pads, xp, value=-math.inf)
    slices = win.slices()
    y = xpad[slices[0]]
    arg = xp.zeros(y.shape, dtype=xp.int8 if len(slices) < 128 else xp.int16,
                   device=_device(x))
    for k, s in enumerate(slices[1:], 1):
        v = xpad[s]
        better = v > y
        y = xp.where(better, v, y)
        arg = xp.where(better, k, arg)
    return y, arg


def max_pool_grad(dy, arg, win, xp):
    """Route ``dy`` to the input that won each window."""
    tiles = win.tiles
    acc = _buffer(dy, (dy.shape[0],) + win.padded_sizes + (dy.shape[-1],), tiles, xp)
    for k, s in enumerate(win.slices()):
        if tiles:
            acc[s] = xp.where(arg == k, dy, 0.0)
        else:
            acc[s] += xp.where(arg == k, dy, 0.0)
    return crop(acc, win.pads)


def _window_counts(win, dtype, device, xp):
    """How many real (unpadded) inputs each window covers: (1, *out, 1), or an int."""
    if not win.padded:
        return win.size
    ones = pad(xp.ones((1,) + win.in_sizes + (1,), dtype=dtype, device=device), win.pads, xp)
    total = None
    for s in win.slices():
        total = ones[s] if total is None else total + ones[s]
    return total


def avg_pool(x, win, xp):
    """Mean of each window over its real inputs (padding is not counted, as Keras)."""
    xpad = pad(x, win.pads, xp)
    total = None
    for s in win.slices():
        total = xpad[s] if total is None else total + xpad[s]
    return total / _window_counts(win, x.dtype, _device(x), xp)


def avg_pool_grad(dy, win, xp):
    g = dy / _window_counts(win, dy.dtype, _device(dy), xp)
    tiles = win.tiles
    acc = _buffer(dy, (dy.shape[0],) + win.padded_sizes + (dy.shape[-1],), tiles, xp)
    for s in win.slices():
        if tiles:
            acc[s] = g
        else:
            acc[s] += g
    return crop(acc, win.pads)
