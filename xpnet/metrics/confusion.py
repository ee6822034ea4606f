"""Thresholded confusion counts, Precision, Recall and AUC, as Keras 3
(``keras/src/metrics/confusion_metrics.py``, ``metrics_utils.update_confusion_matrix_variables``).

A prediction counts as positive at threshold ``t`` when ``y_pred > t``; a label is positive
when it is nonzero. The counts are sums of sample weights, kept on the device: one
``(M,) @ (M, T)`` product per batch gives every threshold's true positives at once.
"""

from array_api_compat import device as device_of

from xpnet.kernels import reference
from xpnet.metrics import Metric
from xpnet.metrics import as_arrays
from xpnet.metrics import namespace

__all__ = ["TruePositives", "FalsePositives", "TrueNegatives", "FalseNegatives", "Precision",
           "Recall", "AUC", "SensitivityAtSpecificity", "SpecificityAtSensitivity",
           "PrecisionAtRecall", "RecallAtPrecision"]

EPSILON = 1e-7  # keras.backend.epsilon()
NEG_INF = -1e10  # metrics_utils.NEG_INF: what top_k filtering leaves outside the top k
# Predictions compared with the thresholds this many at a time: the (rows, T) comparison
# of a 200-threshold AUC stays under ~26 MB in float32.
_CHUNK = 32768


def _thresholds(thresholds, default, owner):
    """A list of floats from Keras's ``thresholds`` argument (None, a float or a list)."""
    if thresholds is None:
        return [float(default)]
    values = [float(t) for t in (thresholds if isinstance(thresholds, (list, tuple))
                                 else [thresholds])]
    if any(not (0.0 <= t <= 1.0 or t == NEG_INF) for t in values):
        raise ValueError(f"{owner}: thresholds must be in [0, 1]. Received: "
                         f"thresholds={thresholds!r}")
    return values


def filter_top_k(y_pred, k):
    """``y_pred`` with everything outside each row's top ``k`` set to ``NEG_INF`` (ties go
    to the lower index, as ``ops.top_k``)."""
    xp = namespace(y_pred)
    order = xp.argsort(y_pred, axis=-1, descending=True, stable=True)
    rank = xp.argsort(order, axis=-1, stable=True)
    return xp.where(rank < k, y_pred, NEG_INF)


def _same_rank(y_true, y_pred):
    xp = namespace(y_pred)
    if y_true.ndim == y_pred.ndim - 1:
        return xp.reshape(y_true, tuple(y_true.shape) + (1,))
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        return xp.reshape(y_true, tuple(y_true.shape[:-1]))
    return y_true


def confusion_counts(y_true, y_pred, thresholds, sample_weight=None, top_k=None,
                     class_id=None, multi_label=False, label_weights=None):
    """``(tp, fp, tn, fn)``, each of shape ``(len(thresholds),)``, for one batch.

    ``tp[j] = sum(w * [y_true != 0] * [y_pred > thresholds[j]])`` over every element of the
    (flattened) predictions, the sample weights broadcast over the trailing axes and, if
    given, times ``label_weights[k]`` for the elements of label (last-axis index) ``k``.
    With ``multi_label``, ``y_pred`` is ``(batch, labels)`` and each count is
    ``(len(thresholds), labels)``: one column per label.
    """
    xp = namespace(y_pred)
    y_true = _same_rank(y_true, y_pred)
    if top_k is not None:
        y_pred = filter_top_k(y_pred, top_k)
    if class_id is not None:
        y_true, y_pred = y_true[..., class_id:class_id + 1], y_pred[..., class_id:class_id + 1]
    dtype = y_pred.dtype
    positive = xp.reshape(xp.astype(y_true != 0, dtype), (-1,))
    w = xp.ones_like(positive) if sample_weight is None else _broadcast(sample_weight, y_pred)
    if label_weights is not None:
        w = w * _broadcast(label_weights[None, ...], y_pred)
    pos_w, neg_w = positive * w, (1.0 - positive) * w
    t = thresholds if hasattr(thresholds, "shape") else xp.asarray(
        thresholds, dtype=dtype, device=device_of(y_pred))
    if multi_label:
        return _per_label_counts(y_pred, t, pos_w, neg_w)
    p = xp.reshape(y_pred, (-1,))
    tp = fp = xp.zeros(t.shape, dtype=dtype, device=device_of(y_pred))
    n = p.shape[0]
    for i in range(0, n, _CHUNK):
        j = min(i + _CHUNK, n)  # in-bounds slices only (the array API leaves others open)
        above = xp.astype(p[i:j, None] > t[None, :], dtype)
        tp = tp + pos_w[None, i:j] @ above
        fp = fp + neg_w[None, i:j] @ above
    tp, fp = xp.reshape(tp, (-1,)), xp.reshape(fp, (-1,))
    return tp, fp, xp.sum(neg_w) - fp, xp.sum(pos_w) - tp


