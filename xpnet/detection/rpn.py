"""The region proposal network: a head that scores and refines every anchor of a feature
map, and the selection of proposals from its outputs (top-k, decode, clip, NMS, top-k)."""

from typing import NamedTuple

from xpnet.backend import namespace
from xpnet.detection.boxes import clip_boxes_to_image
from xpnet.detection.boxes import decode_boxes
from xpnet.detection.boxes import nms
from xpnet.detection.boxes import remove_small_boxes
from xpnet.layers.base import Layer
from xpnet.layers.conv import Conv2D

__all__ = ["RPNHead", "select_proposals"]


class _HeadContext(NamedTuple):
    conv: object
    cls: object
    bbox: object


class RPNHead(Layer):
    """Faster R-CNN's RPN head on channels-last features: a 3x3 convolution with ReLU,
    then two 1x1 convolutions giving per location and anchor an objectness logit and
    box deltas ``(dx, dy, dw, dh)``.

    Called on ``(N, H, W, C)`` features, returns ``(logits (N, H*W*A), deltas (N, H*W*A,
    4))``, location-major then anchor, the order of :func:`xpnet.detection.boxes.
    grid_anchors`.

    Parameters
    ----------
    num_anchors : int
        Anchors per location, A.
    filters : int, default=None
        Channels of the 3x3 convolution (default: the input's).
    """

    def __init__(self, num_anchors, filters=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_anchors, int) or num_anchors <= 0:
            raise ValueError(f"{self.name}: num_anchors must be a positive int, "
                             f"got num_anchors={num_anchors!r}")
        self.num_anchors, self.filters = num_anchors, filters

    def build(self, input_shape):
        c = self.filters or input_shape[-1]
        init = {"kernel_initializer": "random_normal", "dtype": self.dtype}
        self.conv = Conv2D(c, 3, padding="same", activation="relu", **init)
        self.cls_logits = Conv2D(self.num_anchors, 1, **init)
        self.bbox_pred = Conv2D(4 * self.num_anchors, 1, **init)
        self.conv.build_on(self.backend, input_shape)
        mid = tuple(input_shape[:-1]) + (c,)
        self.cls_logits.build_on(self.backend, mid)
        self.bbox_pred.build_on(self.backend, mid)

    def compute_output_shape(self, input_shape):
        n, h, w = input_shape[:3]
        a = None if h is None or w is None else h * w * self.num_anchors
        return [(n, a), (n, a, 4)]

    def forward(self, x, training=False):
        t, c0 = self.conv.forward(x, training)
        logits, c1 = self.cls_logits.forward(t, training)
        deltas, c2 = self.bbox_pred.forward(t, training)
        xp = namespace(x)
        n = x.shape[0]
        return ((xp.reshape(logits, (n, -1)), xp.reshape(deltas, (n, -1, 4))),
                _HeadContext(c0, (c1, logits.shape), (c2, deltas.shape)))

    def backward(self, ctx, dy, need_dx=True):
        dlogits, ddeltas = dy
        xp = namespace(dlogits if dlogits is not None else ddeltas)
        c1, s1 = ctx.cls
        c2, s2 = ctx.bbox
        dt = 0
        if dlogits is not None:
            dt = dt + self.cls_logits.backward(c1, xp.reshape(dlogits, s1))
        if ddeltas is not None:
            dt = dt + self.bbox_pred.backward(c2, xp.reshape(ddeltas, s2))
        return self.conv.backward(ctx.conv, dt)

    def get_config(self):
        return {**super().get_config(), "num_anchors": self.num_anchors,
                "filters": self.filters}


def select_proposals(anchors, logits, deltas, image_size, pre_nms_top_n=1000,
                     post_nms_top_n=1000, nms_thresh=0.7, min_size=1e-3):
    """Proposals of one image, as torchvision's ``RegionProposalNetwork.filter_proposals``:
    the ``pre_nms_top_n`` anchors of highest objectness, decoded by their deltas
    (``anchors`` (A, 4), ``logits`` (A,), ``deltas`` (A, 4)), clipped to ``image_size``
    (h, w), boxes smaller than ``min_size`` dropped, NMS at ``nms_thresh``, then the best
    ``post_nms_top_n``. Returns ``(boxes (P, 4), logits (P,))`` by decreasing score."""
    xp = namespace(logits)
    top = xp.argsort(-logits, stable=True)[:min(pre_nms_top_n, logits.shape[0])]
    boxes = decode_boxes(xp.take(deltas, top, axis=0), xp.take(anchors, top, axis=0))
    boxes = clip_boxes_to_image(boxes, image_size)
    scores = xp.take(logits, top, axis=0)
    ok = remove_small_boxes(boxes, min_size)
    boxes, scores = xp.take(boxes, ok, axis=0), xp.take(scores, ok, axis=0)
    keep = nms(boxes, scores, nms_thresh)
    keep = keep[:min(post_nms_top_n, keep.shape[0])]  # in-bounds slices, as the standard
    return xp.take(boxes, keep, axis=0), xp.take(scores, keep, axis=0)
