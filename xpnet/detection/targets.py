"""Training targets for both stages of a two-stage detector, as torchvision's ``Matcher``
and ``BalancedPositiveNegativeSampler``: each anchor (or proposal) is matched to the ground
truth box it overlaps most, labelled foreground, background or ignored by IoU thresholds,
then a seeded, balanced subset of foreground and background is drawn. All on the device,
with no host reads: the sampling ranks random keys instead of indexing variable-sized sets.
"""

from xpnet.backend import namespace
from xpnet.detection.boxes import box_iou
from xpnet.detection.boxes import encode_boxes

__all__ = ["match_boxes", "sample_balanced", "assign_targets"]

BELOW_LOW, BETWEEN = -1, -2


def match_boxes(gt_boxes, boxes, high, low, allow_low_quality_matches=False):
    """For each of ``boxes`` (A, 4): the index of its best ground-truth box, or -1 when
    its best IoU is below ``low``, -2 when it is in ``[low, high)``. With
    ``allow_low_quality_matches``, a box that is some ground truth's best match (ties
    included) keeps that match whatever its IoU, as Faster R-CNN's RPN does; unlike
    torchvision, not when that best IoU is 0 (a ground truth overlapping no anchor would
    otherwise claim every anchor)."""
    xp = namespace(gt_boxes, boxes)
    iou = box_iou(gt_boxes, boxes)  # (G, A)
    iou = xp.where(xp.isnan(iou), 0.0, iou)
    best, matches = xp.max(iou, axis=0), xp.argmax(iou, axis=0)
    out = xp.where(best < low, BELOW_LOW, xp.where(best < high, BETWEEN, matches))
    if allow_low_quality_matches:
        best_per_gt = xp.max(iou, axis=1, keepdims=True)
        restore = xp.any(iou == best_per_gt, axis=0) & (best > 0)
        out = xp.where(restore, matches, out)
    return out, matches


def _ranks(key, xp):
    """Rank of each entry of ``key`` in ascending order (0 = smallest)."""
    return xp.argsort(xp.argsort(key, stable=True), stable=True)


def sample_balanced(labels, batch_size_per_image, positive_fraction, rng):
    """Keep at most ``batch_size_per_image * positive_fraction`` positives (``labels >= 1``)
    and fill up to ``batch_size_per_image`` with negatives (``labels == 0``), uniformly at
    random from ``rng`` (a backend RNG); the others become -1 (ignored)."""
    xp = namespace(labels)
    n = labels.shape[0]
    pos, neg = labels >= 1, labels == 0
    u = rng.uniform((n,), dtype=xp.float32)
    rank_pos = _ranks(xp.where(pos, u, 2.0), xp)
    rank_neg = _ranks(xp.where(neg, u, 2.0), xp)
    num_pos = xp.minimum(xp.sum(xp.astype(pos, xp.int64)),
                         int(batch_size_per_image * positive_fraction))
    num_neg = xp.minimum(xp.sum(xp.astype(neg, xp.int64)), batch_size_per_image - num_pos)
    keep = (pos & (rank_pos < num_pos)) | (neg & (rank_neg < num_neg))
    return xp.where(keep, labels, -1)


def assign_targets(gt_boxes, gt_labels, boxes, high, low, weights,
                   allow_low_quality_matches=False):
    """``(labels, regression_targets)`` for ``boxes``: labels are the matched ground
    truth's class (``gt_labels``, 1-based; pass ones for the RPN's objectness), 0 for
    background (IoU < ``low``), -1 to ignore; targets encode the matched box (N, 4)."""
    xp = namespace(gt_boxes, boxes)
    matched, best = match_boxes(gt_boxes, boxes, high, low, allow_low_quality_matches)
    safe = xp.where(matched >= 0, matched, best)
    labels = xp.take(xp.astype(gt_labels, xp.int64), safe, axis=0)
    labels = xp.where(matched == BELOW_LOW, 0, xp.where(matched == BETWEEN, -1, labels))
    targets = encode_boxes(xp.take(gt_boxes, safe, axis=0), boxes, weights)
    return labels, targets
