"""A small Faster R-CNN (Ren et al., 2015) on channels-last images: a convolutional
backbone, the region proposal network, RoIAlign and a two-layer box head with class scores
and per-class box refinement, trained end to end (the approximate joint training of
torchvision's ``FasterRCNN``: proposals are not differentiated).

The two-stage step is its own loop over the layers' ``forward`` / ``backward``: the RPN's
and the box head's gradients meet on the feature map and flow back through the backbone
once; the optimizer's ``apply_gradients`` then updates every weight.
"""

import math
from typing import NamedTuple

from xpnet import optimizers as _optimizers
from xpnet.backend import get_backend
from xpnet.backend import namespace
from xpnet.detection.boxes import batched_nms
from xpnet.detection.boxes import clip_boxes_to_image
from xpnet.detection.boxes import decode_boxes
from xpnet.detection.boxes import generate_anchors
from xpnet.detection.boxes import grid_anchors
from xpnet.detection.boxes import remove_small_boxes
from xpnet.detection.losses import box_head_loss
from xpnet.detection.losses import rpn_loss
from xpnet.detection.rpn import RPNHead
from xpnet.detection.rpn import select_proposals
from xpnet.detection.targets import assign_targets
from xpnet.detection.targets import sample_balanced
from xpnet.layers.conv import Conv2D
from xpnet.layers.core import Dense
from xpnet.layers.detection import RoIAlign

__all__ = ["FasterRCNN", "faster_rcnn", "small_backbone"]

RPN_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # torchvision's RoIHeads box coder


def small_backbone(filters=(16, 32, 64)):
    """A few 3x3 Conv2D + ReLU blocks with strides 1, 2, 2, then 1 (output stride 4)."""
    strides = (1, 2, 2) + (1,) * (len(filters) - 3)
    return [Conv2D(f, 3, strides=s, padding="same", activation="relu",
                   kernel_initializer="he_normal") for f, s in zip(filters, strides)]


class _Step(NamedTuple):
    backbone: list
    features: object
    rpn: object
    roi: object
    head: list


