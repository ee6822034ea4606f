"""Scalar geometry shared by the Numba CPU and CUDA box kernels (compiled by each): the
RoIAlign bin layout and bilinear sampling point of ``torchvision/csrc/ops/cpu/roi_align_kernel
.cpp``, the RoIPool bin bounds of ``roi_pool_kernel.cpp``, and the IoU of two boxes.

Numba's on-disk cache keys a kernel on its own module's source: after editing this file,
delete ``kernels/__pycache__/_cpu_boxes*.nb*`` (or touch ``_cpu_boxes.py``), or the
cached kernels keep the old code."""

import math


def align_roi(rois, k, scale, out_h, out_w, sampling_ratio, aligned):
    """``(b, y1, x1, bin_h, bin_w, grid_h, grid_w)`` of RoI ``k``: its corner shifted by
    -0.5 when ``aligned``, its size at least 1 when not, ``ceil(size / out)`` samples per
    bin unless ``sampling_ratio > 0``."""
    off = 0.5 if aligned else 0.0
    b = int(rois[k, 0])
    x1 = rois[k, 1] * scale - off
    y1 = rois[k, 2] * scale - off
    w = rois[k, 3] * scale - off - x1
    h = rois[k, 4] * scale - off - y1
    if not aligned:
        w = max(w, 1.0)
        h = max(h, 1.0)
    bin_h = h / out_h
    bin_w = w / out_w
    grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(h / out_h))
    grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(w / out_w))
    return b, y1, x1, bin_h, bin_w, grid_h, grid_w


def axis_sample(v, size):
    """Bilinear taps along one axis: ``(ok, low, high, frac)``; ``ok`` is False outside
    ``[-1, size]`` (the sample then contributes nothing), the coordinate is clamped at 0
    and at ``size - 1`` as torchvision's ``bilinear_interpolate`` does."""
    if v < -1.0 or v > size:
        return False, 0, 0, 0.0
    if v <= 0:
        v = 0.0
    low = int(v)
    if low >= size - 1:
        return True, size - 1, size - 1, 0.0
    return True, low, low + 1, v - low


def pool_bounds(rois, k, scale, p, q, out_h, out_w, height, width):
    """``(b, h0, h1, w0, w1)``: the rows ``[h0, h1)`` and columns ``[w0, w1)`` of RoIPool's
    bin ``(p, q)`` of RoI ``k`` (corners rounded half away from zero as ``std::round``,
    size at least 1)."""
    b = int(rois[k, 0])
    x1 = int(math.copysign(math.floor(abs(rois[k, 1] * scale) + 0.5), rois[k, 1]))
    y1 = int(math.copysign(math.floor(abs(rois[k, 2] * scale) + 0.5), rois[k, 2]))
    x2 = int(math.copysign(math.floor(abs(rois[k, 3] * scale) + 0.5), rois[k, 3]))
    y2 = int(math.copysign(math.floor(abs(rois[k, 4] * scale) + 0.5), rois[k, 4]))
    bin_h = max(y2 - y1 + 1, 1) / out_h
    bin_w = max(x2 - x1 + 1, 1) / out_w
    h0 = min(max(int(math.floor(p * bin_h)) + y1, 0), height)
    h1 = min(max(int(math.ceil((p + 1) * bin_h)) + y1, 0), height)
    w0 = min(max(int(math.floor(q * bin_w)) + x1, 0), width)
    w1 = min(max(int(math.ceil((q + 1) * bin_w)) + x1, 0), width)
    return b, h0, h1, w0, w1


def iou(boxes, i, j):
    """IoU of boxes ``i`` and ``j`` as torchvision's NMS computes it (0/0 gives NaN)."""
    w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
    h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
    # clamp without a float64 literal: float32 boxes stay float32 throughout, as in
    # torchvision (mixed precision made two identical float32 boxes' IoU exceed 1)
    if w < 0:
        w = w - w
    if h < 0:
        h = h - h
    inter = w * h
    area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
    union = area_i + area_j - inter
    return inter / union if union != 0 else math.nan
