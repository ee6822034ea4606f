"""Issue 10, point 9: the stateful metrics against the figures Keras 3 prints in its
docstrings (keras/src/metrics/*.py) and against scikit-learn's exact formulas."""

import numpy as np
import pytest
from sklearn import metrics as skm

from xpnet import keras
from xpnet import metrics


def _run(backend, metric, y_true, y_pred, sample_weight=None, dtype=np.float32):
    xp = backend.xp
    true = np.asarray(y_true)
    t = backend.asarray(true) if true.dtype.kind in "iu" else backend.asarray(
        true.astype(dtype))
    p = backend.asarray(np.asarray(y_pred, dtype=dtype))
    w = None if sample_weight is None else backend.asarray(np.asarray(sample_weight, dtype))
    metric.update_state(t, p, sample_weight=w)
    r = metric.result()
    assert not hasattr(r, "dtype") or xp.isdtype(r.dtype, "real floating")
    return backend.to_numpy(r)


# (metric factory, y_true, y_pred, Keras's result, Keras's result with sample_weight=w, w)
KERAS_EXAMPLES = {
    "true_positives": (metrics.TruePositives, [0, 1, 1, 1], [1, 0, 1, 1], 2.0, 1.0,
                       [0, 0, 1, 0]),
    "false_positives": (metrics.FalsePositives, [0, 1, 0, 0], [0, 0, 1, 1], 2.0, 1.0,
                        [0, 0, 1, 0]),
    "true_negatives": (metrics.TrueNegatives, [0, 1, 0, 0], [1, 1, 0, 0], 2.0, 1.0,
                       [0, 0, 1, 0]),
    "false_negatives": (metrics.FalseNegatives, [0, 1, 1, 1], [0, 1, 0, 0], 2.0, 1.0,
                        [0, 0, 1, 0]),
    "precision": (metrics.Precision, [0, 1, 1, 1], [1, 0, 1, 1], 0.6666667, 1.0, [0, 0, 1, 0]),
    "recall": (metrics.Recall, [0, 1, 1, 1], [1, 0, 1, 1], 0.6666667, 1.0, [0, 0, 1, 0]),
    # threshold values [0 - 1e-7, 0.5, 1 + 1e-7]; tp = [2, 1, 0], fp = [2, 0, 0] ... = 0.75
    "auc": (lambda: metrics.AUC(num_thresholds=3), [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], 0.75,
            1.0, [1, 0, 0, 1]),
    "top_k": (lambda: metrics.TopKCategoricalAccuracy(k=1), [[0, 0, 1], [0, 1, 0]],
              [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], 0.5, 0.3, [0.7, 0.3]),
    "sparse_top_k": (lambda: metrics.SparseTopKCategoricalAccuracy(k=1), [2, 1],
                     [[0.1, 0.9, 0.8], [0.05, 0.95, 0]], 0.5, 0.3, [0.7, 0.3]),
    "rmse": (metrics.RootMeanSquaredError, [[0, 1], [0, 0]], [[1, 1], [0, 0]], 0.5,
             0.70710677, [1, 0]),
    "cosine": (metrics.CosineSimilarity, [[0.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0]],
               0.49999997, 0.7, [0.3, 0.7]),
    "logcosh": (metrics.LogCoshError, [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]],
                0.10844523, 0.21689045, [1, 0]),
    # cm = [[1, 1], [1, 1]]: (1 / (2 + 2 - 1) + 1 / (2 + 2 - 1)) / 2
    "mean_iou": (lambda: metrics.MeanIoU(num_classes=2), [0, 0, 1, 1], [0, 1, 0, 1],
                 0.33333334, 0.23809525, [0.3, 0.3, 0.3, 0.1]),
    "iou": (lambda: metrics.IoU(num_classes=2, target_class_ids=[0]), [0, 0, 1, 1],
            [0, 1, 0, 1], 0.33333334, 0.33333334, [0.3, 0.3, 0.3, 0.1]),
    # cm = [[0.2, 0.4], [0.3, 0.1]] weighted: iou = [0.222, 0.125]
    "binary_iou": (lambda: metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3),
                   [0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7], 0.33333334, 0.17361112,
                   [0.2, 0.3, 0.4, 0.1]),
    "sensitivity_at_specificity": (lambda: metrics.SensitivityAtSpecificity(0.5),
                                   [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], 0.5, 0.333333,
                                   [1, 1, 2, 2, 1]),
    "specificity_at_sensitivity": (lambda: metrics.SpecificityAtSensitivity(0.5),
                                   [0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8], 0.66666667, 0.5,
                                   [1, 1, 2, 2, 2]),
    "precision_at_recall": (lambda: metrics.PrecisionAtRecall(0.5), [0, 0, 0, 1, 1],
                            [0, 0.3, 0.8, 0.3, 0.8], 0.5, 0.33333333, [2, 2, 2, 1, 1]),
    "recall_at_precision": (lambda: metrics.RecallAtPrecision(0.8), [0, 0, 1, 1],
                            [0, 0.5, 0.3, 0.9], 0.5, 1.0, [1, 0, 0, 1]),
    "binary_crossentropy": (metrics.BinaryCrossentropy, [[0, 1], [0, 0]],
                            [[0.6, 0.4], [0.4, 0.6]], 0.81492424, 0.9162905, [1, 0]),
    "categorical_crossentropy": (metrics.CategoricalCrossentropy, [[0, 1, 0], [0, 0, 1]],
                                 [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], 1.1769392, 1.6271976,
                                 [0.3, 0.7]),
    "sparse_categorical_crossentropy": (metrics.SparseCategoricalCrossentropy, [1, 2],
                                        [[0.05, 0.95, 0], [0.1, 0.8, 0.1]], 1.1769392,
                                        1.6271976, [0.3, 0.7]),
    "hinge": (metrics.Hinge, [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], 1.3, 1.1, [1, 0]),
    "squared_hinge": (metrics.SquaredHinge, [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], 1.86,
                      1.46, [1, 0]),
    "categorical_hinge": (metrics.CategoricalHinge, [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]],
                          1.4000001, 1.2, [1, 0]),
    "kl_divergence": (metrics.KLDivergence, [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]],
                      0.45814306, 0.9162892, [1, 0]),
    "poisson": (metrics.Poisson, [[0, 1], [0, 0]], [[1, 1], [0, 0]], 0.49999997, 0.99999994,
                [1, 0]),
    "mape": (metrics.MeanAbsolutePercentageError, [[0, 1], [0, 0]], [[1, 1], [0, 0]],
             250000000.0, 500000000.0, [1, 0]),
    "msle": (metrics.MeanSquaredLogarithmicError, [[0, 1], [0, 0]], [[1, 1], [0, 0]],
             0.12011322, 0.24022643, [1, 0]),
}


