"""Detection losses, each returning the value and its gradient: the RPN's binary
cross-entropy on the sampled anchors plus smooth-L1 on the positives' deltas, and the box
head's softmax cross-entropy plus smooth-L1 on the true class's deltas (torchvision's
``fastrcnn_loss`` and ``RegionProposalNetwork.compute_loss``). Unsampled entries carry label
-1 and weigh nothing, so shapes never depend on the data."""

from xpnet.backend import namespace
from xpnet.losses import Loss

__all__ = ["SmoothL1", "smooth_l1", "rpn_loss", "box_head_loss"]


def smooth_l1(d, beta):
    """``(values, grads)`` elementwise: ``0.5 d^2 / beta`` where ``|d| < beta``, else
    ``|d| - 0.5 beta``; beta 0 is the L1 loss."""
    xp = namespace(d)
    a = xp.abs(d)
    if beta <= 0:
        return a, xp.sign(d)
    small = a < beta
    return (xp.where(small, 0.5 * d * d / beta, a - 0.5 * beta),
            xp.where(small, d / beta, xp.sign(d)))


class SmoothL1(Loss):
    """Smooth-L1 (Huber scaled by ``1 / beta``) summed over the last axis, as
    ``torch.nn.functional.smooth_l1_loss(..., beta)``; ``reduction="sum"`` by default, as
    Faster R-CNN sums it before dividing by the number of sampled boxes."""

    default_name = "smooth_l1"

    def __init__(self, beta=1.0 / 9, reduction="sum", **kwargs):
        super().__init__(reduction=reduction, **kwargs)
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        return namespace(y_pred).sum(smooth_l1(y_pred - y_true, self.beta)[0], axis=-1)

    def grad(self, y_true, y_pred):
        return smooth_l1(y_pred - y_true, self.beta)[1]

    def get_config(self):
        return {**super().get_config(), "beta": self.beta}


def _count(mask, xp, dtype):
    return xp.clip(xp.sum(xp.astype(mask, dtype)), 1.0, None)


def rpn_loss(logits, deltas, labels, targets, beta=1.0 / 9):
    """``((objectness, box), (dlogits, ddeltas))`` over anchors: ``logits`` (A,), ``deltas``
    and ``targets`` (A, 4), ``labels`` 1 / 0 / -1 (ignored). The objectness is the mean
    binary cross-entropy over the sampled anchors, the box loss the smooth-L1 sum over the
    positives divided by the number sampled."""
    xp = namespace(logits)
    dt = logits.dtype
    sampled, pos = labels >= 0, labels >= 1
    n = _count(sampled, xp, dt)
    t = xp.astype(pos, dt)
    # BCE with logits, stably: max(z, 0) - z t + log(1 + exp(-|z|)); d/dz = sigmoid(z) - t
    bce = xp.clip(logits, 0.0, None) - logits * t + xp.log1p(xp.exp(-xp.abs(logits)))
    sig = 1.0 / (1.0 + xp.exp(-logits))
    w = xp.astype(sampled, dt)
    obj = xp.sum(bce * w) / n
    dlogits = (sig - t) * w / n
    v, g = smooth_l1(deltas - xp.astype(targets, dt), beta)
    pw = xp.astype(pos, dt)[:, None]
    return (obj, xp.sum(v * pw) / n), (dlogits, g * pw / n)


def box_head_loss(class_logits, box_regression, labels, targets, beta=1.0 / 9):
    """``((classification, box), (dlogits, dregression))`` over RoIs: ``class_logits``
    (R, K+1) (0 = background), ``box_regression`` (R, 4 (K+1)), ``labels`` (R,) with -1 for
    RoIs not sampled, ``targets`` (R, 4). Mean softmax cross-entropy over the sampled RoIs,
    and the smooth-L1 sum of the true class's deltas over the positives divided by the
    number sampled."""
    xp = namespace(class_logits)
    dt = class_logits.dtype
    r, k1 = class_logits.shape
    sampled, pos = labels >= 0, labels >= 1
    n = _count(sampled, xp, dt)
    w = xp.astype(sampled, dt)
    z = class_logits - xp.max(class_logits, axis=1, keepdims=True)
    lse = xp.log(xp.sum(xp.exp(z), axis=1))
    onehot = xp.astype(xp.clip(labels, 0, None)[:, None] == xp.arange(k1, device=labels.device)
                       [None, :], dt)
    ce = lse - xp.sum(z * onehot, axis=1)
    dlogits = (xp.exp(z - lse[:, None]) - onehot) * (w / n)[:, None]
    reg = xp.reshape(box_regression, (r, k1, 4))
    sel = onehot * xp.astype(pos, dt)[:, None]  # the true class of a positive RoI
    d = xp.sum(reg * sel[..., None], axis=1) - xp.astype(targets, dt)
    v, g = smooth_l1(d, beta)
    pw = xp.astype(pos, dt)[:, None]
    dreg = xp.reshape(sel[..., None] * (g * pw / n)[:, None, :], (r, k1 * 4))
    return (xp.sum(ce * w) / n, xp.sum(v * pw) / n), (dlogits, dreg)
