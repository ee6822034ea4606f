"""Top-k accuracies, F-scores, R^2 and the regression metrics RMSE, cosine similarity and
log-cosh error, as Keras 3 (``keras/src/metrics/accuracy_metrics.py``,
``f_score_metrics.py``, ``regression_metrics.py``)."""

import math

from xpnet.kernels import reference
from xpnet.metrics import Mean
from xpnet.metrics import MeanMetricWrapper
from xpnet.metrics import Metric
from xpnet.metrics import as_arrays
from xpnet.metrics import namespace

__all__ = ["TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "F1Score",
           "FBetaScore", "R2Score", "RootMeanSquaredError", "CosineSimilarity",
           "LogCoshError", "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
           "cosine_similarity", "log_cosh"]

EPSILON = 1e-7  # keras.backend.epsilon()


def _in_top_k(labels, y_pred, k):
    """1.0 where the score of class ``labels`` is among the row's ``k`` highest; ties at the
    boundary count as in (``ops.in_top_k``: ``score >= k-th largest``)."""
    xp = namespace(y_pred)
    idx = xp.reshape(xp.astype(labels, xp.int64), (-1, 1))
    rows = xp.reshape(y_pred, (-1, y_pred.shape[-1]))
    target = xp.take_along_axis(rows, idx, axis=-1)
    higher = xp.sum(xp.astype(rows > target, xp.int64), axis=-1)
    return xp.reshape(xp.astype(higher < k, y_pred.dtype), tuple(y_pred.shape[:-1]))


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the one-hot label's class is among the ``k`` highest predictions."""
    xp = namespace(y_pred)
    return _in_top_k(xp.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the integer label is among the ``k`` highest predictions; with
    ``from_sorted_ids``, ``y_pred`` holds class ids sorted by score and the label must be
    among its first ``k``."""
    xp = namespace(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = xp.reshape(y_true, tuple(y_true.shape[:-1]))
    if not from_sorted_ids:
        return _in_top_k(y_true, y_pred, k)
    hit = xp.astype(y_pred[..., :k], xp.int64) == xp.astype(y_true, xp.int64)[..., None]
    return xp.astype(xp.any(hit, axis=-1), xp.float32)


def cosine_similarity(y_true, y_pred, axis=-1):
    """``sum(l2_normalize(y_true) * l2_normalize(y_pred))`` over ``axis``."""
    xp = namespace(y_pred)
    return xp.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), axis=axis)


def _l2_normalize(x, axis):
    """``x / max(||x||, eps)`` (Keras's ``ops.normalize``)."""
    xp = namespace(x)
    return x / xp.maximum(xp.sqrt(xp.sum(x * x, axis=axis, keepdims=True)), EPSILON)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(y_pred - y_true)))`` over the last axis, computed without overflow as
    ``d + softplus(-2 d) - log 2``."""
    xp = namespace(y_pred)
    d = y_pred - y_true
    return xp.mean(d + reference.softplus(-2.0 * d, xp) - math.log(2.0), axis=-1)


class _FloatTargets(MeanMetricWrapper):
    """A mean of ``fn(y_true, y_pred)`` with ``y_true`` cast to ``y_pred``'s dtype."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        if y_true.dtype != y_pred.dtype:
            y_true = xp.astype(y_true, y_pred.dtype)
        super().update_state(y_true, y_pred, sample_weight)


class TopKCategoricalAccuracy(_FloatTargets):
    """How often the one-hot label is among the ``k`` (default 5) highest predictions."""

    argmax_based = True  # a ranking: the same on a softmax's logits

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the ``k`` (default 5) highest predictions."""

    argmax_based = True

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=from_sorted_ids)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        super().update_state(y_true, y_pred, sample_weight)


class CosineSimilarity(_FloatTargets):
    """Mean cosine similarity between labels and predictions along ``axis`` (-1)."""

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis)


class LogCoshError(_FloatTargets):
    """Mean of ``log(cosh(y_pred - y_true))``."""

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(log_cosh, name=name, dtype=dtype)


class RootMeanSquaredError(Mean):
    """``sqrt`` of the (weighted) mean of ``(y_pred - y_true)^2`` over every element."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        if y_true.ndim == y_pred.ndim - 1:
            y_true = xp.reshape(y_true, tuple(y_true.shape) + (1,))
        d = y_pred - xp.astype(y_true, y_pred.dtype)
        super().update_state(d * d, sample_weight)

    def result(self):
        mean = super().result()
        return namespace(mean).sqrt(mean) if hasattr(mean, "shape") else math.sqrt(mean)