@pytest.mark.parametrize("name", list(KERAS_EXAMPLES))
def test_keras_docstring_figures(backend, name):
    make, y_true, y_pred, want, want_weighted, w = KERAS_EXAMPLES[name]
    m = make()
    np.testing.assert_allclose(_run(backend, m, y_true, y_pred), want, rtol=1e-6)
    m.reset_state()
    # rtol 2e-6: Keras prints 6 significant digits in some examples (0.333333)
    np.testing.assert_allclose(_run(backend, m, y_true, y_pred, w), want_weighted, rtol=2e-6)


def test_precision_top_k_keras_figures(backend):
    # Keras: Precision(top_k=2) on [0, 0, 1, 1] / [1, 1, 1, 1] -> 0.0 (ties: first k); k=4: 0.5
    np.testing.assert_allclose(_run(backend, metrics.Precision(top_k=2), [[0, 0, 1, 1]],
                                    [[1, 1, 1, 1]]), 0.0)
    np.testing.assert_allclose(_run(backend, metrics.Precision(top_k=4), [[0, 0, 1, 1]],
                                    [[1, 1, 1, 1]]), 0.5)


def test_precision_recall_class_id_thresholds_against_sklearn(backend):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (40, 3))
    p = rng.uniform(0, 1, (40, 3))
    w = rng.uniform(0.2, 2, 40)
    for t in (0.3, 0.7):
        want_p = skm.precision_score(y[:, 1], p[:, 1] > t, sample_weight=w)
        want_r = skm.recall_score(y[:, 1], p[:, 1] > t, sample_weight=w)
        got_p = _run(backend, metrics.Precision(thresholds=[0.3, 0.7], class_id=1), y, p, w,
                     np.float64)
        got_r = _run(backend, metrics.Recall(thresholds=[0.3, 0.7], class_id=1), y, p, w,
                     np.float64)
        k = 0 if t == 0.3 else 1
        np.testing.assert_allclose([got_p[k], got_r[k]], [want_p, want_r], rtol=1e-12)


