"""Array-API compositions of the box kernels: the fallback for namespaces without a kernel
and the oracle the Numba kernels are tested against.

RoIAlign is separable: a bin's samples form a product grid, and both the bilinear weights
and torchvision's validity test (``-1 <= y <= H`` and ``-1 <= x <= W``) factor into a row
part and a column part. So RoI ``k`` is read as ``Ay[k] @ F[b_k] @ Ax[k].T`` per channel,
with ``Ay`` of shape (out_h, H) and ``Ax`` (out_w, W) holding each bin's summed taps, and
the backward pass is the transposed products; the scatter into the batch is a one-hot matmul.
"""

import math

__all__ = ["nms_keep", "roi_align", "roi_align_grad", "roi_pool", "roi_pool_grad"]


def _dev(a):
    return a.device


def pairwise_iou(a, b, xp):
    """``(len(a), len(b))`` IoU, ``inter / (area_a + area_b - inter)`` (0/0 is NaN)."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = xp.minimum(a[:, None, 2], b[None, :, 2]) - xp.maximum(a[:, None, 0], b[None, :, 0])
    h = xp.minimum(a[:, None, 3], b[None, :, 3]) - xp.maximum(a[:, None, 1], b[None, :, 1])
    inter = xp.clip(w, 0.0, None) * xp.clip(h, 0.0, None)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def nms_keep(boxes, classes, iou_threshold, xp):
    """Keep mask of greedy NMS over boxes already sorted by decreasing score: box ``j`` is
    dropped when a kept box ``i < j`` of the same class overlaps it by IoU > threshold."""
    n = boxes.shape[0]
    iou = pairwise_iou(boxes, boxes, xp)
    idx = xp.arange(n, device=_dev(boxes))
    later = idx[None, :] > idx[:, None]
    hits = (iou > iou_threshold) & later & (classes[:, None] == classes[None, :])
    keep = xp.ones(n, dtype=xp.bool, device=_dev(boxes))
    for i in range(n):  # n vector steps, no host sync: keep[i] stays on the device
        keep = keep & ~(hits[i, :] & keep[i])
    return keep


def _axis_taps(start, bin_size, grid, n_out, size, gmax, xp, dtype):
    """(K, n_out, size) summed bilinear weights of each bin's samples along one axis."""
    dev = _dev(start)
    p = xp.reshape(xp.arange(n_out, dtype=dtype, device=dev), (1, -1, 1))
    i = xp.reshape(xp.arange(gmax, dtype=dtype, device=dev), (1, 1, -1))
    g = xp.reshape(xp.astype(grid, dtype), (-1, 1, 1))
    s0, bs = xp.reshape(start, (-1, 1, 1)), xp.reshape(bin_size, (-1, 1, 1))
    v = s0 + p * bs + (i + 0.5) * bs / xp.where(g > 0, g, 1.0)
    ok = (v >= -1.0) & (v <= size) & (i < g)
    v = xp.clip(v, 0.0, None)
    low = xp.floor(v)
    top = low >= size - 1
    low = xp.where(top, float(size - 1), low)
    frac = xp.where(top, 0.0, v - low)
    high = xp.where(top, low, low + 1.0)
    cells = xp.reshape(xp.arange(size, dtype=dtype, device=dev), (1, 1, 1, -1))
    w = (xp.astype(low[..., None] == cells, dtype) * (1.0 - frac)[..., None]
         + xp.astype(high[..., None] == cells, dtype) * frac[..., None])
    return xp.sum(xp.where(ok[..., None], w, 0.0), axis=2)


def _align_taps(rois, shape, out, scale, sampling_ratio, aligned, xp):
    _, height, width, _ = shape
    dtype = rois.dtype
    off = 0.5 if aligned else 0.0
    x1, y1 = rois[:, 1] * scale - off, rois[:, 2] * scale - off
    w, h = rois[:, 3] * scale - off - x1, rois[:, 4] * scale - off - y1
    if not aligned:
        w, h = xp.clip(w, 1.0, None), xp.clip(h, 1.0, None)
    if sampling_ratio > 0:
        gh = gw = xp.full(h.shape, float(sampling_ratio), dtype=dtype, device=_dev(rois))
    else:
        gh, gw = xp.ceil(h / out[0]), xp.ceil(w / out[1])
    # the one host read of the reference: how many sample rows to lay out
    gmax = max(int(xp.max(gh)) if h.shape[0] else 0, int(xp.max(gw)) if h.shape[0] else 0, 1)
    ay = _axis_taps(y1, h / out[0], gh, out[0], height, gmax, xp, dtype)
    ax = _axis_taps(x1, w / out[1], gw, out[1], width, gmax, xp, dtype)
    count = xp.clip(xp.where((gh > 0) & (gw > 0), gh * gw, 1.0), 1.0, None)
    return ay, ax, count


def _batch_onehot(rois, n, dtype, xp):
    b = xp.astype(rois[:, 0], xp.int64)
    return xp.astype(b[:, None] == xp.arange(n, device=_dev(rois))[None, :], dtype)


