"""Issue 10, point 11 (losses): Keras 3's docstring figures, then each loss through the
float64 finite-difference harness (value, gradient, sample weights, reductions)."""

import numpy as np
import pytest
from harness import check_loss

from xpnet import losses

rng = np.random.default_rng(7)


def _probs(shape):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(-1, keepdims=True)


def _value(loss, y_true, y_pred, sample_weight=None):
    sw = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    return np.asarray(loss(np.asarray(y_true, dtype=np.float64),
                           np.asarray(y_pred, dtype=np.float64), sample_weight=sw))


FOCAL_TRUE, FOCAL_PRED = [[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]]
DICE_TRUE = [[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]]
DICE_PRED = [[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]]


def test_keras_docstring_figures():
    """The figures printed in keras/src/losses/losses.py's examples."""
    bfc = losses.BinaryFocalCrossentropy
    assert _value(bfc(gamma=2, from_logits=True), [0, 1, 0, 0],
                  [-18.6, 0.51, 2.94, -12.8]) == pytest.approx(0.691, abs=5e-4)
    assert _value(bfc(apply_class_balancing=True, gamma=2, from_logits=True), [0, 1, 0, 0],
                  [-18.6, 0.51, 2.94, -12.8]) == pytest.approx(0.51, abs=5e-3)
    cases = [(dict(gamma=3), None, 0.647), (dict(gamma=3, apply_class_balancing=True), None,
                                            0.482),
             (dict(gamma=3), [0.8, 0.2], 0.133),
             (dict(gamma=3, apply_class_balancing=True), [0.8, 0.2], 0.097),
             (dict(gamma=4, reduction="sum"), None, 1.222),
             (dict(gamma=4, apply_class_balancing=True, reduction="sum"), None, 0.914)]
    for kwargs, sw, want in cases:
        got = _value(bfc(from_logits=True, **kwargs), FOCAL_TRUE, FOCAL_PRED, sw)
        assert got == pytest.approx(want, abs=5e-4), kwargs
    np.testing.assert_allclose(_value(bfc(gamma=5, from_logits=True, reduction=None),
                                      FOCAL_TRUE, FOCAL_PRED), [0.0017, 1.1561], atol=5e-5)
    # printed to 4 places
    np.testing.assert_allclose(_value(bfc(gamma=5, from_logits=True, reduction=None,
                                          apply_class_balancing=True),
                                      FOCAL_TRUE, FOCAL_PRED), [0.0004, 0.8670], atol=1e-4)
    t, p = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
    cfc = losses.CategoricalFocalCrossentropy
    assert _value(cfc(), t, p) == pytest.approx(0.23315276, rel=1e-6)
    assert _value(cfc(), t, p, [0.3, 0.7]) == pytest.approx(0.1632, abs=5e-5)
    assert _value(cfc(reduction="sum"), t, p) == pytest.approx(0.46631, abs=5e-6)
    np.testing.assert_allclose(_value(cfc(reduction=None), t, p), [3.2058331e-05, 4.6627346e-01],
                               rtol=1e-6)
    # Dice: [0.5, 0.75757575] per sample over axes (1, 2, 3); 0.6164384 over everything
    np.testing.assert_allclose(_value(losses.Dice(axis=(1, 2, 3), reduction=None), DICE_TRUE,
                                      DICE_PRED), [0.5, 0.75757575], rtol=1e-6)
    assert _value(losses.Dice(), DICE_TRUE, DICE_PRED) == pytest.approx(0.6164384, rel=1e-6)
    # Tversky with alpha = beta = 0.5 is the Dice loss (Keras's docstring)
    assert _value(losses.Tversky(), DICE_TRUE, DICE_PRED) == pytest.approx(0.6164384, rel=1e-6)
    # cosine_similarity: [-0., -0.99999994, 0.99999994]
    np.testing.assert_allclose(losses.cosine_similarity(
        np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]]),
        np.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])), [0.0, -1.0, 1.0], atol=1e-7)