def test_recall_top_k_is_hit_rate_of_labels(backend):
    # Recall(top_k=1) of one-hot labels = how often the argmax is the label
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 4, 30)
    p = rng.uniform(0, 1, (30, 4))
    got = _run(backend, metrics.Recall(top_k=1), np.eye(4)[labels], p, dtype=np.float64)
    np.testing.assert_allclose(got, np.mean(p.argmax(1) == labels), rtol=1e-12)


def test_auc_pr_interpolation_keras_figure(backend):
    # keras/src/metrics/confusion_metrics_test.py: tp = [7, 4, 0], fp = [3, 0, 0] ...
    # auc = 2.416 / 7 + 4 / 7 (the two Davis-Goadrich increments over total positives)
    y, p, w = [0, 0, 1, 1], [0, 0.5, 0.3, 0.9], [1, 2, 3, 4]
    got = _run(backend, metrics.AUC(num_thresholds=3, curve="PR"), y, p, w)
    want = (0.5 * (3 + 2 * np.log(2.5))) / 7 + 4 / 7
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got, 2.416 / 7 + 4 / 7, atol=1e-3)
    # minoring / majoring: Keras's 0.7 * 0.429 + 0 * 0.571 and 1 * 0.429 + 1 * 0.571
    got = _run(backend, metrics.AUC(num_thresholds=3, curve="PR", summation_method="minoring"),
               y, p, w)
    np.testing.assert_allclose(got, 0.7 * 3 / 7, rtol=1e-6)
    got = _run(backend, metrics.AUC(num_thresholds=3, curve="PR", summation_method="majoring"),
               y, p, w)
    np.testing.assert_allclose(got, 1.0, rtol=1e-6)


# keras/src/metrics/confusion_metrics_test.py, MultiAUCTest: two labels, 5 thresholds
MULTI_PRED = np.array([[0, 0.5, 0.3, 0.9], [0.1, 0.2, 0.3, 0.4]]).T
MULTI_GOOD = np.array([[0, 0, 1, 1], [0, 0, 1, 1]]).T
MULTI_BAD = np.array([[0, 0, 1, 1], [1, 1, 0, 0]]).T


