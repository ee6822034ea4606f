"""COCO-style average precision for boxes, computed as pycocotools' ``COCOeval`` does for
``iouType="bbox"`` with area range "all" and at most ``max_detections`` per image.

Per image and class, detections (at most ``max_detections``, by decreasing score, ties in
input order) are matched greedily to the ground truth of best IoU at each threshold
0.50:0.05:0.95; per class, all images' detections are ranked by score, and the precision,
made monotone, is read at the 101 recall points 0:0.01:1. AP is the mean over recall points
(and thresholds for mAP), over the classes that have ground truth.

This runs once per evaluation on the host, with plain Python loops over images.
"""

import math

from xpnet.backend import namespace

__all__ = ["coco_evaluate", "IOU_THRESHOLDS", "RECALL_THRESHOLDS"]


def _linspace(a, b, n):
    """``numpy.linspace`` bit for bit (``i * step + a``, the last point exactly ``b``): a
    recall such as 0.3 must meet the same threshold value as in pycocotools."""
    step = (b - a) / (n - 1)
    return [i * step + a for i in range(n - 1)] + [b]


IOU_THRESHOLDS = _linspace(0.5, 0.95, 10)
RECALL_THRESHOLDS = _linspace(0.0, 1.0, 101)


def _xywh_iou(d, g):
    """pycocotools' ``bbIou`` of boxes in ``(x, y, w, h)``."""
    w = min(d[0] + d[2], g[0] + g[2]) - max(d[0], g[0])
    h = min(d[1] + d[3], g[1] + g[3]) - max(d[1], g[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (d[2] * d[3] + g[2] * g[3] - inter)


def _as_xywh(boxes):
    return [(b[0], b[1], b[2] - b[0], b[3] - b[1]) for b in boxes]


def _host(a):
    """A list of Python values from an array of any namespace (or a list)."""
    if isinstance(a, (list, tuple)):
        return list(a)
    xp = namespace(a)
    return [_item(v) for v in xp.reshape(a, (-1,))] if a.ndim == 1 else \
        [[_item(v) for v in row] for row in a]


def _item(v):
    try:
        return v.item()
    except AttributeError:
        return v


def _match_image(dets, gts, thresholds):
    """``(scores, matched)`` of one image and class: for each threshold, whether each
    detection (sorted, truncated) found a ground truth, greedily by score."""
    ious = [[_xywh_iou(d, g) for g in gts] for _, d in dets]
    matched = []
    for t in thresholds:
        taken = [False] * len(gts)
        row = []
        for di in range(len(dets)):
            best, m = min(t, 1 - 1e-10), -1
            for gi in range(len(gts)):
                if taken[gi] or ious[di][gi] < best:
                    continue
                best, m = ious[di][gi], gi
            if m >= 0:
                taken[m] = True
            row.append(m >= 0)
        matched.append(row)
    return [s for s, _ in dets], matched


def _stable_desc(scores):
    return sorted(range(len(scores)), key=lambda i: -scores[i])  # sorted() is stable


def _precision_at(tp, n_gt, recall_thresholds):
    """Monotone precision at each recall threshold (0 where the recall is never reached)."""
    tps, fps, rc, pr = 0, 0, [], []
    for hit in tp:
        tps, fps = tps + hit, fps + (not hit)
        rc.append(tps / n_gt)
        pr.append(tps / (fps + tps + 2.220446049250313e-16))
    for i in range(len(pr) - 1, 0, -1):
        pr[i - 1] = max(pr[i - 1], pr[i])
    q, j = [], 0
    for r in recall_thresholds:  # searchsorted(rc, r, side="left")
        while j < len(rc) and rc[j] < r:
            j += 1
        q.append(pr[j] if j < len(rc) else 0.0)
    return q


def coco_evaluate(detections, ground_truths, num_classes, max_detections=100):
    """COCO bbox AP over a data set.

    Parameters
    ----------
    detections : list of dict
        Per image: ``boxes`` (D, 4) as ``(x1, y1, x2, y2)``, ``scores`` (D,), ``labels``
        (D,) in ``1..num_classes``; arrays of any namespace or lists.
    ground_truths : list of dict
        Per image: ``boxes`` (G, 4) and ``labels`` (G,).
    num_classes : int
    max_detections : int, default=100

    Returns
    -------
    dict
        ``map`` (AP@[.5:.95]), ``ap50``, ``ap75`` and ``per_class`` (class -> AP@[.5:.95],
        NaN for a class without ground truth), as pycocotools' ``stats[0:3]``.
    """
    if len(detections) != len(ground_truths):
        raise ValueError(f"coco_evaluate: {len(detections)} detection entries for "
                         f"{len(ground_truths)} images")
    ious, recalls = IOU_THRESHOLDS, RECALL_THRESHOLDS
    prec = {}  # class -> [threshold][recall] precision
    for c in range(1, num_classes + 1):
        scores, hits, n_gt = [], [[] for _ in ious], 0
        for det, gt in zip(detections, ground_truths):
            g = [b for b, lab in zip(_host(gt["boxes"]), _host(gt["labels"])) if lab == c]
            d = [(s, b) for b, s, lab in zip(_host(det["boxes"]), _host(det["scores"]),
                                             _host(det["labels"])) if lab == c]
            d = [d[i] for i in _stable_desc([s for s, _ in d])][:max_detections]
            n_gt += len(g)
            s, m = _match_image([(s, b) for (s, b) in zip([x for x, _ in d],
                                                          _as_xywh([b for _, b in d]))],
                                _as_xywh(g), ious)
            scores += s
            for t in range(len(ious)):
                hits[t] += m[t]
        if n_gt == 0:
            continue
        order = _stable_desc(scores)
        prec[c] = [_precision_at([hits[t][i] for i in order], n_gt, recalls)
                   for t in range(len(ious))]

    def mean(values):
        values = list(values)
        return sum(values) / len(values) if values else -1.0

    per_class = {c: (mean(v for row in prec[c] for v in row) if c in prec else math.nan)
                 for c in range(1, num_classes + 1)}
    return {"map": mean(v for c in prec for row in prec[c] for v in row),
            "ap50": mean(v for c in prec for v in prec[c][0]),
            "ap75": mean(v for c in prec for v in prec[c][5]),
            "per_class": per_class}
