"""Metrics that are the running mean of a per-sample function: the losses (cross-entropies,
hinges, KL divergence, Poisson, MAPE, MSLE) and the correlations; and ``Sum``. As Keras 3
(``keras/src/metrics/probabilistic_metrics.py``, ``hinge_metrics.py``,
``regression_metrics.py``, ``correlation_metrics.py``, ``reduction_metrics.py``)."""

from xpnet import losses
from xpnet.metrics import Mean
from xpnet.metrics import MeanMetricWrapper
from xpnet.metrics import Metric
from xpnet.metrics import as_arrays
from xpnet.metrics import namespace

__all__ = ["BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
           "Hinge", "SquaredHinge", "CategoricalHinge", "KLDivergence", "Poisson",
           "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "Sum",
           "PearsonCorrelation", "ConcordanceCorrelation", "pearson_correlation",
           "concordance_correlation"]

EPSILON = 1e-7  # keras.backend.epsilon()


class _LossMean(MeanMetricWrapper):
    """The (weighted) mean of a loss function's per-sample values over all batches."""

    _fn = None
    _default_name = None

    def __init__(self, name=None, dtype=None, axis=-1, **kwargs):
        if axis != -1:
            raise NotImplementedError(f"{type(self).__name__}: only axis=-1 is supported. "
                                      f"Received: axis={axis!r}")
        super().__init__(self._fn, name=name or self._default_name, dtype=dtype, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        super().update_state(y_true, y_pred, sample_weight)


def _loss_mean(name, fn, doc, defaults=None):
    """A metric class over the loss function ``fn`` with keyword ``defaults``."""
    defaults = defaults or {}

    def __init__(self, name=fn.__name__, dtype=None, **kwargs):
        _LossMean.__init__(self, name=name, dtype=dtype, **{**defaults, **kwargs})

    return type(name, (_LossMean,), {"_fn": staticmethod(fn), "__init__": __init__,
                                     "__doc__": doc, "_default_name": fn.__name__})


BinaryCrossentropy = _loss_mean(
    "BinaryCrossentropy", losses.binary_crossentropy,
    "Mean binary cross-entropy (``from_logits``, ``label_smoothing`` as the loss).",
    {"from_logits": False, "label_smoothing": 0.0})
CategoricalCrossentropy = _loss_mean(
    "CategoricalCrossentropy", losses.categorical_crossentropy,
    "Mean categorical cross-entropy against one-hot labels.",
    {"from_logits": False, "label_smoothing": 0.0})
SparseCategoricalCrossentropy = _loss_mean(
    "SparseCategoricalCrossentropy", losses.sparse_categorical_crossentropy,
    "Mean categorical cross-entropy against integer labels.", {"from_logits": False})
Hinge = _loss_mean("Hinge", losses.hinge, "Mean hinge loss (0/1 labels mapped to -1/1).")
SquaredHinge = _loss_mean("SquaredHinge", losses.squared_hinge, "Mean squared hinge loss.")
CategoricalHinge = _loss_mean("CategoricalHinge", losses.categorical_hinge,
                              "Mean categorical hinge loss.")
KLDivergence = _loss_mean("KLDivergence", losses.kl_divergence,
                          "Mean Kullback-Leibler divergence.")
Poisson = _loss_mean("Poisson", losses.poisson, "Mean Poisson loss.")
MeanAbsolutePercentageError = _loss_mean(
    "MeanAbsolutePercentageError", losses.mean_absolute_percentage_error,
    "Mean absolute percentage error.")
MeanSquaredLogarithmicError = _loss_mean(
    "MeanSquaredLogarithmicError", losses.mean_squared_logarithmic_error,
    "Mean squared logarithmic error.")


class Sum(Metric):
    """The (weighted) sum of the values passed to ``update_state(values, sample_weight)``."""

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        _, values, sample_weight = as_arrays(None, values, sample_weight)
        xp = namespace(values)
        if sample_weight is not None:
            count = Mean()
            count.update_state(values, sample_weight)
            self.total = self.total + count.total
            return
        self.total = self.total + xp.sum(values)

    def result(self):
        return self.total


def pearson_correlation(y_true, y_pred, axis=-1):
    """``mean(z(y_true) * z(y_pred))`` along ``axis``, ``z(x) = (x - mean) / (std + eps)``
    (population standard deviation)."""
    xp = namespace(y_pred)
    t = y_true - xp.mean(y_true, axis=axis, keepdims=True)
    p = y_pred - xp.mean(y_pred, axis=axis, keepdims=True)
    t = t / (xp.std(t, axis=axis, keepdims=True) + EPSILON)
    p = p / (xp.std(p, axis=axis, keepdims=True) + EPSILON)
    return xp.mean(t * p, axis=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Keras 3's concordance coefficient along ``axis``, its code's formula exactly:
    ``mean(2 (t - mean(p)) (p - mean(p)) / (var(t) + var(p) + (mean(t) - mean(p))^2 + eps))``.
    """
    xp = namespace(y_pred)
    t_mean = xp.mean(y_true, axis=axis, keepdims=True)
    p_mean = xp.mean(y_pred, axis=axis, keepdims=True)
    norm = xp.var(y_true, axis=axis, keepdims=True) + xp.var(y_pred, axis=axis, keepdims=True) \
        + (t_mean - p_mean) ** 2
    return xp.mean(2.0 * (y_true - p_mean) * (y_pred - p_mean) / (norm + EPSILON), axis=axis)


class _Correlation(_LossMean):
    def __init__(self, name=None, dtype=None, axis=-1):
        MeanMetricWrapper.__init__(self, self._fn, name=name or self._default_name,
                                   dtype=dtype, axis=axis)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred, sample_weight = as_arrays(y_true, y_pred, sample_weight)
        y_true = namespace(y_pred).astype(y_true, y_pred.dtype)
        MeanMetricWrapper.update_state(self, y_true, y_pred, sample_weight)


class PearsonCorrelation(_Correlation):
    """Mean over samples of the Pearson correlation along ``axis`` (-1)."""

    _fn = staticmethod(pearson_correlation)
    _default_name = "pearson_correlation"


class ConcordanceCorrelation(_Correlation):
    """Mean over samples of Keras's concordance correlation along ``axis`` (-1)."""

    _fn = staticmethod(concordance_correlation)
    _default_name = "concordance_correlation"