@pytest.mark.parametrize("case", [
    # (AUC kwargs, y_true, y_pred, sample_weight, Keras's expected result, its tolerance)
    (dict(multi_label=True), MULTI_GOOD, MULTI_GOOD, None, 1.0, 1e-6),
    (dict(multi_label=False), MULTI_GOOD, MULTI_GOOD, None, 1.0, 1e-6),
    (dict(num_thresholds=5, multi_label=True), MULTI_GOOD, MULTI_PRED, None,
     (0.875 + 1.0) / 2.0, 1e-3),
    (dict(num_thresholds=5, multi_label=True, from_logits=True), MULTI_GOOD,
     -np.log(1.0 / (MULTI_PRED + 1e-12) - 1.0), None, (0.875 + 1.0) / 2.0, 1e-3),
    (dict(num_thresholds=5), MULTI_GOOD, MULTI_PRED, [1, 2, 3, 4],
     1.0 - (0.3333 * (1.0 - 0.2857) / 2.0), 1e-3),
    (dict(num_thresholds=5), MULTI_GOOD, MULTI_PRED, np.arange(8).reshape(4, 2),
     1.0 - (0.3333 * (1.0 - 0.2727) / 2.0), 1e-3),
    (dict(num_thresholds=5, multi_label=True, label_weights=[0.75, 0.25]), MULTI_GOOD,
     MULTI_PRED, None, (0.875 * 0.75 + 1.0 * 0.25) / (0.75 + 0.25), 1e-3),
    (dict(num_thresholds=5, label_weights=[0.75, 0.25]), MULTI_GOOD, MULTI_PRED, None,
     1.0 - ((1.0 - 0.375) * 0.375 / 2.0), 1e-2),
    (dict(num_thresholds=5), MULTI_GOOD, MULTI_PRED, None, 1.0 - (3.0 / 32.0), 1e-3),
    (dict(num_thresholds=2, thresholds=[0.5], multi_label=True), MULTI_GOOD, MULTI_PRED, None,
     (0.75 + 0.5) / 2.0, 1e-3),
    # PR, multi-label, by Davis-Goadrich over tp = [[2, 2, 1, 1, 0], [2, 0, 0, 0, 0]],
    # fp = [[2, 1, 0, 0, 0], [2, 2, 0, 0, 0]]: label 1 = 0.5 (1 + 0.5 log 3) / 2 + 1 / 2,
    # label 2 = (2 - 2 log 2) / 2
    (dict(num_thresholds=5, curve="PR", multi_label=True), MULTI_BAD, MULTI_PRED, None,
     ((0.5 * (1 + 0.5 * np.log(3)) / 2 + 0.5) + (2 - 2 * np.log(2)) / 2) / 2, 1e-6),
], ids=lambda c: str(c[0]))
def test_auc_multi_label_keras_figures(backend, case):
    kwargs, y_true, y_pred, w, want, tol = case
    got = _run(backend, metrics.AUC(**kwargs), y_true, y_pred, w)
    np.testing.assert_allclose(got, want, atol=tol)


def test_auc_200_thresholds_near_sklearn_and_from_logits(backend):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    z = rng.standard_normal(500) + 1.2 * y
    p = 1 / (1 + np.exp(-z))
    roc = _run(backend, metrics.AUC(), y, p, dtype=np.float64)
    np.testing.assert_allclose(roc, skm.roc_auc_score(y, p), atol=2e-3)
    logits = _run(backend, metrics.AUC(from_logits=True), y, z, dtype=np.float64)
    np.testing.assert_allclose(logits, roc, rtol=1e-12)
    pr = _run(backend, metrics.AUC(curve="PR"), y, p, dtype=np.float64)
    np.testing.assert_allclose(pr, skm.average_precision_score(y, p), atol=1e-2)
    assert len(metrics.AUC().thresholds) == 200


def test_f_scores_keras_figures_and_sklearn(backend):
    y = np.array([[1, 1, 1], [1, 0, 0], [1, 1, 0]], np.int32)
    p = np.array([[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]], np.float32)
    # Keras docstrings: FBetaScore(beta=2, threshold=0.5) -> [0.3846154, 0.90909094, 0.8333334]
    # F1Score(threshold=0.5) -> [0.5, 0.8, 0.6666667]
    np.testing.assert_allclose(_run(backend, metrics.FBetaScore(beta=2.0, threshold=0.5), y, p),
                               [0.3846154, 0.90909094, 0.8333334], rtol=1e-6)
    np.testing.assert_allclose(_run(backend, metrics.F1Score(threshold=0.5), y, p),
                               [0.5, 0.8, 0.6666667], rtol=1e-6)
    for average in ("micro", "macro", "weighted"):
        got = _run(backend, metrics.F1Score(average=average, threshold=0.5), y, p,
                   dtype=np.float64)
        want = skm.f1_score(y, p > 0.5, average=average)
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # threshold=None: each row's maximum is its one positive class
    got = _run(backend, metrics.F1Score(average="macro"), y, p, dtype=np.float64)
    np.testing.assert_allclose(got, skm.f1_score(y, p == p.max(1, keepdims=True),
                                                 average="macro"), rtol=1e-6)


