"""Box operations with torchvision's names and semantics; boxes are ``(x1, y1, x2, y2)``.

Written against the array API; NMS runs as a kernel (:mod:`xpnet.kernels.boxes`), a
sequential sweep that a composition can only imitate with n dense steps.
"""

import math

from xpnet.backend import namespace
from xpnet.kernels import boxes as kernels

__all__ = [
    "box_area",
    "box_iou",
    "nms",
    "batched_nms",
    "clip_boxes_to_image",
    "remove_small_boxes",
    "encode_boxes",
    "decode_boxes",
    "generate_anchors",
    "grid_anchors",
    "BBOX_XFORM_CLIP",
]

# Faster R-CNN's cap on the log-scale deltas: a box grows at most 1000/16 times per decode.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def box_area(boxes):
    """``(x2 - x1) * (y2 - y1)`` of each box."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes1, boxes2):
    """Pairwise IoU, ``(N, M)``: ``inter / (area1 + area2 - inter)``, as
    ``torchvision.ops.box_iou`` (two empty boxes give NaN, as there)."""
    xp = namespace(boxes1, boxes2)
    w = xp.minimum(boxes1[:, None, 2], boxes2[None, :, 2]) - \
        xp.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    h = xp.minimum(boxes1[:, None, 3], boxes2[None, :, 3]) - \
        xp.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    inter = xp.clip(w, 0.0, None) * xp.clip(h, 0.0, None)
    return inter / (box_area(boxes1)[:, None] + box_area(boxes2)[None, :] - inter)


def _check_boxes(boxes, where):
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{where}: boxes must have shape (N, 4), got {tuple(boxes.shape)}")


def batched_nms(boxes, scores, idxs, iou_threshold):
    """Greedy NMS within each category ``idxs``: the indices of the kept boxes, by
    decreasing score (equal scores in index order). A box is dropped when a higher-scored
    kept box of its category overlaps it with IoU > ``iou_threshold``."""
    _check_boxes(boxes, "batched_nms")
    xp = namespace(boxes, scores)
    order = xp.argsort(-scores, stable=True)
    keep = kernels.nms_keep(xp.take(boxes, order, axis=0), xp.take(idxs, order, axis=0),
                            iou_threshold)
    return xp.take(order, xp.nonzero(keep)[0], axis=0)


def nms(boxes, scores, iou_threshold):
    """Greedy non-maximum suppression, ``torchvision.ops.nms``: the indices of the kept
    boxes by decreasing score (ties in index order, as torchvision's stable sort)."""
    xp = namespace(boxes, scores)
    idxs = xp.zeros(scores.shape, dtype=xp.int64, device=scores.device)
    return batched_nms(boxes, scores, idxs, iou_threshold)


def clip_boxes_to_image(boxes, size):
    """Clamp ``x`` into ``[0, width]`` and ``y`` into ``[0, height]``; ``size = (h, w)``."""
    xp = namespace(boxes)
    h, w = float(size[0]), float(size[1])
    x = xp.clip(boxes[..., 0::2], 0.0, w)
    y = xp.clip(boxes[..., 1::2], 0.0, h)
    return xp.reshape(xp.stack([x, y], axis=-1), boxes.shape)


def remove_small_boxes(boxes, min_size):
    """Indices of the boxes whose width and height are both at least ``min_size``."""
    xp = namespace(boxes)
    ok = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return xp.nonzero(ok)[0]


def _centres(boxes):
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + 0.5 * w, boxes[:, 1] + 0.5 * h, w, h


def encode_boxes(reference_boxes, proposals, weights=(1.0, 1.0, 1.0, 1.0)):
    """Faster R-CNN regression targets of ``reference_boxes`` (ground truth) relative to
    ``proposals`` (anchors), as torchvision's ``BoxCoder.encode_single``:
    ``dx = wx (gx - px) / pw``, ``dy = wy (gy - py) / ph``, ``dw = ww log(gw / pw)``,
    ``dh = wh log(gh / ph)`` on centres and sizes. Returns ``(N, 4)``."""
    xp = namespace(reference_boxes, proposals)
    wx, wy, ww, wh = weights
    px, py, pw, ph = _centres(proposals)
    gx, gy, gw, gh = _centres(reference_boxes)
    return xp.stack([wx * (gx - px) / pw, wy * (gy - py) / ph,
                     ww * xp.log(gw / pw), wh * xp.log(gh / ph)], axis=1)


def decode_boxes(rel_codes, boxes, weights=(1.0, 1.0, 1.0, 1.0),
                 bbox_xform_clip=BBOX_XFORM_CLIP):
    """Apply deltas ``rel_codes`` (N, 4 * k) to ``boxes`` (N, 4), as torchvision's
    ``BoxCoder.decode_single``: ``dw`` and ``dh`` (after dividing by their weights) are
    capped at ``bbox_xform_clip`` before ``exp``. Returns ``(N, 4 * k)``."""
    xp = namespace(rel_codes, boxes)
    wx, wy, ww, wh = weights
    n = rel_codes.shape[0]
    codes = xp.reshape(rel_codes, (n, -1, 4))
    cx, cy, w, h = (v[:, None] for v in _centres(xp.astype(boxes, rel_codes.dtype)))
    dx, dy = codes[..., 0] / wx, codes[..., 1] / wy
    dw = xp.clip(codes[..., 2] / ww, None, bbox_xform_clip)
    dh = xp.clip(codes[..., 3] / wh, None, bbox_xform_clip)
    px, py = dx * w + cx, dy * h + cy
    hw, hh = 0.5 * xp.exp(dw) * w, 0.5 * xp.exp(dh) * h
    return xp.reshape(xp.stack([px - hw, py - hh, px + hw, py + hh], axis=-1), (n, -1))


def generate_anchors(sizes, aspect_ratios, xp, dtype=None, device=None):
    """Zero-centred anchors ``(len(ratios) * len(sizes), 4)``, as torchvision's
    ``AnchorGenerator.generate_anchors``: for ratio ``r = h / w`` and size ``s``,
    ``w = s / sqrt(r)``, ``h = s sqrt(r)``, rounded to whole pixels (ratios outer)."""
    rows = []
    for r in aspect_ratios:
        hr = math.sqrt(r)
        for s in sizes:
            w, h = s / hr, s * hr
            rows.append([_round_half_even(-w / 2), _round_half_even(-h / 2),
                         _round_half_even(w / 2), _round_half_even(h / 2)])
    return xp.asarray(rows, dtype=dtype or xp.float32, device=device)


def _round_half_even(v):
    return float(round(v))  # torch.round rounds half to even, as Python's round


def grid_anchors(base_anchors, feature_size, stride):
    """Anchors over a feature map ``(H, W)`` with ``stride = (sy, sx)`` pixels per cell:
    ``(H * W * A, 4)``, location-major (row, then column), then the A base anchors, the
    order torchvision's ``AnchorGenerator.grid_anchors`` and an RPN head's
    ``(N, H, W, A)`` output share."""
    xp = namespace(base_anchors)
    dt, dev = base_anchors.dtype, base_anchors.device
    fh, fw = feature_size
    sy, sx = (stride, stride) if isinstance(stride, (int, float)) else stride
    ys = xp.arange(fh, dtype=dt, device=dev) * sy
    xs = xp.arange(fw, dtype=dt, device=dev) * sx
    gy = xp.reshape(xp.broadcast_to(ys[:, None], (fh, fw)), (-1,))
    gx = xp.reshape(xp.broadcast_to(xs[None, :], (fh, fw)), (-1,))
    shifts = xp.stack([gx, gy, gx, gy], axis=1)
    return xp.reshape(shifts[:, None, :] + base_anchors[None, :, :], (-1, 4))
