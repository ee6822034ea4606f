"""More of Keras 3's losses (``keras/src/losses/losses.py``), each with its gradient:
cosine similarity, MSLE, MAPE, squared and categorical hinge, binary and categorical focal
cross-entropy, Dice and Tversky. Exported through :mod:`xpnet.losses`.

As in :mod:`xpnet.losses`, ``call`` gives per-sample values and ``grad`` the gradient of their
sum with respect to ``y_pred``; ``Loss.value_and_grad`` applies weights and the reduction.
"""

from array_api_compat import device as device_of

from xpnet.backend import namespace
from xpnet.kernels import reference
from xpnet.losses import EPSILON
from xpnet.losses import Hinge
from xpnet.losses import Loss
from xpnet.losses import _like

__all__ = [
    "CosineSimilarity", "MeanSquaredLogarithmicError", "MeanAbsolutePercentageError",
    "SquaredHinge", "CategoricalHinge", "BinaryFocalCrossentropy",
    "CategoricalFocalCrossentropy", "Dice", "Tversky",
]


class CosineSimilarity(Loss):
    """``-sum(l2_normalize(y_true) * l2_normalize(y_pred))`` along ``axis``, where
    ``l2_normalize(x) = x / max(||x||, eps)`` (Keras's ``ops.normalize``)."""

    default_name = "cosine_similarity"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def _norms(self, y_true, y_pred):
        xp = namespace(y_pred)
        nt = xp.maximum(xp.sqrt(xp.sum(y_true * y_true, axis=self.axis, keepdims=True)),
                        EPSILON)
        n = xp.sqrt(xp.sum(y_pred * y_pred, axis=self.axis, keepdims=True))
        return y_true / nt, n

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        t_hat, n = self._norms(y_true, y_pred)
        return -xp.sum(t_hat * (y_pred / xp.maximum(n, EPSILON)), axis=self.axis)

    def grad(self, y_true, y_pred):
        # d(t.p/n)/dp = (t - p_hat (t.p_hat)) / n while n > eps; t / eps below (n clamped)
        xp = namespace(y_pred)
        t_hat, n = self._norms(y_true, y_pred)
        safe = xp.maximum(n, EPSILON)
        p_hat = y_pred / safe
        c = xp.sum(t_hat * p_hat, axis=self.axis, keepdims=True)
        return -xp.where(n > EPSILON, (t_hat - p_hat * c) / safe, t_hat / EPSILON)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class MeanSquaredLogarithmicError(Loss):
    """``mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2)`` over the last
    axis."""

    default_name = "mean_squared_logarithmic_error"

    def _diff(self, y_true, y_pred):
        xp = namespace(y_pred)
        return xp.log(xp.maximum(y_pred, EPSILON) + 1.0) - xp.log(
            xp.maximum(y_true, EPSILON) + 1.0)

    def call(self, y_true, y_pred):
        d = self._diff(y_true, y_pred)
        return namespace(d).mean(d * d, axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        d = self._diff(y_true, y_pred)
        g = 2.0 * d / (xp.maximum(y_pred, EPSILON) + 1.0) * (1.0 / y_pred.shape[-1])
        return xp.where(y_pred > EPSILON, g, 0.0)


class MeanAbsolutePercentageError(Loss):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, eps))`` over the last axis."""

    default_name = "mean_absolute_percentage_error"

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        return 100.0 * xp.mean(xp.abs(y_true - y_pred) / xp.maximum(xp.abs(y_true), EPSILON),
                               axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        scale = 100.0 / y_pred.shape[-1]
        return xp.sign(y_pred - y_true) / xp.maximum(xp.abs(y_true), EPSILON) * scale


class SquaredHinge(Hinge):
    """``mean(max(1 - y_true * y_pred, 0)^2)``; labels in {-1, 1} (0/1 are mapped to
    -1/1)."""

    default_name = "squared_hinge"

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        m = xp.maximum(1.0 - y_true * y_pred, 0.0)
        return xp.mean(m * m, axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        m = xp.maximum(1.0 - y_true * y_pred, 0.0)
        return -2.0 * y_true * m * (1.0 / y_pred.shape[-1])


class CategoricalHinge(Loss):
    """``max(neg - pos + 1, 0)`` with ``pos = sum(y_true * y_pred)`` and
    ``neg = max((1 - y_true) * y_pred)`` over the last axis."""

    default_name = "categorical_hinge"

    def _parts(self, y_true, y_pred):
        xp = namespace(y_pred)
        other = (1.0 - y_true) * y_pred
        return other, xp.sum(y_true * y_pred, axis=-1), xp.max(other, axis=-1)

    def call(self, y_true, y_pred):
        _, pos, neg = self._parts(y_true, y_pred)
        return namespace(pos).maximum(neg - pos + 1.0, 0.0)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        other, pos, neg = self._parts(y_true, y_pred)
        classes = xp.arange(y_pred.shape[-1], device=device_of(y_pred))
        top = xp.astype(xp.argmax(other, axis=-1)[..., None] == classes, y_pred.dtype)
        g = (1.0 - y_true) * top - y_true
        return xp.where((neg - pos + 1.0 > 0.0)[..., None], g, 0.0)


def _pow_grad(base, gamma, xp):
    """``d(base^gamma)/d(base)``, 0 where ``base`` is 0 (no 0 * inf)."""
    if gamma == 0:
        return xp.zeros_like(base)
    positive = base > 0
    return xp.where(positive, gamma * xp.pow(xp.where(positive, base, 1.0), gamma - 1.0), 0.0)


class BinaryFocalCrossentropy(Loss):
    """Focal binary cross-entropy (Lin et al., 2018), as Keras 3: the mean over the last
    axis of ``(1 - p_t)^gamma * bce`` with ``p_t = t p + (1 - t)(1 - p)``; with
    ``apply_class_balancing``, times ``alpha`` for class 1 and ``1 - alpha`` for class 0.

    Parameters
    ----------
    apply_class_balancing : bool, default=False
    alpha : float, default=0.25
    gamma : float, default=2.0
    from_logits : bool, default=False
        ``y_pred`` are logits: a sigmoid first (then the same clipped form as Keras).
    label_smoothing : float, default=0.0
        Targets become ``t (1 - s) + 0.5 s``.
    """

    default_name = "binary_focal_crossentropy"

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False,
                 label_smoothing=0.0, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise NotImplementedError(f"{type(self).__name__}: only axis=-1 is supported. "
                                      f"Received: axis={axis!r}")
        self.apply_class_balancing, self.alpha = bool(apply_class_balancing), float(alpha)
        self.gamma, self.from_logits = float(gamma), bool(from_logits)
        self.label_smoothing, self.axis = float(label_smoothing), axis

    def _terms(self, y_true, y_pred):
        xp = namespace(y_pred)
        t = y_true
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        p = reference.sigmoid(y_pred, xp) if self.from_logits else y_pred
        pc = xp.clip(p, EPSILON, 1.0 - EPSILON)
        bce = -(t * xp.log(pc) + (1.0 - t) * xp.log(1.0 - pc))
        base = 1.0 - (t * p + (1.0 - t) * (1.0 - p))
        w = t * self.alpha + (1.0 - t) * (1.0 - self.alpha) if self.apply_class_balancing \
            else 1.0
        return t, p, pc, bce, base, w

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        _, _, _, bce, base, w = self._terms(y_true, y_pred)
        return xp.mean(w * xp.pow(base, self.gamma) * bce, axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        t, p, pc, bce, base, w = self._terms(y_true, y_pred)
        inside = (p > EPSILON) & (p < 1.0 - EPSILON)
        dbce = xp.where(inside, (1.0 - t) / (1.0 - pc) - t / pc, 0.0)
        dbase = 1.0 - 2.0 * t  # d(1 - p_t)/dp
        g = w * (_pow_grad(base, self.gamma, xp) * dbase * bce + xp.pow(base, self.gamma) * dbce)
        if self.from_logits:
            g = g * p * (1.0 - p)
        return g * (1.0 / y_pred.shape[-1])

    def get_config(self):
        return {**super().get_config(), "apply_class_balancing": self.apply_class_balancing,
                "alpha": self.alpha, "gamma": self.gamma, "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing, "axis": self.axis}


class CategoricalFocalCrossentropy(Loss):
    """Focal categorical cross-entropy, as Keras 3:
    ``sum(-alpha * (1 - q)^gamma * t * log(q))`` over the last axis, where ``q`` are the
    predictions renormalised to sum to 1 and clipped to ``[eps, 1 - eps]``.

    Parameters
    ----------
    alpha : float or list of float, default=0.25
        One factor, or one per class.
    gamma : float, default=2.0
    from_logits : bool, default=False
        ``y_pred`` are logits: a softmax first.
    label_smoothing : float, default=0.0
        Targets become ``t (1 - s) + s / num_classes``.
    """

    default_name = "categorical_focal_crossentropy"

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 **kwargs):
        super().__init__(**kwargs)
        if axis != -1:
            raise NotImplementedError(f"{type(self).__name__}: only axis=-1 is supported. "
                                      f"Received: axis={axis!r}")
        self.alpha = [float(a) for a in alpha] if isinstance(alpha, (list, tuple)) \
            else float(alpha)
        self.gamma, self.from_logits = float(gamma), bool(from_logits)
        self.label_smoothing, self.axis = float(label_smoothing), axis

    def _terms(self, y_true, y_pred):
        xp = namespace(y_pred)
        t = y_true
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        y = reference.activation("softmax", y_pred, xp) if self.from_logits else y_pred
        s = xp.sum(y, axis=-1, keepdims=True)
        r = y / s
        q = xp.clip(r, EPSILON, 1.0 - EPSILON)
        alpha = self.alpha if not isinstance(self.alpha, list) else xp.asarray(
            self.alpha, dtype=y_pred.dtype, device=device_of(y_pred))
        return xp, t, y, s, r, q, alpha

    def call(self, y_true, y_pred):
        xp, t, _, _, _, q, alpha = self._terms(y_true, y_pred)
        return xp.sum(-alpha * xp.pow(1.0 - q, self.gamma) * t * xp.log(q), axis=-1)

    def grad(self, y_true, y_pred):
        xp, t, y, s, r, q, alpha = self._terms(y_true, y_pred)
        inside = (r > EPSILON) & (r < 1.0 - EPSILON)
        dq = -alpha * t * (xp.pow(1.0 - q, self.gamma) / q
                           - _pow_grad(1.0 - q, self.gamma, xp) * xp.log(q))
        dq = xp.where(inside, dq, 0.0)
        dy = (dq - xp.sum(dq * r, axis=-1, keepdims=True)) / s
        if self.from_logits:
            return y * (dy - xp.sum(dy * y, axis=-1, keepdims=True))
        return dy

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma,
                "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


class _Overlap(Loss):
    """Base of Dice and Tversky: the values reduce over ``axis`` (None: everything, one
    value for the batch), so sample weights broadcast against those values."""

    axis = None

    def _sum(self, x, keepdims=False):
        return namespace(x).sum(x, axis=self.axis, keepdims=keepdims)

    def _weights(self, sample_weight, values):
        """Weights shaped like ``values``; on one value for the batch, their mean."""
        xp = namespace(values)
        w = xp.astype(sample_weight, values.dtype)
        if values.ndim == 0:
            return xp.mean(w)
        return xp.reshape(w, tuple(values.shape))

    def __call__(self, y_true, y_pred, sample_weight=None):
        xp = namespace(y_pred)
        values = self.call(self.prepare(_like(y_true, y_pred), y_pred), y_pred)
        if sample_weight is not None:
            values = values * self._weights(sample_weight, values)
        if self.reduction == "none":
            return values
        total = xp.sum(values)
        return total if self.reduction == "sum" else total / max(values.size or 1, 1)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        xp = namespace(y_pred)
        values = self.call(y_true, y_pred)
        c = xp.ones_like(values) if sample_weight is None else self._weights(sample_weight,
                                                                              values)
        n = 1.0 if self.reduction == "sum" else 1.0 / max(values.size or 1, 1)
        return xp.sum(values * c) * n, self.vjp(y_true, y_pred, c * n)

    def grad(self, y_true, y_pred):
        values = self.call(y_true, y_pred)
        return self.vjp(y_true, y_pred, namespace(values).ones_like(values))

    def _expand(self, c, like):
        """A cotangent on the values, broadcast back over the reduced axes."""
        xp = namespace(like)
        if self.axis is None:
            return c
        axes = [a % like.ndim for a in (self.axis if isinstance(self.axis, (list, tuple))
                                        else (self.axis,))]
        shape = tuple(1 if i in axes else d for i, d in enumerate(like.shape))
        return xp.reshape(c, shape)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dice(_Overlap):
    """``1 - 2 sum(y_true y_pred) / (sum(y_true) + sum(y_pred) + eps)``, the sums over
    ``axis`` (None: over everything, one value)."""

    default_name = "dice"

    def __init__(self, reduction="sum_over_batch_size", name=None, axis=None, dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)  # Keras's order
        self.axis = tuple(axis) if isinstance(axis, list) else axis

    def call(self, y_true, y_pred):
        inter = self._sum(y_true * y_pred)
        return 1.0 - 2.0 * inter / (self._sum(y_true) + self._sum(y_pred) + EPSILON)

    def vjp(self, y_true, y_pred, c):
        # dL/dp = -2 (t D - I) / D^2, D = sum(t) + sum(p) + eps, I = sum(t p)
        inter = self._sum(y_true * y_pred, keepdims=True)
        d = self._sum(y_true, keepdims=True) + self._sum(y_pred, keepdims=True) + EPSILON
        return self._expand(c, y_pred) * (-2.0 * (y_true * d - inter) / (d * d))


class Tversky(_Overlap):
    """``1 - I / (I + alpha A + beta B + eps)`` over all elements, as Keras 3's code:
    ``I = sum(t p)``, ``A = sum(t (1 - p))``, ``B = sum((1 - t) p)``. With
    ``alpha = beta = 0.5`` it is the Dice loss."""

    default_name = "tversky"

    def __init__(self, alpha=0.5, beta=0.5, **kwargs):
        super().__init__(**kwargs)
        self.alpha, self.beta = float(alpha), float(beta)

    def _parts(self, t, p):
        inter = self._sum(t * p, keepdims=True)
        a, b = self._sum(t * (1.0 - p), keepdims=True), self._sum((1.0 - t) * p, keepdims=True)
        return inter, inter + self.alpha * a + self.beta * b + EPSILON

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        inter, d = self._parts(y_true, y_pred)
        return xp.reshape(1.0 - inter / d, ())

    def vjp(self, y_true, y_pred, c):
        inter, d = self._parts(y_true, y_pred)
        dd = y_true * (1.0 - self.alpha) + self.beta * (1.0 - y_true)
        return c * (-(y_true * d - inter * dd) / (d * d))

    def get_config(self):
        config = {**super().get_config(), "alpha": self.alpha, "beta": self.beta}
        del config["axis"]
        return config


# Keras 3 losses xpnet does not have yet: asking for one says so.
_NOT_YET = {"CTC": "ctc", "Circle": "circle",
            "CategoricalGeneralizedCrossEntropy": "categorical_generalized_cross_entropy"}


def not_yet(name):
    """Raise NotImplementedError if ``name`` is a Keras loss xpnet does not have yet."""
    for cls_name, fn_name in _NOT_YET.items():
        if name in (cls_name, fn_name):
            raise NotImplementedError(f"keras.losses.{cls_name} is not implemented in xpnet "
                                      "yet")
