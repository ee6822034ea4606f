"""Metrics: running means and counts accumulated on the device, read back only when reported.

This module holds the base class and the mean-based metrics; :mod:`xpnet.metrics.confusion`
(thresholded counts, Precision, Recall, AUC) and :mod:`xpnet.metrics.scores` (top-k, F-scores,
IoU, R^2, RMSE, cosine similarity, log-cosh) hold the rest. Every ``update_state`` stays on
the device: no ``float()``, no ``.item()``, no data-dependent shape.
"""

import re

from xpnet.backend import backend_of
from xpnet.backend import get_backend
from xpnet.backend import namespace

__all__ = [
    "Metric", "Mean", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy",
    "CategoricalAccuracy", "SparseCategoricalAccuracy", "MeanSquaredError",
    "MeanAbsoluteError", "accuracy", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "mean_squared_error", "mean_absolute_error", "get",
]



from xpnet.engine.tape import Traced  # noqa: E402
from xpnet.engine.tape import unwrap  # noqa: E402
from xpnet.engine.variables import Variable  # noqa: E402

_WRAPPERS = (Traced, Variable)

class Metric:
    """Base class: ``update_state``, ``result`` (a 0-d array, no host sync), ``reset_state``."""

    #: True when the metric gives the same result on the logits of a softmax output.
    argmax_based = False
    #: True when ``result()`` holds several values (per class, per threshold).
    vector_valued = False

    def __init_subclass__(cls, **kwargs):
        """Metrics read plain arrays: traced values (a custom ``train_step``'s
        predictions) are unwrapped on the way in."""
        super().__init_subclass__(**kwargs)
        update = cls.__dict__.get("update_state")
        if update is not None and not getattr(update, "_unwraps", False):
            def update_state(self, *args, _update=update, **kw):
                for a in args:
                    if type(a) in _WRAPPERS:  # a traced value or a Variable: unwrap all
                        return _update(self, *[unwrap(v) for v in args],
                                       **{k: unwrap(v) for k, v in kw.items()})
                return _update(self, *args, **kw)
            update_state._unwraps = True
            update_state.__doc__ = update.__doc__
            cls.update_state = update_state

    def __init__(self, name=None, dtype=None):
        self.name = name or snake_case(type(self).__name__)
        self.dtype = dtype
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        """``update_state(...)``, then ``result()``, as calling a Keras metric does."""
        self.update_state(*args, **kwargs)
        return self.result()

    def result(self):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def snake_case(name):
    """Keras's default metric name for a class name: ``"MeanIoU"`` -> ``"mean_io_u"``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def as_arrays(y_true, y_pred, sample_weight=None):
    """``(y_true, y_pred, sample_weight)`` as arrays on ``y_pred``'s backend, ``y_pred`` in a
    floating dtype (float32 unless it already floats). Lists and host arrays, as Keras's
    examples pass them, are converted; arrays already there pass through untouched."""
    try:
        backend = backend_of(y_pred)
    except TypeError:
        backend = get_backend("cpu")
        y_pred = backend.asarray(y_pred)
    xp = backend.xp
    if not xp.isdtype(y_pred.dtype, "real floating"):
        y_pred = xp.astype(y_pred, xp.float32)

    def move(a):
        if a is None:
            return None
        try:
            if namespace(a) is xp:
                return a
        except TypeError:
            pass
        return backend.asarray(a)

    return move(y_true), y_pred, move(sample_weight)


class Mean(Metric):
    """The (weighted) mean of the values passed to ``update_state(values, sample_weight)``."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        xp = namespace(values)
        if sample_weight is None:
            self.total = self.total + xp.sum(values)
            self.count = self.count + _size(values.shape)
            return
        w = xp.astype(sample_weight, values.dtype)
        if w.ndim < values.ndim:
            w = xp.reshape(w, tuple(w.shape) + (1,) * (values.ndim - w.ndim))
        w = xp.broadcast_to(w, values.shape)
        self.total = self.total + xp.sum(values * w)
        self.count = self.count + xp.sum(w)

    def update_mean(self, mean, n):
        """Add ``n`` values whose mean is ``mean`` (a batch loss)."""
        self.total = self.total + mean * n
        self.count = self.count + n

    def result(self):
        return self.total / self.count if not _is_zero(self.count) else self.total * 0.0


