"""Losses with Keras 3's names, defaults and reductions, each with its gradient.

A loss is a function of ``(y_true, y_pred)`` returning per-sample values, plus a class with
``reduction`` and ``get_config``. ``Loss.value_and_grad`` returns the reduced loss and
``dL/dy_pred``, already divided by the batch, which is what a model's backward starts from.
Reductions: ``"sum_over_batch_size"`` (the default: the mean of ``w * values`` over all per-
sample values), ``"sum"``, ``"none"``.
"""

import math

from array_api_compat import device as device_of

from xpnet import kernels
from xpnet.backend import backend_of
from xpnet.backend import namespace
from xpnet.kernels import reference

__all__ = [
    "Loss", "MeanSquaredError", "MeanAbsoluteError", "BinaryCrossentropy",
    "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "Huber", "Hinge",
    "KLDivergence", "Poisson", "LogCosh",
    "mean_squared_error", "mean_absolute_error", "binary_crossentropy",
    "categorical_crossentropy", "sparse_categorical_crossentropy", "huber", "hinge",
    "kl_divergence", "poisson", "log_cosh", "get",
]

EPSILON = 1e-7  # keras.backend.epsilon(): probabilities are clipped to [eps, 1 - eps]
_REDUCTIONS = ("sum_over_batch_size", "sum", "none", "mean")