def test_formulas_by_hand():
    t, p = np.array([[1.0, 2.0, 0.0]]), np.array([[2.0, 1.0, 0.5]])
    # MSLE: mean((log(max(p, eps) + 1) - log(max(t, eps) + 1))^2)
    want = np.mean((np.log(np.maximum(p, 1e-7) + 1) - np.log(np.maximum(t, 1e-7) + 1)) ** 2)
    assert _value(losses.MeanSquaredLogarithmicError(), t, p) == pytest.approx(want)
    # MAPE: 100 * mean(|t - p| / max(|t|, eps)) -> (100 + 50 + 0.5 / 1e-7 * 100) / 3
    want = 100 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), 1e-7))
    assert _value(losses.MeanAbsolutePercentageError(), t, p) == pytest.approx(want)
    # squared hinge with 0/1 labels mapped to -1/1: mean(max(1 - t p, 0)^2)
    t01, s = np.array([[1.0, 0.0]]), np.array([[0.3, 0.2]])
    assert _value(losses.SquaredHinge(), t01, s) == pytest.approx((0.7**2 + 1.2**2) / 2)
    # categorical hinge: max(neg - pos + 1, 0), pos = 0.3, neg = max(0.6, 0.1)
    assert _value(losses.CategoricalHinge(), [[0.0, 1.0, 0.0]],
                  [[0.6, 0.3, 0.1]]) == pytest.approx(1.3)
    # Tversky as Keras's code: I / (I + alpha sum(t (1 - p)) + beta sum((1 - t) p) + eps)
    tt, pp = np.array(DICE_TRUE).ravel(), np.array(DICE_PRED).ravel()
    i, a, b = (tt * pp).sum(), (tt * (1 - pp)).sum(), ((1 - tt) * pp).sum()
    want = 1 - i / (i + 0.3 * a + 0.7 * b + 1e-7)
    assert _value(losses.Tversky(alpha=0.3, beta=0.7), DICE_TRUE,
                  DICE_PRED) == pytest.approx(want, rel=1e-12)


def _labels01(shape):
    return rng.integers(0, 2, shape).astype(float)