def _is_zero(c):
    return isinstance(c, (int, float)) and c == 0


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class MeanMetricWrapper(Mean):
    """The mean of ``fn(y_true, y_pred)`` over all samples seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self.fn, self.fn_kwargs = fn, kwargs
        super().__init__(name=name or fn.__name__, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self.fn(y_true, y_pred, **self.fn_kwargs), sample_weight)

    def get_config(self):
        return {**super().get_config(), **self.fn_kwargs}


def accuracy(y_true, y_pred):
    """1.0 where ``y_pred == y_true``, else 0.0."""
    xp = namespace(y_pred)
    return xp.astype(y_true == y_pred, y_pred.dtype)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Mean over the last axis of ``(y_pred > threshold) == y_true``."""
    xp = namespace(y_pred)
    hit = xp.astype(y_pred > threshold, y_pred.dtype) == xp.astype(y_true, y_pred.dtype)
    return xp.mean(xp.astype(hit, y_pred.dtype), axis=-1)


def categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred) == argmax(y_true)`` over the last axis."""
    xp = namespace(y_pred)
    return xp.astype(xp.argmax(y_true, axis=-1) == xp.argmax(y_pred, axis=-1), y_pred.dtype)


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where ``argmax(y_pred)`` equals the integer label."""
    xp = namespace(y_pred)
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = xp.reshape(y_true, tuple(y_true.shape[:-1]))
    pred = xp.argmax(y_pred, axis=-1)
    return xp.astype(xp.astype(y_true, pred.dtype) == pred, y_pred.dtype)


def mean_squared_error(y_true, y_pred):
    d = y_pred - xp_like(y_true, y_pred)
    return namespace(y_pred).mean(d * d, axis=-1)


def mean_absolute_error(y_true, y_pred):
    xp = namespace(y_pred)
    return xp.mean(xp.abs(y_pred - xp_like(y_true, y_pred)), axis=-1)


def xp_like(y_true, y_pred):
    xp = namespace(y_pred)
    return y_true if y_true.dtype == y_pred.dtype else xp.astype(y_true, y_pred.dtype)


def _wrapper(fn, default_name, argmax=False, doc=""):
    def __init__(self, name=default_name, dtype=None, **kwargs):
        MeanMetricWrapper.__init__(self, fn, name=name, dtype=dtype, **kwargs)

    cls_name = "".join(p.capitalize() for p in default_name.split("_"))
    return type(cls_name, (MeanMetricWrapper,), {"__init__": __init__, "argmax_based": argmax,
                                                 "__doc__": doc})


Accuracy = _wrapper(accuracy, "accuracy", doc="How often predictions equal labels.")
BinaryAccuracy = _wrapper(binary_accuracy, "binary_accuracy",
                          doc="How often thresholded predictions match binary labels.")
CategoricalAccuracy = _wrapper(categorical_accuracy, "categorical_accuracy", argmax=True,
                               doc="How often the argmax matches one-hot labels.")
SparseCategoricalAccuracy = _wrapper(sparse_categorical_accuracy,
                                     "sparse_categorical_accuracy", argmax=True,
                                     doc="How often the argmax matches integer labels.")
MeanSquaredError = _wrapper(mean_squared_error, "mean_squared_error",
                            doc="Mean of the squared error.")
MeanAbsoluteError = _wrapper(mean_absolute_error, "mean_absolute_error",
                             doc="Mean of the absolute error.")

_BY_NAME = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
}
_FUNCTIONS = {f.__name__: f for f in (binary_accuracy, categorical_accuracy,
                                      sparse_categorical_accuracy, mean_squared_error,
                                      mean_absolute_error)}
_CLASSES = {c.__name__: c for c in (Accuracy, BinaryAccuracy, CategoricalAccuracy,
                                    SparseCategoricalAccuracy, MeanSquaredError,
                                    MeanAbsoluteError)}