def test_r2_score_keras_figure_and_sklearn(backend):
    # Keras docstring: [[1], [4], [3]] vs [[2], [4], [4]] -> 0.57142854
    np.testing.assert_allclose(_run(backend, metrics.R2Score(), [[1.0], [4.0], [3.0]],
                                    [[2.0], [4.0], [4.0]]), 0.57142854, rtol=1e-6)
    rng = np.random.default_rng(3)
    y = rng.standard_normal((20, 3))
    p = y + 0.5 * rng.standard_normal((20, 3))
    w = rng.uniform(0.5, 2, 20)
    for agg, sk in (("uniform_average", "uniform_average"),
                    ("variance_weighted_average", "variance_weighted"), (None, "raw_values")):
        m = metrics.R2Score(class_aggregation=agg)
        m.update_state(backend.asarray(y[:8]), backend.asarray(p[:8]), backend.asarray(w[:8]))
        got = _run(backend, m, y[8:], p[8:], w[8:], np.float64)
        np.testing.assert_allclose(got, skm.r2_score(y, p, sample_weight=w, multioutput=sk),
                                   rtol=1e-10)
    got = _run(backend, metrics.R2Score(num_regressors=2), y, p, dtype=np.float64)
    r2 = skm.r2_score(y, p)
    np.testing.assert_allclose(got, 1 - (1 - r2) * 19 / 17, rtol=1e-10)


def test_mean_iou_ignore_class_and_dense_inputs(backend):
    # classes 0..2; label 2 ignored: cm over labels {0, 1} only
    t, p = [0, 1, 2, 1, 0, 2], [0, 1, 1, 0, 0, 2]
    got = _run(backend, metrics.MeanIoU(3, ignore_class=2), t, p)
    # cm rows = labels: [[2, 0, 0], [1, 1, 0], [0, 0, 0]]; IoU0 = 2/3, IoU1 = 1/2, class 2
    # has no row, no column: not counted
    np.testing.assert_allclose(got, (2 / 3 + 1 / 2) / 2, rtol=1e-6)
    dense = _run(backend, metrics.MeanIoU(2, sparse_y_true=False, sparse_y_pred=False),
                 np.eye(2)[[0, 0, 1, 1]], np.eye(2)[[0, 1, 0, 1]] * 0.9)
    np.testing.assert_allclose(dense, 1 / 3, rtol=1e-6)


def test_calling_a_metric_updates_it_and_returns_the_result():
    m = metrics.AUC(num_thresholds=3)
    assert float(m([0, 0, 1, 1], [0, 0.5, 0.3, 0.9])) == 0.75
    assert float(metrics.RootMeanSquaredError()([[0, 1], [0, 0]], [[1, 1], [0, 0]])) == 0.5


def test_one_hot_iou_and_correlations_keras_figures(backend):
    y_true = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 0]])
    y_pred = [[0.2, 0.3, 0.5], [0.1, 0.2, 0.7], [0.5, 0.3, 0.1], [0.1, 0.4, 0.5]]
    w = [0.1, 0.2, 0.3, 0.4]
    # Keras: mean_iou = (0 / (0.3 + 0.6 - 0) + 0.1 / (0.7 + 0.1 - 0.1)) / 2 -> 0.071;
    # over all three classes / 3 -> 0.048
    got = _run(backend, metrics.OneHotIoU(num_classes=3, target_class_ids=[0, 2]), y_true,
               y_pred, w)
    np.testing.assert_allclose(got, 0.1 / 0.7 / 2, rtol=1e-5)
    np.testing.assert_allclose(got, 0.071, atol=5e-4)
    got = _run(backend, metrics.OneHotMeanIoU(num_classes=3), y_true, y_pred, w)
    np.testing.assert_allclose(got, 0.048, atol=5e-4)
    # Keras: PearsonCorrelation 0.9966996338993913, ConcordanceCorrelation
    # 0.9816320385426076 (figures printed without the eps Keras's code adds: 5e-7 apart)
    t, p = [[0, 1, 0.5], [1, 1, 0.2]], [[0.1, 0.9, 0.5], [1, 0.9, 0.2]]
    np.testing.assert_allclose(_run(backend, metrics.PearsonCorrelation(), t, p,
                                    dtype=np.float64), 0.9966996338993913, rtol=1e-6)
    np.testing.assert_allclose(_run(backend, metrics.ConcordanceCorrelation(), t, p,
                                    dtype=np.float64), 0.9816320385426076, rtol=1e-6)