class Loss:
    """Base class. Subclasses implement ``call`` (per-sample values) and ``grad`` (the
    gradient of ``sum(call(y_true, y_pred))`` with respect to ``y_pred``)."""

    sparse_labels = False
    default_name = "loss"

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        reduction = "none" if reduction is None else reduction  # Keras takes None too
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: unknown reduction {reduction!r}; "
                             f"expected one of {_REDUCTIONS}")
        self.name = name or self.default_name
        self.reduction = reduction
        self.dtype = dtype

    def call(self, y_true, y_pred):
        raise NotImplementedError

    def grad(self, y_true, y_pred):
        raise NotImplementedError

    def prepare(self, y_true, y_pred):
        """``y_true`` in the dtype the loss computes with."""
        xp = namespace(y_pred)
        return xp.astype(y_true, y_pred.dtype) if y_true.dtype != y_pred.dtype else y_true

    def validate(self, y_true, output_shape):
        """Raise a ValueError naming the loss if targets cannot match outputs of that shape.

        Called once per ``fit``/``evaluate`` on the whole target array, never per step.
        """
        shape, want = tuple(y_true.shape), tuple(output_shape)
        if len(shape) != len(want) or any(a != b for a, b in zip(shape[1:], want[1:])
                                           if b is not None):
            raise ValueError(f"{self.name}: targets of shape {shape} do not match "
                             f"model outputs of shape {want}")

    def label_mask(self, y_true):
        """Where the targets count, or None (everywhere): ``ignore_class`` sets it."""
        return None

    def weights(self, y_true, y_pred, sample_weight=None, mask=None):
        """``sample_weight`` with a Keras ``mask`` of the output and :meth:`label_mask`
        folded in (see :func:`apply_mask`): what :meth:`value_and_grad` takes."""
        labels = self.label_mask(y_true)
        if labels is not None:
            mask = labels if mask is None else mask & labels
        return sample_weight if mask is None else \
            apply_mask(sample_weight, mask, self.reduction, y_pred)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _traced(y_true, y_pred, sample_weight):
            return _traced_call(self, y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        y_true = self.prepare(_like(y_true, y_pred), y_pred)
        sample_weight = self.weights(y_true, y_pred, sample_weight)
        values = self.call(y_true, y_pred)
        if self.reduction == "none":
            return values if sample_weight is None else values * _bcast(sample_weight, values)
        w = None if sample_weight is None else _bcast(sample_weight, values)
        total = xp.sum(values if w is None else values * w)
        return total if self.reduction == "sum" else total / max(_size(values.shape), 1)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        """``(reduced loss, dL/dy_pred)`` for targets already prepared and weights from
        :meth:`weights`."""
        xp = namespace(y_pred)
        values = self.call(y_true, y_pred)
        g = self.grad(y_true, y_pred)
        n = 1.0 if self.reduction == "sum" else 1.0 / max(_size(values.shape), 1)
        if sample_weight is None:
            return xp.sum(values) * n, g * n
        w = _bcast(sample_weight, values)
        return xp.sum(values * w) * n, g * (xp.reshape(w, tuple(w.shape) + (1,)) * n)

    def logits_twin(self, activation):
        """This loss on the logits of a ``activation`` output, fused, or None."""
        return None

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _traced(*args):
    from xpnet.engine.tape import Traced

    return any(isinstance(a, Traced) or hasattr(a, "_xpnet_value") for a in args)


def _traced_call(loss, y_true, y_pred, sample_weight):
    """``loss(y_true, y_pred)`` as one recorded op whose VJP is the loss's own gradient."""
    from xpnet.engine.tape import unwrap
    from xpnet.ops.core import op

    sw = None if sample_weight is None else unwrap(sample_weight)

    def fn(t, p):
        return loss(t, p, sample_weight=sw)

    def vjp(dys, outs, t, p):
        xp = namespace(p)
        t = loss.prepare(_like(t, p), p)
        if loss.reduction == "none":
            g = loss.grad(t, p)
            d = dys[0] if sw is None else dys[0] * _bcast(sw, dys[0])
            return None, g * xp.reshape(d, tuple(d.shape) + (1,) * (p.ndim - d.ndim))
        _, g = loss.value_and_grad(t, p, loss.weights(t, p, sw))
        return None, g * dys[0]
    return op(loss.name, fn, vjp, (y_true, y_pred))


class LossFunctionWrapper(Loss):
    """A loss from a function ``fn(y_true, y_pred) -> per-sample values`` written with
    ``keras.ops``; its gradient comes from the tape."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", **kwargs):
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction)
        self.fn, self.fn_kwargs = fn, kwargs

    def prepare(self, y_true, y_pred):
        return y_true

    def validate(self, y_true, output_shape):
        if len(y_true.shape) == 0:
            raise ValueError(f"{self.name}: targets must have a batch axis")

    def call(self, y_true, y_pred):
        from xpnet.engine.tape import unwrap

        return unwrap(self.fn(y_true, y_pred, **self.fn_kwargs))

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        from xpnet.engine.tape import Tape
        from xpnet.engine.tape import state
        from xpnet.engine.tape import unwrap

        xp = namespace(y_pred)
        tape = Tape()
        p = tape.new(y_pred)
        state().tapes.append(tape)
        try:
            values = self.fn(y_true, p, **self.fn_kwargs)
            total = _reduce_traced(self, values, sample_weight)
        finally:
            state().tapes.remove(tape)
        ct = tape.backprop([(total, xp.ones_like(unwrap(total)))]) \
            if hasattr(total, "tape") and total.tape is tape else {}
        g = ct.get(p.id)
        return unwrap(total), xp.zeros_like(y_pred) if g is None else g

    def get_config(self):
        raise NotImplementedError(f"loss {self.name!r}: a loss function cannot be saved; "
                                  "register a Loss subclass to save the model compiled")


def _reduce_traced(loss, values, sample_weight):
    from xpnet import ops

    if sample_weight is not None:
        from xpnet.engine.tape import unwrap

        w = _bcast(sample_weight, unwrap(values))
        values = ops.multiply(values, w)
    total = ops.sum(values)
    if loss.reduction == "sum":
        return total
    return ops.divide(total, max(_size(ops.shape(values)), 1))


def _like(a, like):
    """``a`` as an array of ``like``'s namespace and device (host data is transferred)."""
    try:
        if namespace(a) is namespace(like):
            return a
    except TypeError:
        pass
    return backend_of(like).asarray(a)


def _row_sum(p):
    """The sums of ``p``'s rows that normalise them, 1 for an all-zero row: such a row then
    stays 0 and is clipped to ``EPSILON`` (loss ``-log(1e-7) = 16.118`` per unit of target)
    instead of 0/0 = NaN."""
    xp = namespace(p)
    s = xp.sum(p, axis=-1, keepdims=True)
    return xp.where(s == 0, xp.ones_like(s), s)


def _size(shape):
    return math.prod(shape)


def apply_mask(sample_weight, mask, reduction, like):
    """A Keras mask folded into the sample weights, as Keras 3's ``apply_mask``: with a
    mean reduction the valid entries weigh ``total / valid``, so the mean is over them."""
    xp = namespace(like)
    m = xp.astype(mask, like.dtype)
    if reduction in ("mean", "sum_over_batch_size"):
        total = float(math.prod(m.shape))
        m = m * (total / (xp.sum(m) + 1e-7))
    if sample_weight is not None:
        w = xp.astype(sample_weight, like.dtype)
        while w.ndim < m.ndim:
            w = xp.expand_dims(w, axis=-1)
        m = m * w
    return m


def _bcast(sample_weight, values):
    """Sample weights (batch,) broadcast against per-sample values (batch, ...)."""
    xp = namespace(values)
    w = xp.astype(sample_weight, values.dtype) if sample_weight.dtype != values.dtype \
        else sample_weight
    if w.ndim < values.ndim:
        w = xp.reshape(w, tuple(w.shape) + (1,) * (values.ndim - w.ndim))
    return xp.broadcast_to(w, values.shape)


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true)^2)`` over the last axis."""

    default_name = "mean_squared_error"

    def call(self, y_true, y_pred):
        d = y_pred - y_true
        return namespace(d).mean(d * d, axis=-1)

    def grad(self, y_true, y_pred):
        return (y_pred - y_true) * (2.0 / y_pred.shape[-1])


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over the last axis."""

    default_name = "mean_absolute_error"

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        return xp.mean(xp.abs(y_pred - y_true), axis=-1)

    def grad(self, y_true, y_pred):
        return namespace(y_pred).sign(y_pred - y_true) * (1.0 / y_pred.shape[-1])