def get(identifier, loss=None, output_shape=None):
    """A Metric from a name, class, instance or function.

    ``"accuracy"`` / ``"acc"`` resolve as Keras resolves them: binary accuracy for a one-unit
    output, sparse categorical accuracy for integer labels (a sparse loss), else categorical.
    A per-class or per-threshold metric (``F1Score()``, ``Precision(thresholds=[...])``)
    is logged by ``fit``/``evaluate`` as a NumPy array, as Keras 3 logs it.
    """
    return _resolve(identifier, loss, output_shape)


def _resolve(identifier, loss, output_shape):
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if callable(identifier) and _FUNCTIONS.get(getattr(identifier, "__name__", None)) \
            is identifier:
        return _BY_NAME[identifier.__name__]()
    if callable(identifier) and not isinstance(identifier, str):
        return MeanMetricWrapper(identifier)  # fn(y_true, y_pred) written with keras.ops
    if not isinstance(identifier, str):
        raise ValueError(f"unknown metric {identifier!r}")
    if identifier in ("accuracy", "acc"):
        if output_shape is not None and output_shape[-1] == 1:
            return BinaryAccuracy(name=identifier)
        if loss is not None and getattr(loss, "sparse_labels", False):
            return SparseCategoricalAccuracy(name=identifier)
        return CategoricalAccuracy(name=identifier)
    cls = _BY_NAME.get(identifier) or _CLASSES.get(identifier)
    if cls is None:
        known = sorted(set(_BY_NAME) | {"accuracy", "acc"})
        raise ValueError(f"unknown metric {identifier!r}; known: {', '.join(known)}")
    if cls in _NEEDS:
        raise ValueError(f"metric {identifier!r} needs {_NEEDS[cls]}: pass "
                         f"{cls.__name__}({_NEEDS[cls]}=...) to compile")
    # Keras names a metric given by a class name after the class ("AUC" -> "auc").
    return cls() if cls in _NEW_CLASSES else cls(name=identifier)


# The metrics of the other modules (imported last: they build on the classes above).
from xpnet.metrics.confusion import *  # noqa: E402,F401,F403
from xpnet.metrics.confusion import __all__ as _confusion_all  # noqa: E402
from xpnet.metrics.iou import *  # noqa: E402,F401,F403
from xpnet.metrics.iou import __all__ as _iou_all  # noqa: E402
from xpnet.metrics.scores import *  # noqa: E402,F401,F403
from xpnet.metrics.scores import __all__ as _scores_all  # noqa: E402
from xpnet.metrics.wrappers import *  # noqa: E402,F401,F403
from xpnet.metrics.wrappers import __all__ as _wrappers_all  # noqa: E402

__all__ += _confusion_all + _scores_all + _iou_all + _wrappers_all
_NEW_CLASSES = [globals()[n] for n in _confusion_all + _scores_all + _iou_all + _wrappers_all
                if n[0].isupper()]
# Strings compile(metrics=[...]) accepts, as Keras: class names and their snake case, and
# the function names (which Keras wraps in a mean).
_CLASSES.update({c.__name__: c for c in _NEW_CLASSES})
_BY_NAME.update({snake_case(c.__name__): c for c in _NEW_CLASSES})
_BY_NAME.update({"logcosh": LogCoshError, "log_cosh": LogCoshError,  # noqa: F405
                 "fbeta_score": FBetaScore, "kld": KLDivergence,  # noqa: F405
                 "mape": MeanAbsolutePercentageError,  # noqa: F405
                 "msle": MeanSquaredLogarithmicError})  # noqa: F405
# Classes whose constructor needs an argument a string cannot give.
_NEEDS = {MeanIoU: "num_classes", IoU: "num_classes",  # noqa: F405
          OneHotIoU: "num_classes", OneHotMeanIoU: "num_classes",  # noqa: F405
          SensitivityAtSpecificity: "specificity",  # noqa: F405
          SpecificityAtSensitivity: "sensitivity", PrecisionAtRecall: "recall",  # noqa: F405
          RecallAtPrecision: "precision"}  # noqa: F405
_FUNCTIONS.update({f.__name__: f for f in (
    top_k_categorical_accuracy, sparse_top_k_categorical_accuracy,  # noqa: F405
    cosine_similarity, pearson_correlation, concordance_correlation)})  # noqa: F405
_BY_NAME.update({"cosine_similarity": CosineSimilarity})  # noqa: F405