CASES = {
    "cosine": (losses.CosineSimilarity(), lambda: rng.standard_normal((4, 3)),
               lambda: rng.standard_normal((4, 3))),
    "cosine_axis0": (losses.CosineSimilarity(axis=0), lambda: rng.standard_normal((4, 3)),
                     lambda: rng.standard_normal((4, 3))),
    "msle": (losses.MeanSquaredLogarithmicError(), lambda: rng.uniform(0, 3, (4, 3)),
             lambda: rng.uniform(0.1, 3, (4, 3))),
    "mape": (losses.MeanAbsolutePercentageError(), lambda: rng.uniform(0.5, 3, (4, 3)),
             lambda: rng.uniform(0.5, 3, (4, 3)) + 4.0),
    "squared_hinge": (losses.SquaredHinge(), lambda: _labels01((4, 3)),
                      lambda: rng.standard_normal((4, 3)) * 0.4),
    "categorical_hinge": (losses.CategoricalHinge(), lambda: np.eye(4)[rng.integers(0, 4, 5)],
                          lambda: rng.standard_normal((5, 4))),
    "binary_focal": (losses.BinaryFocalCrossentropy(), lambda: _labels01((5, 2)),
                     lambda: rng.uniform(0.05, 0.95, (5, 2))),
    "binary_focal_logits": (losses.BinaryFocalCrossentropy(
        apply_class_balancing=True, gamma=3.0, from_logits=True, label_smoothing=0.1),
        lambda: _labels01((5, 2)), lambda: rng.standard_normal((5, 2)) * 2),
    "categorical_focal": (losses.CategoricalFocalCrossentropy(),
                          lambda: np.eye(4)[rng.integers(0, 4, 5)], lambda: _probs((5, 4))),
    "categorical_focal_logits": (losses.CategoricalFocalCrossentropy(
        alpha=[0.1, 0.2, 0.3, 0.4], gamma=1.5, from_logits=True, label_smoothing=0.2),
        lambda: np.eye(4)[rng.integers(0, 4, 5)], lambda: rng.standard_normal((5, 4))),
    "dice": (losses.Dice(), lambda: _labels01((3, 2, 2, 1)),
             lambda: rng.uniform(0.05, 0.95, (3, 2, 2, 1))),
    "dice_axis": (losses.Dice(axis=(1, 2, 3)), lambda: _labels01((3, 2, 2, 1)),
                  lambda: rng.uniform(0.05, 0.95, (3, 2, 2, 1))),
    "tversky": (losses.Tversky(alpha=0.3, beta=0.7), lambda: _labels01((3, 4)),
                lambda: rng.uniform(0.05, 0.95, (3, 4))),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradients(backend, name, reduction, weighted):
    loss, make_true, make_pred = CASES[name]
    loss = type(loss).from_config({**loss.get_config(), "reduction": reduction})
    y_true, y_pred = make_true(), make_pred()
    w = rng.uniform(0.5, 2, y_pred.shape[0]) if weighted and name != "cosine_axis0" else None
    check_loss(backend, loss, y_true, y_pred, sample_weight=w)


def test_names_and_configs():
    for name, cls in [("msle", losses.MeanSquaredLogarithmicError),
                      ("mape", losses.MeanAbsolutePercentageError),
                      ("cosine_similarity", losses.CosineSimilarity),
                      ("squared_hinge", losses.SquaredHinge),
                      ("categorical_hinge", losses.CategoricalHinge),
                      ("binary_focal_crossentropy", losses.BinaryFocalCrossentropy),
                      ("categorical_focal_crossentropy", losses.CategoricalFocalCrossentropy),
                      ("dice", losses.Dice), ("tversky", losses.Tversky),
                      ("Tversky", losses.Tversky)]:
        assert type(losses.get(name)) is cls
        obj = cls()
        again = losses.get({"class_name": cls.__name__, "config": obj.get_config()})
        assert again.get_config() == obj.get_config()
    assert losses.get(losses.squared_hinge).name == "squared_hinge"
    assert losses.BinaryFocalCrossentropy().get_config()["gamma"] == 2.0
    with pytest.raises(NotImplementedError, match="axis"):
        losses.BinaryFocalCrossentropy(axis=1)
    with pytest.raises(NotImplementedError, match="keras.losses.CTC"):
        losses.get("ctc")
    with pytest.raises(NotImplementedError, match="keras.losses.Circle"):
        getattr(losses, "Circle")  # noqa: B009
    from xpnet import keras

    with pytest.raises(NotImplementedError, match="keras.losses.CTC"):
        getattr(keras.losses, "CTC")  # noqa: B009


@pytest.mark.parametrize("name", ["binary_crossentropy", "categorical_crossentropy",
                                  "sparse_categorical_crossentropy", "mean_squared_error"])
def test_function_form_on_the_tape(name):
    # keras.losses.binary_crossentropy(y, model(x)) inside a GradientTape: per-sample
    # values, and the gradient the class form gives
    import xpnet

    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, (5, 3))
    p = p / p.sum(-1, keepdims=True)
    t = {"binary_crossentropy": _labels01((5, 3)), "mean_squared_error": rng.random((5, 3)),
         "categorical_crossentropy": np.eye(3)[rng.integers(0, 3, 5)],
         "sparse_categorical_crossentropy": rng.integers(0, 3, 5)}[name]
    grads = []
    for per_sample, fn in ((True, getattr(losses, name)), (False, losses.get(name))):
        v = xpnet.Variable(p.copy())
        with xpnet.GradientTape() as tape:
            values = fn(t, v)
            total = xpnet.ops.sum(values)
        grads.append(np.asarray(tape.gradient(total, v)))
        assert tuple(values.shape) == ((5,) if per_sample else ())
    scale = 5.0  # the class form's mean over the 5 samples
    np.testing.assert_allclose(grads[0], grads[1] * scale, rtol=1e-6)  # float32 Variables
    assert np.abs(grads[0]).max() > 0