class Huber(Loss):
    """Quadratic below ``delta``, linear above; mean over the last axis."""

    default_name = "huber_loss"

    def __init__(self, delta=1.0, **kwargs):
        super().__init__(**kwargs)
        self.delta = float(delta)

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        a = xp.abs(y_pred - y_true)
        q = xp.minimum(a, self.delta)
        return xp.mean(0.5 * q * q + self.delta * (a - q), axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        d = y_pred - y_true
        return xp.clip(d, -self.delta, self.delta) * (1.0 / y_pred.shape[-1])

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


class LogCosh(Loss):
    """``mean(log(cosh(y_pred - y_true)))`` over the last axis, without overflow."""

    default_name = "log_cosh"

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        d = y_pred - y_true
        return xp.mean(reference.softplus(-2.0 * d, xp) + d - math.log(2.0), axis=-1)

    def grad(self, y_true, y_pred):
        return namespace(y_pred).tanh(y_pred - y_true) * (1.0 / y_pred.shape[-1])


class Hinge(Loss):
    """``mean(max(1 - y_true * y_pred, 0))``; labels in {-1, 1} (0/1 are mapped to -1/1)."""

    default_name = "hinge"

    def prepare(self, y_true, y_pred):
        xp = namespace(y_pred)
        t = super().prepare(y_true, y_pred)
        return xp.where(t == 0, -1.0, t)

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        return xp.mean(xp.maximum(1.0 - y_true * y_pred, 0.0), axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        return xp.where(1.0 - y_true * y_pred > 0, -y_true, 0.0) * (1.0 / y_pred.shape[-1])


class KLDivergence(Loss):
    """``sum(t * log(t / p))`` over the last axis, both clipped to ``[eps, 1]``."""

    default_name = "kl_divergence"

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        t, p = xp.clip(y_true, EPSILON, 1.0), xp.clip(y_pred, EPSILON, 1.0)
        return xp.sum(t * xp.log(t / p), axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        t, p = xp.clip(y_true, EPSILON, 1.0), xp.clip(y_pred, EPSILON, 1.0)
        return xp.where((y_pred > EPSILON) & (y_pred < 1.0), -t / p, 0.0)


class Poisson(Loss):
    """``mean(y_pred - y_true * log(y_pred + eps))`` over the last axis."""

    default_name = "poisson"

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        return xp.mean(y_pred - y_true * xp.log(y_pred + EPSILON), axis=-1)

    def grad(self, y_true, y_pred):
        return (1.0 - y_true / (y_pred + EPSILON)) * (1.0 / y_pred.shape[-1])


class BinaryCrossentropy(Loss):
    """Binary cross-entropy, mean over the last axis.

    Parameters
    ----------
    from_logits : bool, default=False
        Whether ``y_pred`` are logits; otherwise probabilities, clipped to ``[eps, 1 - eps]``.
    label_smoothing : float, default=0.0
        Targets become ``t * (1 - label_smoothing) + 0.5 * label_smoothing``.
    """

    default_name = "binary_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        self.from_logits, self.label_smoothing = from_logits, float(label_smoothing)

    def _smooth(self, t):
        if self.label_smoothing:
            return t * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return t

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        y_true = self._smooth(y_true)
        if self.from_logits:  # max(z, 0) - z t + log(1 + exp(-|z|))
            z = y_pred
            return xp.mean(reference.softplus(z, xp) - z * y_true, axis=-1)
        p = xp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        return xp.mean(-(y_true * xp.log(p) + (1.0 - y_true) * xp.log(1.0 - p)), axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        y_true = self._smooth(y_true)
        d = 1.0 / y_pred.shape[-1]
        if self.from_logits:
            return (reference.sigmoid(y_pred, xp) - y_true) * d
        p = xp.clip(y_pred, EPSILON, 1.0 - EPSILON)
        g = (1.0 - y_true) / (1.0 - p) - y_true / p
        return xp.where((y_pred > EPSILON) & (y_pred < 1.0 - EPSILON), g * d, 0.0)

    def logits_twin(self, activation):
        if activation == "sigmoid" and not self.from_logits:
            return BinaryCrossentropy(True, self.label_smoothing, name=self.name,
                                      reduction=self.reduction)
        return None

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or soft) targets over the last axis.

    Parameters
    ----------
    from_logits : bool, default=False
        Whether ``y_pred`` are logits. With probabilities, they are renormalised to sum to 1
        and clipped to ``[eps, 1 - eps]`` (as Keras).
    label_smoothing : float, default=0.0
    """

    default_name = "categorical_crossentropy"

    def __init__(self, from_logits=False, label_smoothing=0.0, **kwargs):
        super().__init__(**kwargs)
        self.from_logits, self.label_smoothing = from_logits, float(label_smoothing)

    def _targets(self, y_true, y_pred):
        xp = namespace(y_pred)
        t = y_true
        if self.sparse_labels:
            classes = xp.arange(y_pred.shape[-1], dtype=t.dtype, device=device_of(y_pred))
            t = xp.astype(t[..., None] == classes, y_pred.dtype)
        if self.label_smoothing:
            t = t * (1.0 - self.label_smoothing) + self.label_smoothing / y_pred.shape[-1]
        return t

    def call(self, y_true, y_pred):
        xp = namespace(y_pred)
        if self.from_logits:
            return self._fused(y_true, y_pred, None)[0]
        t = self._targets(y_true, y_pred)
        q = xp.clip(y_pred / _row_sum(y_pred), EPSILON, 1.0 - EPSILON)
        return -xp.sum(t * xp.log(q), axis=-1)

    def grad(self, y_true, y_pred):
        xp = namespace(y_pred)
        t = self._targets(y_true, y_pred)
        s = _row_sum(y_pred)
        q = y_pred / s
        inside = (q > EPSILON) & (q < 1.0 - EPSILON)
        dq = xp.where(inside, -t / xp.clip(q, EPSILON, 1.0 - EPSILON), 0.0)
        return (dq - xp.sum(dq * q, axis=-1, keepdims=True)) / s

    def _fused(self, y_true, y_pred, sample_weight):
        """The softmax-cross-entropy kernel on rows ``(N, C)``: values and dlogits."""
        xp = namespace(y_pred)
        c = y_pred.shape[-1]
        rows = _size(y_pred.shape[:-1])
        z = xp.reshape(y_pred, (rows, c))
        t = xp.reshape(y_true, (rows,) if self.sparse_labels else (rows, c))
        w = None if sample_weight is None else xp.reshape(
            _bcast(sample_weight, y_pred[..., 0]), (rows,))
        loss, dz = kernels.softmax_cross_entropy(z, t, w, self.label_smoothing)
        return xp.reshape(loss, y_pred.shape[:-1]), xp.reshape(dz, y_pred.shape)

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        if not self.from_logits:
            return super().value_and_grad(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        values, dz = self._fused(y_true, y_pred, sample_weight)
        n = _size(values.shape)
        if sample_weight is not None:
            values = values * _bcast(sample_weight, values)
        total = xp.sum(values)
        if self.reduction == "sum":
            return total, dz * float(n)
        return total / max(n, 1), dz

    def logits_twin(self, activation):
        if activation == "softmax" and not self.from_logits:
            return type(self)(True, self.label_smoothing, name=self.name,
                              reduction=self.reduction)
        return None

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits,
                "label_smoothing": self.label_smoothing}


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy against integer class labels (shape ``y_pred.shape[:-1]``, or with a
    trailing axis of 1).

    Parameters
    ----------
    from_logits : bool, default=False
    ignore_class : int or None, default=None
        A label whose entries count for nothing, as Keras 3: their loss is 0 and the mean
        runs over the other entries (padding in a sequence, for example).
    """

    default_name = "sparse_categorical_crossentropy"

    sparse_labels = True

    def __init__(self, from_logits=False, ignore_class=None, **kwargs):
        super().__init__(from_logits=from_logits, **kwargs)
        if ignore_class is not None and (isinstance(ignore_class, bool)
                                         or not isinstance(ignore_class, int)):
            raise ValueError(f"{self.name}: ignore_class must be an int or None. Received: "
                             f"ignore_class={ignore_class!r}")
        self.ignore_class = ignore_class

    def label_mask(self, y_true):
        return None if self.ignore_class is None else y_true != self.ignore_class

    def _kept(self, y_true):
        """The labels with ``ignore_class`` replaced by 0 (a valid class, weighed 0)."""
        if self.ignore_class is None:
            return y_true
        xp = namespace(y_true)
        return xp.where(y_true != self.ignore_class, y_true, xp.zeros_like(y_true))

    def call(self, y_true, y_pred):
        values = super().call(self._kept(y_true), y_pred)
        if self.ignore_class is None:
            return values
        xp = namespace(values)
        return xp.where(self.label_mask(y_true), values, xp.zeros_like(values))

    def grad(self, y_true, y_pred):
        g = super().grad(self._kept(y_true), y_pred)
        if self.ignore_class is None:
            return g
        xp = namespace(g)
        return xp.where(self.label_mask(y_true)[..., None], g, xp.zeros_like(g))

    def value_and_grad(self, y_true, y_pred, sample_weight=None):
        # the ignored entries weigh 0 in sample_weight already (weights())
        return super().value_and_grad(self._kept(y_true), y_pred, sample_weight)

    def prepare(self, y_true, y_pred):
        xp = namespace(y_pred)
        if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
            y_true = xp.reshape(y_true, tuple(y_true.shape[:-1]))
        if not xp.isdtype(y_true.dtype, "integral"):
            y_true = xp.astype(y_true, xp.int64)
        return y_true

    def validate(self, y_true, output_shape):
        xp = namespace(y_true)
        shape, want = tuple(y_true.shape), tuple(output_shape)
        if len(shape) == len(want) and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) != len(want) - 1 or any(a != b for a, b in zip(shape[1:], want[1:-1])
                                               if b is not None):
            raise ValueError(f"{self.name}: integer labels of shape {tuple(y_true.shape)} do "
                             f"not match model outputs of shape {want} (expected labels of "
                             f"shape {(shape[0],) + want[1:-1]})")
        if _size(shape) == 0:
            return
        if self.ignore_class is not None:
            y_true = self._kept(y_true)
        lo, hi = float(xp.min(y_true)), float(xp.max(y_true))
        if lo < 0 or hi >= want[-1] or (xp.isdtype(y_true.dtype, "real floating")
                                        and bool(xp.any(xp.round(y_true) != y_true))):
            raise ValueError(f"{self.name}: labels must be integers in [0, {want[-1]}) for "
                             f"{want[-1]} classes, got values in [{lo:g}, {hi:g}]")

    def get_config(self):
        config = {**super().get_config(), "ignore_class": self.ignore_class}
        if not config["label_smoothing"]:
            config.pop("label_smoothing")
        return config

    def logits_twin(self, activation):
        if activation == "softmax" and not self.from_logits:
            return SparseCategoricalCrossentropy(True, self.ignore_class, name=self.name,
                                                 reduction=self.reduction,
                                                 label_smoothing=self.label_smoothing)
        return None


def _function(cls, name):
    def loss(y_true, y_pred, **kwargs):
        # the unreduced call, so a traced ``y_pred`` records one op with the loss's gradient
        return cls(reduction="none", **kwargs)(y_true, y_pred)

    loss.__name__ = name
    loss.__doc__ = f"Per-sample values of :class:`{cls.__name__}`."
    return loss


mean_squared_error = _function(MeanSquaredError, "mean_squared_error")
mean_absolute_error = _function(MeanAbsoluteError, "mean_absolute_error")
binary_crossentropy = _function(BinaryCrossentropy, "binary_crossentropy")
categorical_crossentropy = _function(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _function(SparseCategoricalCrossentropy,
                                            "sparse_categorical_crossentropy")
huber = _function(Huber, "huber")
hinge = _function(Hinge, "hinge")
kl_divergence = _function(KLDivergence, "kl_divergence")
poisson = _function(Poisson, "poisson")
log_cosh = _function(LogCosh, "log_cosh")

_BY_NAME = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "huber": Huber, "hinge": Hinge, "kld": KLDivergence, "kl_divergence": KLDivergence,
    "kullback_leibler_divergence": KLDivergence, "poisson": Poisson, "log_cosh": LogCosh,
    "logcosh": LogCosh,
}
_FUNCTIONS = {f.__name__: f for f in (
    mean_squared_error, mean_absolute_error, binary_crossentropy, categorical_crossentropy,
    sparse_categorical_crossentropy, huber, hinge, kl_divergence, poisson, log_cosh)}
_CLASSES = {cls.__name__: cls for cls in set(_BY_NAME.values())}


def get(identifier):
    """A Loss from a name (``"mse"``, ``"sparse_categorical_crossentropy"``), one of this
    module's functions or classes, an instance, or a ``{"class_name", "config"}`` dict."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        cls = _CLASSES.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}")
        return cls.from_config(identifier.get("config", {}))
    if callable(identifier) and _FUNCTIONS.get(getattr(identifier, "__name__", None)) \
            is identifier:
        identifier = identifier.__name__
    if isinstance(identifier, str):
        _extra.not_yet(identifier)
        cls = _BY_NAME.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}; known: {', '.join(sorted(_BY_NAME))}")
        return cls()
    if callable(identifier):  # fn(y_true, y_pred) written with keras.ops
        return LossFunctionWrapper(identifier)
    raise ValueError(f"unknown loss {identifier!r}: expected a name, a Loss, or a function "
                     "fn(y_true, y_pred)")


# Keras's other losses (imported last: they build on the classes above).
from xpnet import losses_extra as _extra  # noqa: E402
from xpnet.losses_extra import *  # noqa: E402,F401,F403
from xpnet.losses_extra import __all__ as _extra_all  # noqa: E402

__all__ += _extra_all
_EXTRA = [getattr(_extra, n) for n in _extra_all]
_CLASSES.update({cls.__name__: cls for cls in _EXTRA})
_BY_NAME.update({cls.default_name: cls for cls in _EXTRA})
_BY_NAME.update({"msle": _extra.MeanSquaredLogarithmicError,
                 "mape": _extra.MeanAbsolutePercentageError})
for _cls in _EXTRA:
    _f = _function(_cls, _cls.default_name)
    globals()[_cls.default_name] = _f
    _FUNCTIONS[_cls.default_name] = _f
    __all__.append(_cls.default_name)


def serialize(loss):
    return {"class_name": type(loss).__name__, "config": loss.get_config()}


def __getattr__(name):
    _extra.not_yet(name)  # a Keras loss xpnet lacks: NotImplementedError naming it
    raise AttributeError(f"module 'xpnet.losses' has no attribute {name!r}")
