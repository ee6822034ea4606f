"""Direct loop references, written from torchvision's CPU kernels
(``torchvision/csrc/ops/cpu/{roi_align,roi_pool,nms}_kernel.cpp``) and ``box_iou``, in
plain Python on host arrays: the oracles of the box tests, independent of xpnet's code."""

import math

import numpy as np


def box_iou(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(min(p[2], q[2]) - max(p[0], q[0]), 0.0)
            ih = max(min(p[3], q[3]) - max(p[1], q[1]), 0.0)
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            with np.errstate(invalid="ignore", divide="ignore"):
                out[i, j] = np.float64(inter) / np.float64(union)
    return out


def nms(boxes, scores, thr, idxs=None):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # stable
    idxs = np.zeros(len(scores), int) if idxs is None else idxs
    iou = box_iou(boxes, boxes)
    suppressed, keep = set(), []
    for pos, i in enumerate(order):
        if i in suppressed:
            continue
        keep.append(i)
        for j in order[pos + 1:]:
            if idxs[j] == idxs[i] and iou[i, j] > thr:
                suppressed.add(j)
    return np.array(keep, dtype=np.int64)


def _bilinear(f, y, x):
    """torchvision's bilinear_interpolate on one (H, W, C) image; None if outside."""
    h, w = f.shape[:2]
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return None
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yh = yl = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xh = xl = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    hy, hx = 1 - ly, 1 - lx
    return [(yl, xl, hy * hx), (yl, xh, hy * lx), (yh, xl, ly * hx), (yh, xh, ly * lx)]


def roi_align(f, rois, out, scale, sr, aligned, dy=None):
    """Forward (K, oh, ow, C), or with ``dy`` the feature gradient."""
    oh, ow = out
    y = np.zeros((len(rois), oh, ow, f.shape[3]))
    dx = np.zeros(f.shape)
    off = 0.5 if aligned else 0.0
    for k, r in enumerate(rois):
        b = int(r[0])
        sw, sh = r[1] * scale - off, r[2] * scale - off
        rw, rh = r[3] * scale - off - sw, r[4] * scale - off - sh
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / oh, rw / ow
        gh = sr if sr > 0 else math.ceil(rh / oh)
        gw = sr if sr > 0 else math.ceil(rw / ow)
        count = max(gh * gw, 1)
        for p in range(oh):
            for q in range(ow):
                for iy in range(gh):
                    yy = sh + p * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        xx = sw + q * bw + (ix + 0.5) * bw / gw
                        taps = _bilinear(f[b], yy, xx)
                        for (hh, ww, wt) in taps or []:
                            y[k, p, q] += wt * f[b, hh, ww] / count
                            if dy is not None:
                                dx[b, hh, ww] += wt * dy[k, p, q] / count
    return dx if dy is not None else y


def roi_pool(f, rois, out, scale, dy=None):
    oh, ow = out
    n, h, w, c = f.shape
    y = np.zeros((len(rois), oh, ow, c))
    dx = np.zeros(f.shape)

    def rnd(v):
        return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))

    for k, r in enumerate(rois):
        b = int(r[0])
        x1, y1, x2, y2 = (rnd(v * scale) for v in r[1:])
        bh, bw = max(y2 - y1 + 1, 1) / oh, max(x2 - x1 + 1, 1) / ow
        for p in range(oh):
            for q in range(ow):
                h0 = min(max(math.floor(p * bh) + y1, 0), h)
                h1 = min(max(math.ceil((p + 1) * bh) + y1, 0), h)
                w0 = min(max(math.floor(q * bw) + x1, 0), w)
                w1 = min(max(math.ceil((q + 1) * bw) + x1, 0), w)
                if h1 <= h0 or w1 <= w0:
                    continue
                for ch in range(c):
                    best, at = -np.inf, None
                    for hh in range(h0, h1):
                        for ww in range(w0, w1):
                            if f[b, hh, ww, ch] > best:
                                best, at = f[b, hh, ww, ch], (hh, ww)
                    y[k, p, q, ch] = best
                    if dy is not None:
                        dx[b, at[0], at[1], ch] += dy[k, p, q, ch]
    return dx if dy is not None else y


def random_rois(rng, k, n, h, w, scale=1.0, degenerate=True):
    """RoIs in input coordinates over a (h, w) feature map seen at ``scale``: inside,
    partly and fully outside the image, and (``degenerate``) zero-width / zero-area."""
    H, W = h / scale, w / scale
    x1 = rng.uniform(-0.3 * W, 1.1 * W, k)
    y1 = rng.uniform(-0.3 * H, 1.1 * H, k)
    x2 = x1 + rng.uniform(0, 0.8 * W, k)
    y2 = y1 + rng.uniform(0, 0.8 * H, k)
    rois = np.stack([rng.integers(0, n, k).astype(float), x1, y1, x2, y2], 1)
    if degenerate and k >= 3:
        rois[0, 3] = rois[0, 1]  # zero width
        rois[1, 3:] = rois[1, 1:3]  # a point
        rois[2, 1:] = [-5 * W, -5 * H, -4 * W, -4 * H]  # far outside
    return rois