def _per_label_counts(y_pred, t, pos_w, neg_w):
    """Counts ``(T, labels)`` for rank-2 predictions, one label per column."""
    xp = namespace(y_pred)
    if y_pred.ndim != 2:
        raise ValueError("AUC: y_pred must have rank 2 when multi_label=True. Received: "
                         f"y_pred.shape={tuple(y_pred.shape)}")
    n, labels = y_pred.shape
    pos_w, neg_w = xp.reshape(pos_w, (n, labels)), xp.reshape(neg_w, (n, labels))
    tp = fp = xp.zeros((labels, t.shape[0]), dtype=y_pred.dtype, device=device_of(y_pred))
    step = max(1, _CHUNK // labels)
    for i in range(0, n, step):
        j = min(i + step, n)
        above = xp.astype(y_pred[i:j, :, None] > t, y_pred.dtype)  # (rows, labels, T)
        tp = tp + xp.sum(pos_w[i:j, :, None] * above, axis=0)
        fp = fp + xp.sum(neg_w[i:j, :, None] * above, axis=0)
    tp, fp = tp.mT, fp.mT
    return tp, fp, xp.sum(neg_w, axis=0) - fp, xp.sum(pos_w, axis=0) - tp


def _broadcast(sample_weight, y_pred):
    """Sample weights ``(batch,)`` (or any shape broadcasting to ``y_pred``'s), flattened."""
    xp = namespace(y_pred)
    w = xp.astype(sample_weight, y_pred.dtype)
    if 0 < w.ndim < y_pred.ndim:
        w = xp.reshape(w, tuple(w.shape) + (1,) * (y_pred.ndim - w.ndim))
    return xp.reshape(xp.broadcast_to(w, y_pred.shape), (-1,))


def divide_no_nan(a, b):
    """``a / b``, 0 where ``b == 0`` (``ops.divide_no_nan``)."""
    xp = namespace(a)
    zero = b == 0
    return xp.where(zero, 0.0, a / xp.where(zero, 1.0, b))


class _Counts(Metric):
    """Base: accumulates the confusion counts named in ``_KEEP`` at ``self.thresholds``."""

    _KEEP = ("tp", "fp", "tn", "fn")

    def reset_state(self):
        self._counts = None

    def _threshold_array(self, like):
        """The thresholds as an array like ``like``, made once per dtype and device (no
        host-to-device copy per batch)."""
        xp = namespace(like)
        key = (str(like.dtype), str(device_of(like)))
        cache = self.__dict__.setdefault("_threshold_arrays", {})
        if key not in cache:
            cache[key] = xp.asarray(self.thresholds, dtype=like.dtype, device=device_of(like))
        return cache[key]

    def _update(self, y_true, y_pred, sample_weight, top_k=None, class_id=None,
                multi_label=False, label_weights=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        if label_weights is not None:
            label_weights = namespace(y_pred).asarray(label_weights, dtype=y_pred.dtype,
                                                      device=device_of(y_pred))
        counts = dict(zip(("tp", "fp", "tn", "fn"), confusion_counts(
            y_true, y_pred, self._threshold_array(y_pred), sample_weight, top_k, class_id,
            multi_label, label_weights)))
        if self._counts is None:
            self._counts = {k: counts[k] for k in self._KEEP}
        else:
            self._counts = {k: self._counts[k] + counts[k] for k in self._KEEP}

    def _count(self, key):
        """The accumulated count ``key``, or zeros before any update (Python floats)."""
        if self._counts is None:
            return [0.0] * len(self.thresholds)
        return self._counts[key]

    @property
    def vector_valued(self):
        return len(self.thresholds) > 1  # one result per threshold

    @staticmethod
    def _one(values, thresholds):
        return values[0] if len(thresholds) == 1 else values


class _ConditionCount(_Counts):
    _KEY = "tp"

    def __init__(self, thresholds=None, name=None, dtype=None):
        self.init_thresholds = thresholds
        self.thresholds = _thresholds(thresholds, 0.5, type(self).__name__)
        self._KEEP = (self._KEY,)
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._update(y_true, y_pred, sample_weight)

    def result(self):
        return self._one(self._count(self._KEY), self.thresholds)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds}


class TruePositives(_ConditionCount):
    """Sum of the weights of true positives, ``y_true != 0`` and ``y_pred > threshold``
    (``thresholds`` default 0.5; a list gives one count per threshold)."""

    _KEY = "tp"


class FalsePositives(_ConditionCount):
    """Sum of the weights of false positives, ``y_true == 0`` and ``y_pred > threshold``."""

    _KEY = "fp"


class TrueNegatives(_ConditionCount):
    """Sum of the weights of true negatives, ``y_true == 0`` and ``y_pred <= threshold``."""

    _KEY = "tn"


class FalseNegatives(_ConditionCount):
    """Sum of the weights of false negatives, ``y_true != 0`` and ``y_pred <= threshold``."""

    _KEY = "fn"


class Precision(_Counts):
    """``tp / (tp + fp)`` (0 when nothing is predicted positive), as Keras.

    Parameters
    ----------
    thresholds : float or list of float, default=None
        0.5 when neither ``thresholds`` nor ``top_k`` is set; a list gives one value each.
    top_k : int, default=None
        Only each row's ``top_k`` highest predictions count as positive.
    class_id : int, default=None
        Only the predictions and labels of this class (the last axis) count.
    """

    _KEEP = ("tp", "fp")

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        self.init_thresholds, self.top_k, self.class_id = thresholds, top_k, class_id
        default = 0.5 if top_k is None else NEG_INF
        self.thresholds = _thresholds(thresholds, default, type(self).__name__)
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._update(y_true, y_pred, sample_weight, self.top_k, self.class_id)

    def result(self):
        if self._counts is None:
            return self._one([0.0] * len(self.thresholds), self.thresholds)
        tp = self._counts["tp"]
        return self._one(divide_no_nan(tp, tp + self._counts[self._KEEP[1]]), self.thresholds)

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds,
                "top_k": self.top_k, "class_id": self.class_id}