def roi_align(features, rois, out, scale, sampling_ratio, aligned, xp):
    """(K, out_h, out_w, C): the mean of each bin's bilinear samples of ``features``."""
    n, height, width, c = features.shape
    rois = xp.astype(rois, features.dtype)
    ay, ax, count = _align_taps(rois, features.shape, out, scale, sampling_ratio, aligned, xp)
    k = rois.shape[0]
    onehot = _batch_onehot(rois, n, features.dtype, xp)
    fk = xp.reshape(onehot @ xp.reshape(features, (n, -1)), (k, height, width * c))
    t = xp.reshape(ay @ fk, (k, out[0], width, c))
    t = xp.permute_dims(t, (0, 1, 3, 2)) @ xp.reshape(xp.permute_dims(ax, (0, 2, 1)),
                                                     (k, 1, width, out[1]))
    y = xp.permute_dims(t, (0, 1, 3, 2))
    return y / xp.reshape(count, (-1, 1, 1, 1))


def roi_align_grad(dy, rois, shape, scale, sampling_ratio, aligned, xp):
    """dL/dfeatures of shape ``shape`` from ``dy = dL/dy``; overlapping RoIs add up."""
    n, height, width, c = shape
    k, oh, ow, _ = dy.shape
    rois = xp.astype(rois, dy.dtype)
    ay, ax, count = _align_taps(rois, shape, (oh, ow), scale, sampling_ratio, aligned, xp)
    g = dy / xp.reshape(count, (-1, 1, 1, 1))
    t = xp.reshape(ax, (k, 1, ow, width)).mT @ g  # (K, oh, W, C)
    t = xp.reshape(ay.mT @ xp.reshape(t, (k, oh, width * c)), (k, -1))  # (K, H*W*C)
    onehot = _batch_onehot(rois, n, dy.dtype, xp)
    return xp.reshape(onehot.mT @ t, shape)


def _pool_masks(rois, shape, out, scale, xp):
    """(K, out, size) bool masks of each bin's rows and columns, as torchvision rounds."""
    _, height, width, _ = shape

    def rnd(v):  # std::round: half away from zero
        return xp.sign(v) * xp.floor(xp.abs(v) + 0.5)

    def axis(a, b, n_out, size):
        a, b = rnd(a * scale), rnd(b * scale)
        bin_size = xp.clip(b - a + 1.0, 1.0, None) / n_out
        p = xp.reshape(xp.arange(n_out, dtype=rois.dtype, device=_dev(rois)), (1, -1))
        lo = xp.clip(xp.floor(p * bin_size[:, None]) + a[:, None], 0.0, float(size))
        hi = xp.clip(xp.ceil((p + 1) * bin_size[:, None]) + a[:, None], 0.0, float(size))
        cells = xp.reshape(xp.arange(size, dtype=rois.dtype, device=_dev(rois)), (1, 1, -1))
        return (cells >= lo[..., None]) & (cells < hi[..., None])

    return axis(rois[:, 2], rois[:, 4], out[0], height), axis(rois[:, 1], rois[:, 3], out[1],
                                                               width)


def roi_pool(features, rois, out, scale, xp):
    """``(y, argmax)``: each bin's maximum (0 for an empty bin) and its flat index
    ``h * W + w`` in the image (the first in row-major order; -1 for an empty bin)."""
    n, height, width, c = features.shape
    rois = xp.astype(rois, features.dtype)
    mh, mw = _pool_masks(rois, features.shape, out, scale, xp)
    k = rois.shape[0]
    onehot = _batch_onehot(rois, n, features.dtype, xp)
    fk = xp.reshape(onehot @ xp.reshape(features, (n, -1)), (k, height, 1, width, c))
    neg = -math.inf
    a = xp.where(mw[:, None, :, :, None], fk, neg)  # (K, H, ow, W, C)
    m1, w_at = xp.max(a, axis=3), xp.argmax(a, axis=3)  # (K, H, ow, C)
    b = xp.where(mh[:, :, :, None, None], xp.expand_dims(m1, axis=1), neg)  # (K, oh, H, ow, C)
    y, h_at = xp.max(b, axis=2), xp.argmax(b, axis=2)  # (K, oh, ow, C)
    w_at = xp.broadcast_to(xp.expand_dims(w_at, axis=1), (k, out[0]) + tuple(w_at.shape[1:]))
    w_at = xp.squeeze(xp.take_along_axis(w_at, xp.expand_dims(h_at, axis=2), axis=2), axis=2)
    empty = ~(xp.any(mh, axis=2)[:, :, None] & xp.any(mw, axis=2)[:, None, :])[..., None]
    y = xp.where(empty, xp.zeros_like(y), y)
    argmax = xp.where(empty, -1, h_at * width + w_at)
    return y, argmax


def roi_pool_grad(dy, argmax, rois, shape, xp):
    """dL/dfeatures: each bin's gradient to its argmax (none from an empty bin)."""
    n, height, width, c = shape
    k = dy.shape[0]
    cells = xp.arange(height * width, device=_dev(dy))
    hit = xp.astype(argmax[..., None] == cells, dy.dtype)  # (K, oh, ow, C, HW)
    t = xp.sum(hit * dy[..., None], axis=(1, 2))  # (K, C, HW)
    t = xp.reshape(xp.permute_dims(t, (0, 2, 1)), (k, -1))
    onehot = _batch_onehot(xp.astype(rois, dy.dtype), n, dy.dtype, xp)
    return xp.reshape(onehot.mT @ t, shape)