class FasterRCNN:
    """Two-stage detector. See :func:`faster_rcnn` for the parameters."""

    def __init__(self, backbone, num_classes, image_shape, anchor_sizes, aspect_ratios,
                 roi_output_size=7, representation_size=128, rpn_filters=None,
                 rpn_pre_nms_top_n=(600, 300),
                 rpn_post_nms_top_n=(128, 64), rpn_nms_thresh=0.7, rpn_fg_iou_thresh=0.7,
                 rpn_bg_iou_thresh=0.3, rpn_batch_size_per_image=128,
                 rpn_positive_fraction=0.5, box_fg_iou_thresh=0.5, box_bg_iou_thresh=0.5,
                 box_batch_size_per_image=64, box_positive_fraction=0.25,
                 box_score_thresh=0.05, box_nms_thresh=0.5, detections_per_img=100,
                 seed=0, backend=None):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"faster_rcnn: num_classes must be a positive int, "
                             f"got num_classes={num_classes!r}")
        self.backend = get_backend(backend)
        self.num_classes, self.image_shape = num_classes, tuple(image_shape)
        self.backbone = list(backbone) if isinstance(backbone, (list, tuple)) else [backbone]
        self.cfg = dict(
            rpn_pre_nms_top_n=rpn_pre_nms_top_n, rpn_post_nms_top_n=rpn_post_nms_top_n,
            rpn_nms_thresh=rpn_nms_thresh, rpn_fg_iou_thresh=rpn_fg_iou_thresh,
            rpn_bg_iou_thresh=rpn_bg_iou_thresh,
            rpn_batch_size_per_image=rpn_batch_size_per_image,
            rpn_positive_fraction=rpn_positive_fraction, box_fg_iou_thresh=box_fg_iou_thresh,
            box_bg_iou_thresh=box_bg_iou_thresh,
            box_batch_size_per_image=box_batch_size_per_image,
            box_positive_fraction=box_positive_fraction, box_score_thresh=box_score_thresh,
            box_nms_thresh=box_nms_thresh, detections_per_img=detections_per_img)
        self._build(anchor_sizes, aspect_ratios, roi_output_size, representation_size,
                    rpn_filters)
        self.rng = self.backend.rng(seed)
        self.optimizer = None

    # -- construction ------------------------------------------------------------------
    def _build(self, sizes, ratios, roi_output_size, rep, rpn_filters):
        shape = (None,) + self.image_shape
        for layer in self.backbone:
            layer.build_on(self.backend, shape)
            shape = layer.compute_output_shape(shape)
        self.feature_shape = tuple(shape[1:])
        fh, fw = self.feature_shape[:2]
        stride = self.image_shape[0] / fh
        if stride != self.image_shape[1] / fw:
            raise ValueError(f"faster_rcnn: the backbone must scale both axes alike, got "
                             f"{self.image_shape[:2]} -> {(fh, fw)}")
        xp = self.backend.xp
        base = generate_anchors(sizes, ratios, xp, xp.float32, self.backend.device)
        self.anchors = grid_anchors(base, (fh, fw), stride)
        self.rpn = RPNHead(len(sizes) * len(ratios), filters=rpn_filters)
        self.rpn.build_on(self.backend, shape)
        self.roi_align = RoIAlign(roi_output_size, spatial_scale=1.0 / stride,
                                  sampling_ratio=2, aligned=True)
        self.roi_align.build_on(self.backend, [shape, (None, 5)])
        k1 = self.num_classes + 1
        self.head = [Dense(rep, activation="relu"), Dense(rep, activation="relu")]
        self.cls_score = Dense(k1, kernel_initializer="random_normal")
        self.bbox_pred = Dense(4 * k1, kernel_initializer="random_normal")
        width = roi_output_size ** 2 * self.feature_shape[-1] if isinstance(
            roi_output_size, int) else math.prod(roi_output_size) * self.feature_shape[-1]
        for layer in self.head:
            layer.build_on(self.backend, (None, width))
            width = rep
        self.cls_score.build_on(self.backend, (None, rep))
        self.bbox_pred.build_on(self.backend, (None, rep))

    def layers(self):
        """Every layer holding weights, in forward order."""
        return (self.backbone + [self.rpn.conv, self.rpn.cls_logits, self.rpn.bbox_pred]
                + self.head + [self.cls_score, self.bbox_pred])

    def count_params(self):
        return sum(math.prod(p.shape) for layer in self.layers() for p in layer.weights)

    def get_weights(self):
        return [w for layer in self.layers() for w in layer.get_weights()]

    def set_weights(self, weights):
        i = 0
        for layer in self.layers():
            n = len(layer.weights)
            layer.set_weights(weights[i:i + n])
            i += n

    # -- the two stages ----------------------------------------------------------------
    def _backbone(self, x, training):
        ctxs = []
        for layer in self.backbone:
            x, c = layer.forward(x, training)
            ctxs.append(c)
        return x, ctxs

    def _head(self, features, boxes_per_image, training):
        xp = self.backend.xp
        rois = xp.concat([xp.concat([xp.full((b.shape[0], 1), float(i), dtype=b.dtype,
                                             device=b.device), b], axis=1)
                          for i, b in enumerate(boxes_per_image)], axis=0)
        pooled, roi_ctx = self.roi_align.forward([features, rois])
        h = xp.reshape(pooled, (pooled.shape[0], -1))
        ctxs = []
        for layer in self.head:
            h, c = layer.forward(h, training)
            ctxs.append(c)
        logits, c1 = self.cls_score.forward(h, training)
        deltas, c2 = self.bbox_pred.forward(h, training)
        return logits, deltas, (roi_ctx, pooled.shape, ctxs, c1, c2)

    def _head_backward(self, ctx, dlogits, ddeltas):
        roi_ctx, pooled_shape, ctxs, c1, c2 = ctx
        dh = self.cls_score.backward(c1, dlogits) + self.bbox_pred.backward(c2, ddeltas)
        for layer, c in zip(reversed(self.head), reversed(ctxs)):
            dh = layer.backward(c, dh)
        xp = namespace(dh)
        return self.roi_align.backward(roi_ctx, xp.reshape(dh, pooled_shape))[0]

    def _proposals(self, logits, deltas, training):
        i = 0 if training else 1
        return [select_proposals(self.anchors, logits[n, :], deltas[n, ...], self.image_shape[:2],
                                 self.cfg["rpn_pre_nms_top_n"][i],
                                 self.cfg["rpn_post_nms_top_n"][i],
                                 self.cfg["rpn_nms_thresh"])[0]
                for n in range(logits.shape[0])]

    def _rpn_targets(self, targets):
        xp, c = self.backend.xp, self.cfg
        labels, regs = [], []
        for t in targets:
            lab, reg = assign_targets(t["boxes"], xp.ones_like(t["labels"]), self.anchors,
                                      c["rpn_fg_iou_thresh"], c["rpn_bg_iou_thresh"],
                                      RPN_WEIGHTS, allow_low_quality_matches=True)
            labels.append(sample_balanced(lab, c["rpn_batch_size_per_image"],
                                          c["rpn_positive_fraction"], self.rng))
            regs.append(reg)
        return xp.concat(labels), xp.concat(regs)

    def _box_targets(self, proposals, targets):
        xp, c = self.backend.xp, self.cfg
        boxes, labels, regs = [], [], []
        for p, t in zip(proposals, targets):
            p = xp.concat([p, xp.astype(t["boxes"], p.dtype)])  # the ground truth too
            lab, reg = assign_targets(t["boxes"], t["labels"], p, c["box_fg_iou_thresh"],
                                      c["box_bg_iou_thresh"], BOX_WEIGHTS)
            lab = sample_balanced(lab, c["box_batch_size_per_image"],
                                  c["box_positive_fraction"], self.rng)
            keep = xp.nonzero(lab >= 0)[0]
            boxes.append(xp.take(p, keep, axis=0))
            labels.append(xp.take(lab, keep, axis=0))
            regs.append(xp.take(reg, keep, axis=0))
        return boxes, xp.concat(labels), xp.concat(regs)

    def train_step(self, images, targets):
        """One step of joint training on a batch; returns the four losses (arrays):
        ``rpn_objectness``, ``rpn_box``, ``classifier``, ``box``."""
        xp = self.backend.xp
        for layer in self.layers():
            layer.zero_grads()
        features, bctx = self._backbone(images, True)
        (logits, deltas), rctx = self.rpn.forward(features, True)
        n, a = logits.shape
        rpn_labels, rpn_regs = self._rpn_targets(targets)
        (l_obj, l_rbox), (dlog, ddel) = rpn_loss(xp.reshape(logits, (-1,)),
                                                 xp.reshape(deltas, (-1, 4)),
                                                 rpn_labels, rpn_regs)
        proposals = self._proposals(logits, deltas, True)
        boxes, labels, regs = self._box_targets(proposals, targets)
        cls, box, hctx = self._head(features, boxes, True)
        (l_cls, l_box), (dcls, dbox) = box_head_loss(cls, box, labels, regs)
        dfeat = self.rpn.backward(rctx, (xp.reshape(dlog, (n, a)),
                                         xp.reshape(ddel, (n, a, 4))))
        dfeat = dfeat + self._head_backward(hctx, dcls, dbox)
        for i in range(len(self.backbone) - 1, -1, -1):
            layer = self.backbone[i]
            if i:
                dfeat = layer.backward(bctx[i], dfeat)
            else:
                layer.backward(bctx[i], dfeat, need_dx=False)
        self.optimizer.apply_gradients([(layer.grads[k], layer.params[k])
                                        for layer in self.layers() if layer.trainable
                                        for k in layer.grads])
        return {"rpn_objectness": l_obj, "rpn_box": l_rbox, "classifier": l_cls,
                "box": l_box}

    def compile(self, optimizer="adam"):
        self.optimizer = _optimizers.get(optimizer)
        return self

    def fit(self, images, targets, epochs=1, batch_size=8, shuffle=True, verbose=1,
            on_epoch_end=None, seed=0):
        """Train on host ``images`` (N, H, W, 3) and ``targets`` (list of dicts with
        ``boxes`` and ``labels``); ``on_epoch_end(epoch, logs)`` is called after each
        epoch. Returns a history: one dict of mean losses per epoch."""
        if self.optimizer is None:
            self.compile()
        be = self.backend
        order_rng = be.rng(seed, host=True)
        history = []
        n = len(targets)
        for epoch in range(epochs):
            order = be.to_numpy(order_rng.permutation(n)).tolist() if shuffle else \
                list(range(n))
            sums = {}
            for s in range(0, n, batch_size):
                idx = order[s:s + batch_size]
                x = be.asarray(images[idx], dtype=be.xp.float32)  # host data, then moved
                t = [self._target(targets[i]) for i in idx]
                for k, v in self.train_step(x, t).items():  # summed on the device
                    sums[k] = sums.get(k, 0.0) + v * len(idx)
            logs = {k: float(v) / n for k, v in sums.items()}  # one host read per epoch
            history.append(logs)
            if verbose:
                print(f"epoch {epoch + 1}/{epochs} " + " ".join(
                    f"{k} {v:.4f}" for k, v in logs.items()), flush=True)
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
        return history

    def _target(self, t):
        be = self.backend
        return {"boxes": be.asarray(t["boxes"], dtype=be.xp.float32),
                "labels": be.asarray(t["labels"], dtype=be.xp.int64)}

    # -- inference ---------------------------------------------------------------------
    def predict(self, images, batch_size=32):
        """Detections per image after NMS: a list of dicts with ``boxes`` (D, 4) as
        ``(x1, y1, x2, y2)``, ``scores`` (D,) and ``labels`` (D,) in ``1..num_classes``,
        by decreasing score (backend arrays)."""
        be = self.backend
        out = []
        for s in range(0, len(images), batch_size):
            x = be.asarray(images[s:s + batch_size], dtype=be.xp.float32)
            features, _ = self._backbone(x, False)
            (logits, deltas), _ = self.rpn.forward(features, False)
            proposals = self._proposals(logits, deltas, False)
            cls, box, _ = self._head(features, proposals, False)
            start = 0
            for p in proposals:
                k = p.shape[0]
                out.append(self._postprocess(cls[start:start + k, :], box[start:start + k, :],
                                             p))
                start += k
        return out

    def _postprocess(self, logits, deltas, proposals):
        """torchvision's ``postprocess_detections`` for one image."""
        xp, c = self.backend.xp, self.cfg
        k1 = self.num_classes + 1
        z = logits - xp.max(logits, axis=1, keepdims=True)
        scores = xp.exp(z) / xp.sum(xp.exp(z), axis=1, keepdims=True)
        boxes = decode_boxes(deltas, proposals, BOX_WEIGHTS)
        boxes = clip_boxes_to_image(xp.reshape(boxes, (-1, k1, 4)), self.image_shape[:2])
        labels = xp.broadcast_to(xp.arange(k1, device=boxes.device)[None, :], scores.shape)
        boxes = xp.reshape(boxes[:, 1:, :], (-1, 4))
        scores, labels = xp.reshape(scores[:, 1:], (-1,)), xp.reshape(labels[:, 1:], (-1,))
        keep = xp.nonzero(scores > c["box_score_thresh"])[0]
        boxes, scores, labels = (xp.take(v, keep, axis=0) for v in (boxes, scores, labels))
        keep = remove_small_boxes(boxes, 1e-2)
        boxes, scores, labels = (xp.take(v, keep, axis=0) for v in (boxes, scores, labels))
        keep = batched_nms(boxes, scores, labels, c["box_nms_thresh"])
        keep = keep[:min(c["detections_per_img"], keep.shape[0])]
        return {"boxes": xp.take(boxes, keep, axis=0), "scores": xp.take(scores, keep, axis=0),
                "labels": xp.take(labels, keep, axis=0)}