class FBetaScore(Metric):
    """F-beta score per class, ``(1 + b^2) P R / (b^2 P + R)``, as Keras 3.

    Parameters
    ----------
    average : {None, "micro", "macro", "weighted"}, default=None
        None: one score per class; "micro": from the counts summed over classes; "macro":
        the mean of the class scores; "weighted": their mean weighted by label support.
    beta : float, default=1.0
    threshold : float, default=None
        ``y_pred > threshold`` is positive; None takes each row's maximum (nonzero) as its
        one positive class.
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score",
                 dtype=None):
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(f"{type(self).__name__}: average must be one of None, 'micro', "
                             f"'macro', 'weighted'. Received: average={average!r}")
        if not isinstance(beta, (int, float)) or beta <= 0:
            raise ValueError(f"{type(self).__name__}: beta must be a positive float. "
                             f"Received: beta={beta!r}")
        if threshold is not None and not (isinstance(threshold, float) and
                                          0.0 < threshold <= 1.0):
            raise ValueError(f"{type(self).__name__}: threshold must be a float in (0, 1]. "
                             f"Received: threshold={threshold!r}")
        self.average, self.beta, self.threshold = average, float(beta), threshold
        self.axis = None if average == "micro" else 0
        self.vector_valued = average is None
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self._state = None

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        if self.threshold is None:
            top = xp.max(y_pred, axis=-1, keepdims=True)
            pred = (y_pred >= top) & (xp.abs(y_pred) > 1e-9)
        else:
            pred = y_pred > self.threshold
        pred, true = xp.astype(pred, y_pred.dtype), xp.astype(y_true, y_pred.dtype)
        w = None if sample_weight is None else xp.reshape(
            xp.astype(sample_weight, y_pred.dtype), (-1, 1))

        def total(v):
            return xp.sum(v if w is None else v * w, axis=self.axis)

        new = (total(pred * true), total(pred * (1.0 - true)), total((1.0 - pred) * true),
               total(true))
        self._state = new if self._state is None else tuple(
            a + b for a, b in zip(self._state, new))

    def result(self):
        if self._state is None:
            return 0.0
        tp, fp, fn, support = self._state
        xp = namespace(tp)
        precision = tp / (tp + fp + EPSILON)
        recall = tp / (tp + fn + EPSILON)
        b2 = self.beta**2
        score = precision * recall / (b2 * precision + recall + EPSILON) * (1.0 + b2)
        if self.average == "weighted":
            return xp.sum(score * support / (xp.sum(support) + EPSILON))
        if self.average is not None:
            return xp.mean(score)
        return score

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "average": self.average,
                "threshold": self.threshold}


class F1Score(FBetaScore):
    """F1 score, :class:`FBetaScore` with ``beta=1``."""

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name,
                         dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config


class R2Score(Metric):
    """Coefficient of determination ``1 - SS_res / SS_tot`` per output, as Keras 3.

    Parameters
    ----------
    class_aggregation : {"uniform_average", "variance_weighted_average", None}
        The mean of the outputs' scores, their mean weighted by ``SS_tot``, or one each.
    num_regressors : int, default=0
        Adjusted R^2, ``1 - (1 - R^2)(n - 1) / (n - p - 1)``, when positive.
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0,
                 name="r2_score", dtype=None):
        if class_aggregation not in ("uniform_average", "variance_weighted_average", None):
            raise ValueError("R2Score: class_aggregation must be 'uniform_average', "
                             "'variance_weighted_average' or None. Received: "
                             f"class_aggregation={class_aggregation!r}")
        if not isinstance(num_regressors, int) or num_regressors < 0:
            raise ValueError("R2Score: num_regressors must be a non-negative int. Received: "
                             f"num_regressors={num_regressors!r}")
        self.class_aggregation, self.num_regressors = class_aggregation, num_regressors
        self.vector_valued = class_aggregation is None
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self._state, self.num_samples = None, 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        if y_pred.ndim == 1:
            y_pred = xp.reshape(y_pred, (-1, 1))
        y_true = xp.reshape(xp.astype(y_true, y_pred.dtype), tuple(y_pred.shape))
        w = xp.ones_like(y_true) if sample_weight is None else xp.broadcast_to(
            xp.reshape(xp.astype(sample_weight, y_pred.dtype), (-1, 1)), y_true.shape)
        d = y_true - y_pred
        new = (xp.sum(w * y_true, axis=0), xp.sum(w * y_true * y_true, axis=0),
               xp.sum(w * d * d, axis=0), xp.sum(w, axis=0))
        self._state = new if self._state is None else tuple(
            a + b for a, b in zip(self._state, new))
        self.num_samples += y_true.shape[0]

    def result(self):
        if self._state is None:
            return 0.0
        total_y, total_y2, ss_res, count = self._state
        xp = namespace(total_y)
        ss_tot = total_y2 - total_y * (total_y / count)
        raw = 1.0 - ss_res / ss_tot
        raw = xp.where(xp.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            r2 = xp.mean(raw)
        elif self.class_aggregation == "variance_weighted_average":
            r2 = xp.sum(ss_tot * raw) / xp.sum(ss_tot)
        else:
            r2 = raw
        n, p = self.num_samples, self.num_regressors
        if p and n - p - 1 > 0:  # Keras warns and leaves R^2 unadjusted otherwise
            r2 = 1.0 - (1.0 - r2) * ((n - 1) / (n - p - 1))
        return r2

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
