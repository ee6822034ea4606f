"""Box kernels, one dispatch point each: greedy NMS, RoIAlign and RoIPool (forward and
backward) on channels-last features.

CuPy arrays go to :mod:`xpnet.kernels._cuda_boxes`, NumPy arrays to the ``numba.njit`` loops
of :mod:`xpnet.kernels._cpu_boxes`, any other namespace (and ``XPNET_KERNELS=0``) to the
array-API compositions of :mod:`xpnet.kernels.reference_boxes`, which are also the oracle.
NMS is a sequential sweep, where a loop beats the O(n^2)-memory composition by far; the
RoI kernels visit only each bin's taps, where the composition multiplies dense
(out, H) x (H, W) tap matrices per RoI.
"""

from xpnet.backend import namespace
from xpnet.kernels import _load
from xpnet.kernels import _route
from xpnet.kernels import reference_boxes as ref

__all__ = ["nms_keep", "roi_align", "roi_align_grad", "roi_pool", "roi_pool_grad"]


def _c(a):
    return a if a.flags.c_contiguous else a.copy(order="C")


def _kernels(xp, dtype):
    """The kernel module for these arrays, or None (float16 and other dtypes the kernels
    do not compile for go to the reference)."""
    route = _route(xp, dtype)
    return None if route is None else _load(f"{route}_boxes")


def nms_keep(boxes, classes, iou_threshold):
    """Bool keep mask of greedy NMS over ``boxes`` (n, 4) sorted by decreasing score; box
    ``j`` is dropped when a kept box ``i < j`` with ``classes[i] == classes[j]`` has
    ``IoU(i, j) > iou_threshold``."""
    xp = namespace(boxes)
    k = _kernels(xp, boxes.dtype)
    if k is None or boxes.shape[0] == 0:
        return ref.nms_keep(boxes, classes, iou_threshold, xp)
    return k.nms_keep(_c(boxes), _c(xp.astype(classes, xp.int64)), float(iou_threshold))


def roi_align(features, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """(K, out_h, out_w, C) RoIAlign of ``features`` (N, H, W, C) over ``rois`` (K, 5)."""
    xp = namespace(features)
    rois = xp.astype(rois, features.dtype)
    k = _kernels(xp, features.dtype)
    if k is None:
        return ref.roi_align(features, rois, output_size, spatial_scale, sampling_ratio,
                             aligned, xp)
    return k.roi_align(_c(features), _c(rois), output_size[0], output_size[1],
                       float(spatial_scale), int(sampling_ratio), bool(aligned))


def roi_align_grad(dy, rois, shape, spatial_scale, sampling_ratio, aligned):
    """dL/dfeatures, of ``shape`` (N, H, W, C), from ``dy = dL/dy`` (K, out_h, out_w, C)."""
    xp = namespace(dy)
    rois = xp.astype(rois, dy.dtype)
    k = _kernels(xp, dy.dtype)
    if k is None:
        return ref.roi_align_grad(dy, rois, shape, spatial_scale, sampling_ratio, aligned, xp)
    return k.roi_align_grad(_c(dy), _c(rois), shape[0], shape[1], shape[2],
                            float(spatial_scale), int(sampling_ratio), bool(aligned))


def roi_pool(features, rois, output_size, spatial_scale):
    """``(y, argmax)``: RoIPool's bin maxima and their flat indices ``h * W + w``."""
    xp = namespace(features)
    rois = xp.astype(rois, features.dtype)
    k = _kernels(xp, features.dtype)
    if k is None:
        return ref.roi_pool(features, rois, output_size, spatial_scale, xp)
    return k.roi_pool(_c(features), _c(rois), output_size[0], output_size[1],
                      float(spatial_scale))


def roi_pool_grad(dy, argmax, rois, shape):
    """dL/dfeatures: each bin's gradient added at its argmax."""
    xp = namespace(dy)
    rois = xp.astype(rois, dy.dtype)
    k = _kernels(xp, dy.dtype)
    if k is None:
        return ref.roi_pool_grad(dy, argmax, rois, shape, xp)
    return k.roi_pool_grad(_c(dy), _c(argmax), _c(rois), shape[0], shape[1], shape[2])
