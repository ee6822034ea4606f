"""``numba.njit`` box kernels for NumPy arrays: greedy NMS, and RoIAlign / RoIPool forward
and backward on channels-last features, one RoI bin at a time with the channels innermost
(contiguous). The backward passes add every tap into the feature gradient, so overlapping
RoIs sum. Geometry from :mod:`xpnet.kernels._boxes_math`, shared with the CUDA kernels."""

import numba
import numpy as np

from xpnet.kernels._boxes_math import align_roi
from xpnet.kernels._boxes_math import axis_sample
from xpnet.kernels._boxes_math import iou
from xpnet.kernels._boxes_math import pool_bounds

_align_roi = numba.njit(inline="always")(align_roi)
_axis = numba.njit(inline="always")(axis_sample)
_iou = numba.njit(inline="always")(iou)
_pool_bounds = numba.njit(inline="always")(pool_bounds)


def _jit(f):
    return numba.njit(cache=True, error_model="numpy", nogil=True)(f)


@_jit
def nms_keep(boxes, classes, threshold):
    """Keep mask of greedy NMS over boxes sorted by decreasing score (same class only)."""
    n = boxes.shape[0]
    keep = np.ones(n, dtype=np.bool_)
    for i in range(n):
        if not keep[i]:
            continue
        for j in range(i + 1, n):
            if keep[j] and classes[j] == classes[i] and _iou(boxes, i, j) > threshold:
                keep[j] = False
    return keep


@_jit
def roi_align(features, rois, out_h, out_w, scale, sampling_ratio, aligned):
    height, width, c = features.shape[1], features.shape[2], features.shape[3]
    out = np.zeros((rois.shape[0], out_h, out_w, c), dtype=features.dtype)
    for k in range(rois.shape[0]):
        b, y1, x1, bh, bw, gh, gw = _align_roi(rois, k, scale, out_h, out_w,
                                               sampling_ratio, aligned)
        inv = 1.0 / max(gh * gw, 1)
        for p in range(out_h):
            for q in range(out_w):
                acc = out[k, p, q]
                for iy in range(gh):
                    oky, y0, y1_, ly = _axis(y1 + p * bh + (iy + 0.5) * bh / gh, height)
                    for ix in range(gw):
                        okx, x0, x1_, lx = _axis(x1 + q * bw + (ix + 0.5) * bw / gw, width)
                        if not (oky and okx):
                            continue
                        w1, w2 = (1 - ly) * (1 - lx), (1 - ly) * lx
                        w3, w4 = ly * (1 - lx), ly * lx
                        for ch in range(c):
                            acc[ch] += (w1 * features[b, y0, x0, ch]
                                        + w2 * features[b, y0, x1_, ch]
                                        + w3 * features[b, y1_, x0, ch]
                                        + w4 * features[b, y1_, x1_, ch])
                for ch in range(c):
                    acc[ch] *= inv
    return out


@_jit
def roi_align_grad(dy, rois, n, height, width, scale, sampling_ratio, aligned):
    out_h, out_w, c = dy.shape[1], dy.shape[2], dy.shape[3]
    dx = np.zeros((n, height, width, c), dtype=dy.dtype)
    for k in range(rois.shape[0]):
        b, y1, x1, bh, bw, gh, gw = _align_roi(rois, k, scale, out_h, out_w,
                                               sampling_ratio, aligned)
        inv = 1.0 / max(gh * gw, 1)
        for p in range(out_h):
            for q in range(out_w):
                g = dy[k, p, q]
                for iy in range(gh):
                    oky, y0, y1_, ly = _axis(y1 + p * bh + (iy + 0.5) * bh / gh, height)
                    for ix in range(gw):
                        okx, x0, x1_, lx = _axis(x1 + q * bw + (ix + 0.5) * bw / gw, width)
                        if not (oky and okx):
                            continue
                        w1, w2 = (1 - ly) * (1 - lx) * inv, (1 - ly) * lx * inv
                        w3, w4 = ly * (1 - lx) * inv, ly * lx * inv
                        for ch in range(c):
                            dx[b, y0, x0, ch] += w1 * g[ch]
                            dx[b, y0, x1_, ch] += w2 * g[ch]
                            dx[b, y1_, x0, ch] += w3 * g[ch]
                            dx[b, y1_, x1_, ch] += w4 * g[ch]
    return dx


@_jit
def roi_pool(features, rois, out_h, out_w, scale):
    height, width, c = features.shape[1], features.shape[2], features.shape[3]
    k_n = rois.shape[0]
    out = np.zeros((k_n, out_h, out_w, c), dtype=features.dtype)
    argmax = np.full((k_n, out_h, out_w, c), -1, dtype=np.int64)
    for k in range(k_n):
        for p in range(out_h):
            for q in range(out_w):
                b, h0, h1, w0, w1 = _pool_bounds(rois, k, scale, p, q, out_h, out_w,
                                                 height, width)
                if h1 <= h0 or w1 <= w0:
                    continue
                for ch in range(c):
                    best, at = -np.inf, -1
                    for h in range(h0, h1):
                        for w in range(w0, w1):
                            v = features[b, h, w, ch]
                            if v > best or at < 0:
                                best, at = v, h * width + w
                    out[k, p, q, ch] = best
                    argmax[k, p, q, ch] = at
    return out, argmax


@_jit
def roi_pool_grad(dy, argmax, rois, n, height, width):
    c = dy.shape[3]
    dx = np.zeros((n, height * width, c), dtype=dy.dtype)
    for k in range(dy.shape[0]):
        b = int(rois[k, 0])
        for p in range(dy.shape[1]):
            for q in range(dy.shape[2]):
                for ch in range(c):
                    at = argmax[k, p, q, ch]
                    if at >= 0:
                        dx[b, at, ch] += dy[k, p, q, ch]
    return dx.reshape((n, height, width, c))