class Recall(Precision):
    """``tp / (tp + fn)`` (0 when there are no positive labels), as Keras; the arguments are
    :class:`Precision`'s."""

    _KEEP = ("tp", "fn")


class AUC(_Counts):
    """Area under the ROC or precision-recall curve, approximated over fixed thresholds as
    Keras 3 does (a Riemann sum over the confusion counts at each threshold).

    Parameters
    ----------
    num_thresholds : int, default=200
        The thresholds are ``-eps, 1/(n-1), ..., (n-2)/(n-1), 1 + eps``.
    curve : {"ROC", "PR"}, default="ROC"
    summation_method : {"interpolation", "minoring", "majoring"}, default="interpolation"
        Trapezoids (ROC) or Davis & Goadrich's interpolation (PR); lower or upper sums.
    thresholds : list of float, default=None
        Inner thresholds in [0, 1], used instead of ``num_thresholds``.
    from_logits : bool, default=False
        Apply a sigmoid to ``y_pred`` first.
    multi_label : bool, default=False
        One AUC per label (the columns of rank-2 predictions), then their mean; otherwise
        every prediction is one data point.
    label_weights : list of float, default=None
        With ``multi_label``, the weights of the label AUCs in the mean; without, the
        weights of each label's predictions in the counts.
    """

    vector_valued = False  # one area, whatever the thresholds

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        if num_labels is not None and not multi_label:
            raise ValueError("AUC: `num_labels` is needed only when `multi_label` is True. "
                             f"Received: num_labels={num_labels}")
        if str(curve).upper() not in ("ROC", "PR"):
            raise ValueError(f"AUC: curve must be 'ROC' or 'PR'. Received: curve={curve!r}")
        if str(summation_method).lower() not in ("interpolation", "minoring", "majoring"):
            raise ValueError("AUC: summation_method must be 'interpolation', 'minoring' or "
                             f"'majoring'. Received: summation_method={summation_method!r}")
        if thresholds is not None:
            inner = sorted(_thresholds(list(thresholds), 0.5, "AUC"))
        elif num_thresholds <= 1:
            raise ValueError(f"AUC: num_thresholds must be an integer > 1. Received: "
                             f"num_thresholds={num_thresholds}")
        else:
            inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self.num_thresholds = len(inner) + 2
        self.thresholds = [0.0 - EPSILON] + inner + [1.0 + EPSILON]
        self._init_thresholds = thresholds
        self.curve, self.summation_method = str(curve).upper(), str(summation_method).lower()
        self.from_logits = bool(from_logits)
        self.multi_label, self.num_labels = bool(multi_label), num_labels
        self.label_weights = None if label_weights is None else [float(v) for v in
                                                                   label_weights]
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if self.from_logits:
            y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
            y_pred = reference.sigmoid(y_pred, namespace(y_pred))
        # label_weights weight the flattened predictions; with multi_label, the label AUCs
        self._update(y_true, y_pred, sample_weight, multi_label=self.multi_label,
                     label_weights=None if self.multi_label else self.label_weights)

    def result(self):
        if self._counts is None:
            return 0.0
        tp, fp, tn, fn = (self._counts[k] for k in ("tp", "fp", "tn", "fn"))
        xp = namespace(tp)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._average(_interpolated_pr_auc(tp, fp, fn))
        recall = divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1, ...] + y[1:, ...]) / 2.0
        elif self.summation_method == "minoring":
            heights = xp.minimum(y[:-1, ...], y[1:, ...])
        else:
            heights = xp.maximum(y[:-1, ...], y[1:, ...])
        return self._average((x[:-1, ...] - x[1:, ...]) * heights)

    def _average(self, terms):
        """The sum of the Riemann terms over thresholds; with multi_label, the mean of the
        label AUCs (weighted by ``label_weights``)."""
        xp = namespace(terms)
        if not self.multi_label:
            return xp.sum(terms)
        by_label = xp.sum(terms, axis=0)
        if self.label_weights is None:
            return xp.mean(by_label)
        lw = xp.asarray(self.label_weights, dtype=terms.dtype, device=device_of(terms))
        return divide_no_nan(xp.sum(by_label * lw), xp.sum(lw))

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                "curve": self.curve, "summation_method": self.summation_method,
                "thresholds": self._init_thresholds, "from_logits": self.from_logits,
                "multi_label": self.multi_label, "num_labels": self.num_labels,
                "label_weights": self.label_weights}


