"""``numba.cuda`` box kernels for CuPy arrays (and NumPy arrays under the simulator).

RoIAlign / RoIPool run one thread per output element (grid-stride), their backward passes
one thread per gradient element with ``cuda.atomic.add`` into the feature gradient, so
overlapping RoIs sum. NMS runs in one block: the boxes are visited in score order and, for
each kept box, the block's threads strike out the later boxes it overlaps in parallel.
Launches go on CuPy's current stream (see :mod:`xpnet.kernels._cuda`)."""

from numba import cuda

from xpnet.kernels._boxes_math import align_roi
from xpnet.kernels._boxes_math import axis_sample
from xpnet.kernels._boxes_math import iou
from xpnet.kernels._boxes_math import pool_bounds
from xpnet.kernels._cuda import SIMULATOR
from xpnet.kernels._cuda import TPB
from xpnet.kernels._cuda import _grid
from xpnet.kernels._cuda import _module
from xpnet.kernels._cuda import _stream

_align_roi = cuda.jit(device=True, inline=True)(align_roi)
_axis = cuda.jit(device=True, inline=True)(axis_sample)
_iou = cuda.jit(device=True, inline=True)(iou)
_pool_bounds = cuda.jit(device=True, inline=True)(pool_bounds)
_NMS_TPB = 8 if SIMULATOR else 256


@cuda.jit
def _nms(boxes, classes, threshold, keep):
    tid, tpb = cuda.threadIdx.x, cuda.blockDim.x
    n = boxes.shape[0]
    for i in range(n):
        cuda.syncthreads()  # step i - 1's strikes are visible before keep[i] is read
        if keep[i]:
            for j in range(i + 1 + tid, n, tpb):
                if classes[j] == classes[i] and _iou(boxes, i, j) > threshold:
                    keep[j] = 0


@cuda.jit(device=True, inline=True)
def _unravel(i, shape):
    """``(k, p, q, ch)`` of flat index ``i`` in a (K, out_h, out_w, C) array."""
    ch = i % shape[3]
    i //= shape[3]
    q = i % shape[2]
    i //= shape[2]
    return i // shape[1], i % shape[1], q, ch


@cuda.jit
def _roi_align(features, rois, scale, sampling_ratio, aligned, out):
    height, width = features.shape[1], features.shape[2]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, stride):
        k, p, q, ch = _unravel(i, out.shape)
        b, y1, x1, bh, bw, gh, gw = _align_roi(rois, k, scale, out.shape[1], out.shape[2],
                                               sampling_ratio, aligned)
        acc = 0.0
        for iy in range(gh):
            oky, y0, y1_, ly = _axis(y1 + p * bh + (iy + 0.5) * bh / gh, height)
            for ix in range(gw):
                okx, x0, x1_, lx = _axis(x1 + q * bw + (ix + 0.5) * bw / gw, width)
                if oky and okx:
                    acc += ((1 - ly) * (1 - lx) * features[b, y0, x0, ch]
                            + (1 - ly) * lx * features[b, y0, x1_, ch]
                            + ly * (1 - lx) * features[b, y1_, x0, ch]
                            + ly * lx * features[b, y1_, x1_, ch])
        out[k, p, q, ch] = acc / max(gh * gw, 1)


@cuda.jit
def _roi_align_grad(dy, rois, scale, sampling_ratio, aligned, dx):
    height, width = dx.shape[1], dx.shape[2]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dy.size, stride):
        k, p, q, ch = _unravel(i, dy.shape)
        b, y1, x1, bh, bw, gh, gw = _align_roi(rois, k, scale, dy.shape[1], dy.shape[2],
                                               sampling_ratio, aligned)
        g = dy[k, p, q, ch] / max(gh * gw, 1)
        for iy in range(gh):
            oky, y0, y1_, ly = _axis(y1 + p * bh + (iy + 0.5) * bh / gh, height)
            for ix in range(gw):
                okx, x0, x1_, lx = _axis(x1 + q * bw + (ix + 0.5) * bw / gw, width)
                if oky and okx:
                    cuda.atomic.add(dx, (b, y0, x0, ch), g * (1 - ly) * (1 - lx))
                    cuda.atomic.add(dx, (b, y0, x1_, ch), g * (1 - ly) * lx)
                    cuda.atomic.add(dx, (b, y1_, x0, ch), g * ly * (1 - lx))
                    cuda.atomic.add(dx, (b, y1_, x1_, ch), g * ly * lx)


@cuda.jit
def _roi_pool(features, rois, scale, out, argmax):
    height, width = features.shape[1], features.shape[2]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, out.size, stride):
        k, p, q, ch = _unravel(i, out.shape)
        b, h0, h1, w0, w1 = _pool_bounds(rois, k, scale, p, q, out.shape[1], out.shape[2],
                                         height, width)
        best = features[b, 0, 0, ch] * 0
        at = -1
        for h in range(h0, h1):
            for w in range(w0, w1):
                v = features[b, h, w, ch]
                if v > best or at < 0:
                    best = v
                    at = h * width + w
        out[k, p, q, ch] = best
        argmax[k, p, q, ch] = at


@cuda.jit
def _roi_pool_grad(dy, argmax, rois, dx):
    width = dx.shape[2]
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, dy.size, stride):
        k, p, q, ch = _unravel(i, dy.shape)
        at = argmax[k, p, q, ch]
        if at >= 0:
            cuda.atomic.add(dx, (int(rois[k, 0]), at // width, at % width, ch),
                            dy[k, p, q, ch])


def nms_keep(boxes, classes, threshold):
    mod = _module(boxes)
    keep = mod.ones(boxes.shape[0], dtype=mod.uint8)
    _nms[1, _NMS_TPB, _stream(boxes)](boxes, classes, threshold, keep)
    return keep.astype(mod.bool_)


def roi_align(features, rois, out_h, out_w, scale, sampling_ratio, aligned):
    mod = _module(features)
    out = mod.empty((rois.shape[0], out_h, out_w, features.shape[3]), dtype=features.dtype)
    _roi_align[_grid(out.size), TPB, _stream(features)](features, rois, scale,
                                                        sampling_ratio, aligned, out)
    return out


def roi_align_grad(dy, rois, n, height, width, scale, sampling_ratio, aligned):
    mod = _module(dy)
    dx = mod.zeros((n, height, width, dy.shape[3]), dtype=dy.dtype)
    _roi_align_grad[_grid(dy.size), TPB, _stream(dy)](dy, rois, scale, sampling_ratio,
                                                      aligned, dx)
    return dx


def roi_pool(features, rois, out_h, out_w, scale):
    mod = _module(features)
    shape = (rois.shape[0], out_h, out_w, features.shape[3])
    out = mod.empty(shape, dtype=features.dtype)
    argmax = mod.empty(shape, dtype=mod.int64)
    _roi_pool[_grid(out.size), TPB, _stream(features)](features, rois, scale, out, argmax)
    return out, argmax


def roi_pool_grad(dy, argmax, rois, n, height, width):
    mod = _module(dy)
    dx = mod.zeros((n, height, width, dy.shape[3]), dtype=dy.dtype)
    _roi_pool_grad[_grid(dy.size), TPB, _stream(dy)](dy, argmax, rois, dx)
    return dx
