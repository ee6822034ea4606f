"""Direct loop references for convolutions and pooling, in float64 NumPy: one Python loop
over output positions and kernel offsets, written from the definitions (and Keras's
padding rules) rather than from the engine, for checking forward outputs on small inputs.

All take and return channels-last arrays ``(batch, *spatial, channels)``.
"""

import itertools

import numpy as np


def same_pads(n, k, s, d):
    """Keras's "same" padding of one axis: ``ceil(n / s)`` outputs, the odd pixel at the end."""
    out = -(-n // s)
    total = max((out - 1) * s + d * (k - 1) + 1 - n, 0)
    return total // 2, total - total // 2


def pads_for(sizes, ksize, strides, dilation, padding):
    if padding == "valid":
        return [(0, 0)] * len(sizes)
    if padding == "causal":
        return [(d * (k - 1), 0) for k, d in zip(ksize, dilation)]
    return [same_pads(n, k, s, d) for n, k, s, d in zip(sizes, ksize, strides, dilation)]


def conv(x, kernel, strides, dilation, pads, groups=1):
    """Cross-correlation of ``x`` (n, *in, C) with ``kernel`` (*k, C/groups, F)."""
    r = x.ndim - 2
    xpad = np.pad(x, [(0, 0)] + list(pads) + [(0, 0)])
    ks, (cg, f) = kernel.shape[:r], kernel.shape[r:]
    fg = f // groups
    outs = [(xpad.shape[1 + i] - dilation[i] * (ks[i] - 1) - 1) // strides[i] + 1
            for i in range(r)]
    y = np.zeros([x.shape[0]] + outs + [f])
    for o in itertools.product(*map(range, outs)):
        for off in itertools.product(*map(range, ks)):
            pos = tuple(o[i] * strides[i] + off[i] * dilation[i] for i in range(r))
            patch = xpad[(slice(None),) + pos]
            for g in range(groups):
                y[(slice(None),) + o + (slice(g * fg, (g + 1) * fg),)] += \
                    patch[:, g * cg:(g + 1) * cg] @ kernel[off][:, g * fg:(g + 1) * fg]
    return y


def conv_transpose(x, kernel, strides, dilation, out_sizes, crop_before):
    """Transposed convolution by its definition: every input pixel scatters
    ``x[i] @ kernel[off].T`` to ``i * stride + off * dilation``; the result is cropped by
    ``crop_before`` and cut (or zero-extended) to ``out_sizes``. ``kernel`` is
    (*k, filters, C)."""
    r = x.ndim - 2
    ks, f = kernel.shape[:r], kernel.shape[r]
    full = [(x.shape[1 + i] - 1) * strides[i] + dilation[i] * (ks[i] - 1) + 1
            for i in range(r)]
    size = [max(fu, cb + o) for fu, cb, o in zip(full, crop_before, out_sizes)]
    buf = np.zeros([x.shape[0]] + size + [f])
    for i in itertools.product(*(range(n) for n in x.shape[1:-1])):
        for off in itertools.product(*map(range, ks)):
            pos = tuple(i[a] * strides[a] + off[a] * dilation[a] for a in range(r))
            buf[(slice(None),) + pos] += x[(slice(None),) + i] @ kernel[off].T
    index = tuple(slice(cb, cb + o) for cb, o in zip(crop_before, out_sizes))
    return buf[(slice(None),) + index]


def pool(x, pool_size, strides, pads, mode):
    """Max or average pooling; padding is ignored (never the max, not counted in means)."""
    r = x.ndim - 2
    n_out = [(x.shape[1 + i] + sum(pads[i]) - pool_size[i]) // strides[i] + 1 for i in range(r)]
    y = np.zeros([x.shape[0]] + n_out + [x.shape[-1]])
    for o in itertools.product(*map(range, n_out)):
        lo = [max(o[i] * strides[i] - pads[i][0], 0) for i in range(r)]
        hi = [min(o[i] * strides[i] - pads[i][0] + pool_size[i], x.shape[1 + i])
              for i in range(r)]
        window = x[(slice(None),) + tuple(slice(a, b) for a, b in zip(lo, hi))]
        axes = tuple(range(1, r + 1))
        y[(slice(None),) + o] = window.max(axis=axes) if mode == "max" else \
            window.mean(axis=axes)
    return y


def channels_first(shape):
    """A channels-last shape as channels-first."""
    return (shape[0], shape[-1]) + tuple(shape[1:-1])