def _interpolated_pr_auc(tp, fp, fn):
    """Davis & Goadrich's PR-AUC terms: TP and P = TP + FP vary linearly between thresholds,
    ``slope * (dTP + intercept * log(P_A / P_B)) / (TP_B + FN_B)`` per interval."""
    xp = namespace(tp)
    dtp = tp[:-1, ...] - tp[1:, ...]
    p = tp + fp
    prec_slope = divide_no_nan(dtp, xp.maximum(p[:-1, ...] - p[1:, ...], 0.0))
    intercept = tp[1:, ...] - prec_slope * p[1:, ...]
    both = (p[:-1, ...] > 0) & (p[1:, ...] > 0)
    ratio = xp.where(both, divide_no_nan(p[:-1, ...], xp.maximum(p[1:, ...], 0.0)), 1.0)
    return divide_no_nan(prec_slope * (dtp + intercept * xp.log(ratio)),
                         xp.maximum(tp[1:, ...] + fn[1:, ...], 0.0))



class _AtConstraint(_Counts):
    """Base of SensitivityAtSpecificity & co.: counts at ``num_thresholds`` thresholds
    ``0, 1/(n-1), ..., 1``, then the best ``dependent`` rate among the thresholds whose
    ``constrained`` rate reaches ``value`` (0 when none does)."""

    _ARG = "value"
    vector_valued = False  # one best rate over the thresholds

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        owner = type(self).__name__
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{owner}: argument `{self._ARG}` must be in the range [0, 1]. "
                             f"Received: {self._ARG}={value}")
        if num_thresholds <= 0:
            raise ValueError(f"{owner}: argument `num_thresholds` must be an integer > 0. "
                             f"Received: num_thresholds={num_thresholds}")
        self.value, self.num_thresholds, self.class_id = value, num_thresholds, class_id
        self.thresholds = [0.5] if num_thresholds == 1 else (
            [0.0] + [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)] + [1.0])
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._update(y_true, y_pred, sample_weight, class_id=self.class_id)

    def _rates(self):
        tp, fp, tn, fn = (self._counts[k] for k in ("tp", "fp", "tn", "fn"))
        return {"sensitivity": divide_no_nan(tp, tp + fn),
                "specificity": divide_no_nan(tn, tn + fp),
                "precision": divide_no_nan(tp, tp + fp)}

    def _best(self, constrained, dependent):
        if self._counts is None:
            return 0.0
        rates = self._rates()
        xp = namespace(rates[constrained])
        feasible = rates[constrained] >= self.value
        return xp.max(xp.where(feasible, rates[dependent], 0.0))

    def get_config(self):
        return {**super().get_config(), "num_thresholds": self.num_thresholds,
                self._ARG: self.value, "class_id": self.class_id}


class SensitivityAtSpecificity(_AtConstraint):
    """The best sensitivity (recall) where the specificity is at least ``specificity``."""

    _ARG = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("specificity", "sensitivity")


class SpecificityAtSensitivity(_AtConstraint):
    """The best specificity where the sensitivity (recall) is at least ``sensitivity``."""

    _ARG = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("sensitivity", "specificity")


class PrecisionAtRecall(_AtConstraint):
    """The best precision where the recall is at least ``recall``."""

    _ARG = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("sensitivity", "precision")


class RecallAtPrecision(_AtConstraint):
    """The best recall where the precision is at least ``precision``."""

    _ARG = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds, class_id, name, dtype)

    def result(self):
        return self._best("precision", "sensitivity")