def faster_rcnn(backbone=None, num_classes=3, input_shape=(64, 64, 3),
                anchor_sizes=(8, 12, 18, 26), aspect_ratios=(1.0,), seed=0, backend=None,
                **kwargs):
    """A Faster R-CNN for ``num_classes`` object classes (labels 1..num_classes).

    Parameters
    ----------
    backbone : layer or list of layers, default=None
        Channels-last feature extractor; default :func:`small_backbone` (stride 4).
    num_classes : int, default=3
    input_shape : tuple, default=(64, 64, 3)
    anchor_sizes, aspect_ratios : tuple of float
        Anchors per feature-map cell: every size at every ratio ``h / w``.
    seed : int, default=0
        Seed of the target sampling.
    **kwargs
        torchvision's ``FasterRCNN`` knobs (``rpn_nms_thresh``, ``box_score_thresh``,
        ``box_batch_size_per_image``, ...; ``rpn_pre_nms_top_n`` and
        ``rpn_post_nms_top_n`` as (training, testing) pairs), and ``roi_output_size``
        (default 7), ``representation_size`` (the box head's width, default 128),
        ``rpn_filters`` (the RPN's 3x3 convolution, default the backbone's channels).
    """
    if backbone is None:
        backbone = small_backbone()
    return FasterRCNN(backbone, num_classes, input_shape, anchor_sizes, aspect_ratios,
                      seed=seed, backend=backend, **kwargs)
