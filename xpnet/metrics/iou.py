"""Intersection-over-union metrics, as Keras 3 (``keras/src/metrics/iou_metrics.py``): a
weighted confusion matrix ``cm`` (rows: labels, columns: predictions) accumulated on the
device, then ``IoU_c = cm[c, c] / (row_c + col_c - cm[c, c])`` averaged over the target
classes whose denominator is not 0."""

from array_api_compat import device as device_of

from xpnet.metrics import Metric
from xpnet.metrics import as_arrays
from xpnet.metrics import namespace

__all__ = ["IoU", "BinaryIoU", "MeanIoU", "OneHotIoU", "OneHotMeanIoU"]

EPSILON = 1e-7  # keras.backend.epsilon()


class IoU(Metric):
    """The mean IoU over ``target_class_ids`` (one id: that class's IoU).

    Parameters
    ----------
    num_classes : int
    target_class_ids : list of int
    ignore_class : int, default=None
        Elements with this label are left out.
    sparse_y_true, sparse_y_pred : bool, default=True
        Whether labels / predictions are class ids; otherwise the argmax over ``axis``.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None,
                 ignore_class=None, sparse_y_true=True, sparse_y_pred=True, axis=-1):
        owner = type(self).__name__
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"{owner}: num_classes must be a positive int. Received: "
                             f"num_classes={num_classes!r}")
        if max(target_class_ids) >= num_classes:
            raise ValueError(f"{owner}: target class id {max(target_class_ids)} is out of "
                             f"range, which is [0, {num_classes}).")
        self.num_classes, self.target_class_ids = num_classes, list(target_class_ids)
        self.ignore_class, self.axis = ignore_class, axis
        self.sparse_y_true, self.sparse_y_pred = sparse_y_true, sparse_y_pred
        self.argmax_based = not sparse_y_pred
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.total_cm = None

    def _labels(self, y_true, y_pred):
        """Integer labels and predictions (argmax of dense ones)."""
        xp = namespace(y_pred)
        if not self.sparse_y_true:
            y_true = xp.argmax(y_true, axis=self.axis)
        if not self.sparse_y_pred:
            y_pred = xp.argmax(y_pred, axis=self.axis)
        return y_true, y_pred

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        dtype = xp.float64 if y_pred.dtype == xp.float64 else xp.float32
        y_true, y_pred = self._labels(y_true, y_pred)
        t = xp.reshape(xp.astype(y_true, xp.int64), (-1,))
        p = xp.reshape(xp.astype(y_pred, xp.int64), (-1,))
        w = xp.ones(t.shape, dtype=dtype, device=device_of(t)) if sample_weight is None \
            else xp.reshape(xp.broadcast_to(xp.astype(sample_weight, dtype),
                                            tuple(y_true.shape)), (-1,))
        if self.ignore_class is not None:
            w = xp.where(t == self.ignore_class, 0.0, w)
        classes = xp.arange(self.num_classes, dtype=xp.int64, device=device_of(t))
        true_hot = xp.astype(t[:, None] == classes, dtype) * w[:, None]
        cm = true_hot.mT @ xp.astype(p[:, None] == classes, dtype)
        self.total_cm = cm if self.total_cm is None else self.total_cm + cm

    def result(self):
        if self.total_cm is None:
            return 0.0
        xp = namespace(self.total_cm)
        cm = self.total_cm
        eye = xp.eye(self.num_classes, dtype=cm.dtype, device=device_of(cm))
        tp = xp.sum(cm * eye, axis=0)
        denominator = xp.sum(cm, axis=0) + xp.sum(cm, axis=1) - tp
        ids = xp.asarray(self.target_class_ids, dtype=xp.int64, device=device_of(cm))
        tp, denominator = xp.take(tp, ids), xp.take(denominator, ids)
        valid = xp.sum(xp.astype(denominator > 1e-9, cm.dtype))
        return xp.sum(tp / (denominator + EPSILON)) / (valid + EPSILON)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1 after ``y_pred >= threshold`` makes predictions class 1."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        self.threshold = threshold
        super().__init__(2, target_class_ids, name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        xp = namespace(y_pred)
        super().update_state(y_true, xp.astype(y_pred >= self.threshold, y_pred.dtype),
                             sample_weight)

    def get_config(self):
        return {"name": self.name, "target_class_ids": self.target_class_ids,
                "threshold": self.threshold}


class MeanIoU(IoU):
    """The mean IoU over all ``num_classes`` classes (those that occur)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"MeanIoU: num_classes must be a positive int. Received: "
                             f"num_classes={num_classes!r}")
        super().__init__(num_classes, list(range(num_classes)), name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["target_class_ids"]
        return config


class OneHotIoU(IoU):
    """:class:`IoU` for one-hot labels (and, by default, dense predictions)."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None,
                 ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config


class OneHotMeanIoU(MeanIoU):
    """:class:`MeanIoU` for one-hot labels (and, by default, dense predictions)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        config = super().get_config()
        del config["sparse_y_true"]
        return config