def test_sum_and_not_yet_metrics(backend):
    # Keras: Sum().update_state([1, 3, 5, 7]) -> 16.0
    m = metrics.Sum()
    m.update_state(backend.asarray(np.array([1.0, 3.0, 5.0, 7.0])))
    assert float(backend.to_numpy(m.result())) == 16.0
    m.update_state(backend.asarray(np.array([1.0, 2.0])), backend.asarray(np.array([3.0, 0.5])))
    assert float(backend.to_numpy(m.result())) == 20.0
    with pytest.raises(AttributeError, match="no attribute 'NoSuchMetric'"):
        getattr(keras.metrics, "NoSuchMetric")  # noqa: B009
    with pytest.raises(ValueError, match="needs recall"):
        metrics.get("precision_at_recall")


def test_every_new_metric_round_trips_its_config():
    made = [metrics.AUC(curve="PR", thresholds=[0.2, 0.6], from_logits=True),
            metrics.AUC(multi_label=True, label_weights=[1.0, 2.0]),
            metrics.Precision(top_k=2, class_id=1), metrics.Recall(thresholds=[0.3, 0.7]),
            metrics.TruePositives(0.3), metrics.FalseNegatives(), metrics.TrueNegatives(),
            metrics.FalsePositives(), metrics.SensitivityAtSpecificity(0.4, num_thresholds=10),
            metrics.SpecificityAtSensitivity(0.4), metrics.PrecisionAtRecall(0.3, class_id=2),
            metrics.RecallAtPrecision(0.9), metrics.TopKCategoricalAccuracy(3),
            metrics.SparseTopKCategoricalAccuracy(2, from_sorted_ids=True),
            metrics.F1Score("weighted", 0.4), metrics.FBetaScore("micro", 2.0),
            metrics.IoU(3, [0, 2], ignore_class=1), metrics.BinaryIoU([1], 0.3),
            metrics.MeanIoU(4, sparse_y_pred=False), metrics.OneHotIoU(3, [1]),
            metrics.OneHotMeanIoU(3), metrics.R2Score("variance_weighted_average", 2),
            metrics.RootMeanSquaredError(), metrics.CosineSimilarity(axis=0),
            metrics.LogCoshError(), metrics.BinaryCrossentropy(from_logits=True),
            metrics.SparseCategoricalCrossentropy(), metrics.KLDivergence(), metrics.Sum(),
            metrics.PearsonCorrelation(), metrics.ConcordanceCorrelation()]
    for m in made:
        again = type(m).from_config(m.get_config())
        assert again.get_config() == m.get_config(), type(m).__name__


def test_vector_valued_metrics_accepted_by_compile():
    # Keras 3 logs per-class arrays; xpnet's logs now do too (tests/test_trainer_keras.py)
    for m in ("f1_score", metrics.Precision(thresholds=[0.3, 0.7]),
              metrics.R2Score(class_aggregation=None)):
        assert metrics.get(m, None, (None, 3)).vector_valued
    assert metrics.get("f1_score").average is None  # standalone: Keras's default
    assert metrics.get(metrics.F1Score(average="macro"), None, (None, 3)).name == "f1_score"
    assert metrics.get("auc", None, (None, 1)).name == "auc"


def test_result_before_update_and_state_accumulates(backend):
    for m in (metrics.AUC(), metrics.Precision(), metrics.F1Score(), metrics.R2Score(),
              metrics.MeanIoU(2)):
        assert float(np.asarray(m.result())) == 0.0
    m = metrics.AUC(num_thresholds=3)
    _run(backend, m, [0, 0], [0, 0.5])
    np.testing.assert_allclose(_run(backend, m, [1, 1], [0.3, 0.9]), 0.75)


def test_strings_configs_and_errors():
    for name, cls in [("auc", metrics.AUC), ("AUC", metrics.AUC),
                      ("precision", metrics.Precision), ("recall", metrics.Recall),
                      ("true_positives", metrics.TruePositives),
                      ("false_negatives", metrics.FalseNegatives),
                      ("top_k_categorical_accuracy", metrics.TopKCategoricalAccuracy),
                      ("sparse_top_k_categorical_accuracy",
                       metrics.SparseTopKCategoricalAccuracy),
                      ("root_mean_squared_error", metrics.RootMeanSquaredError),
                      ("f1_score", metrics.F1Score), ("r2_score", metrics.R2Score),
                      ("cosine_similarity", metrics.CosineSimilarity),
                      ("logcosh", metrics.LogCoshError),
                      ("binary_crossentropy", metrics.BinaryCrossentropy),
                      ("kld", metrics.KLDivergence), ("msle", metrics.MeanSquaredLogarithmicError),
                      ("mape", metrics.MeanAbsolutePercentageError), ("sum", metrics.Sum)]:
        m = metrics.get(name)
        assert type(m) is cls, name
        assert keras.metrics.get(name).name == m.name
    assert metrics.get("AUC").name == "auc"
    assert metrics.TopKCategoricalAccuracy().get_config()["k"] == 5
    cfg = metrics.AUC(curve="PR", from_logits=True).get_config()
    assert cfg["curve"] == "PR" and cfg["from_logits"] and cfg["num_thresholds"] == 200
    assert metrics.FBetaScore(average="macro", beta=2.0).get_config()["beta"] == 2.0
    with pytest.raises(ValueError, match="num_thresholds"):
        metrics.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        metrics.AUC(curve="ROCK")
    with pytest.raises(ValueError, match="average"):
        metrics.F1Score(average="mean")
    with pytest.raises(ValueError, match="num_classes"):
        metrics.get("mean_io_u")
    with pytest.raises(ValueError, match="num_labels"):
        metrics.AUC(num_labels=3)
    with pytest.raises(ValueError, match="rank 2"):
        metrics.AUC(multi_label=True).update_state(np.zeros((2, 2, 2)), np.zeros((2, 2, 2)))


def test_compile_with_metric_strings(cpu_backend_model):
    model, x, y = cpu_backend_model
    model.compile(optimizer="adam", loss="binary_crossentropy",
                  metrics=["auc", "precision", "recall", "true_positives"])
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    p = np.asarray(model.predict(x, verbose=0)).reshape(-1)
    y = y.reshape(-1)
    assert set(logs) >= {"auc", "precision", "recall", "true_positives"}
    # the metrics accumulated over batches equal the same metric on all predictions at once
    auc = metrics.AUC()
    auc.update_state(y, p)
    np.testing.assert_allclose(logs["auc"], float(auc.result()), rtol=1e-5)
    np.testing.assert_allclose(logs["auc"], skm.roc_auc_score(y, p), atol=5e-3)
    np.testing.assert_allclose(logs["precision"], skm.precision_score(y, p > 0.5), rtol=1e-5)
    np.testing.assert_allclose(logs["recall"], skm.recall_score(y, p > 0.5), rtol=1e-5)
    np.testing.assert_allclose(logs["true_positives"], np.sum((p > 0.5) & (y == 1)))


@pytest.fixture
def cpu_backend_model():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 4)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.standard_normal(100) > 0).astype(np.float32)[:, None]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    return model, x, y.reshape(-1, 1)
