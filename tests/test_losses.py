import numpy as np
import pytest
from harness import check_loss

from xpnet import losses

rng = np.random.default_rng(0)


def _probs(shape):
    e = np.exp(rng.standard_normal(shape))
    return e / e.sum(-1, keepdims=True)


def _onehot(labels, c):
    return np.eye(c)[labels]


REGRESSION = [losses.MeanSquaredError(), losses.MeanAbsoluteError(), losses.Huber(0.5),
              losses.LogCosh()]


@pytest.mark.parametrize("loss", REGRESSION, ids=lambda loss: loss.name)
@pytest.mark.parametrize("weighted", [False, True])
def test_regression_losses(backend, loss, weighted):
    y_true = rng.standard_normal((4, 3))
    y_pred = y_true + rng.choice([-1, 1], (4, 3)) * rng.uniform(0.1, 2.0, (4, 3))
    check_loss(backend, loss, y_true, y_pred,
               sample_weight=rng.uniform(0.5, 2, 4) if weighted else None)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_crossentropy(backend, from_logits, smoothing, weighted):
    y_true = rng.integers(0, 2, (5, 2)).astype(float)
    y_pred = rng.standard_normal((5, 2)) * 3 if from_logits else rng.uniform(0.05, 0.95, (5, 2))
    check_loss(backend, losses.BinaryCrossentropy(from_logits, smoothing), y_true, y_pred,
               sample_weight=rng.uniform(0.5, 2, 5) if weighted else None)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_crossentropy(backend, from_logits, smoothing, weighted):
    y_true = _onehot(rng.integers(0, 4, 6), 4)
    y_pred = rng.standard_normal((6, 4)) * 3 if from_logits else _probs((6, 4))
    check_loss(backend, losses.CategoricalCrossentropy(from_logits, smoothing), y_true, y_pred,
               sample_weight=rng.uniform(0.5, 2, 6) if weighted else None)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_categorical_crossentropy(backend, from_logits, weighted):
    y_true = rng.integers(0, 5, 6)
    y_pred = rng.standard_normal((6, 5)) * 3 if from_logits else _probs((6, 5))
    check_loss(backend, losses.SparseCategoricalCrossentropy(from_logits), y_true, y_pred,
               sample_weight=rng.uniform(0.5, 2, 6) if weighted else None)


def test_sparse_crossentropy_on_sequences(backend):
    y_true = rng.integers(0, 3, (2, 4))
    check_loss(backend, losses.SparseCategoricalCrossentropy(True), y_true,
               rng.standard_normal((2, 4, 3)), sample_weight=rng.uniform(0.5, 2, 2))


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("ignore_class", [0, -1])
def test_sparse_crossentropy_ignore_class(backend, from_logits, ignore_class):
    """Keras 3's ignore_class: ignored entries lose 0 and the mean runs over the others
    (sample weights too); value and gradient through the harness."""
    y_true = rng.integers(1, 5, (3, 4))
    y_true[0, 2:] = y_true[2, 1] = ignore_class
    y_pred = rng.standard_normal((3, 4, 5)) * 3 if from_logits else _probs((3, 4, 5))
    sw = rng.uniform(0.5, 2, 3)
    loss = losses.SparseCategoricalCrossentropy(from_logits, ignore_class)
    got = check_loss(backend, loss, y_true, y_pred, sample_weight=sw)
    keep = y_true != ignore_class
    plain = losses.SparseCategoricalCrossentropy(from_logits, reduction="none")
    per = np.asarray(plain(np.where(keep, y_true, 1), y_pred))
    assert got == pytest.approx(np.sum(per * keep * sw[:, None]) / keep.sum(), rel=1e-6)
    none = losses.SparseCategoricalCrossentropy(from_logits, ignore_class, reduction="none")
    np.testing.assert_allclose(np.asarray(none(y_true, y_pred)), np.where(keep, per, 0.0))
    again = losses.SparseCategoricalCrossentropy.from_config(loss.get_config())
    assert again.ignore_class == ignore_class
    with pytest.raises(ValueError, match="ignore_class must be an int"):
        losses.SparseCategoricalCrossentropy(ignore_class=0.5)


@pytest.mark.parametrize("loss", [losses.Hinge(), losses.KLDivergence(), losses.Poisson()],
                         ids=lambda loss: loss.name)
def test_other_losses(backend, loss):
    if loss.name == "hinge":
        y_true, y_pred = rng.choice([-1.0, 1.0], (4, 3)), rng.uniform(-0.8, 0.8, (4, 3))
    else:
        y_true, y_pred = _probs((4, 3)), _probs((4, 3))
    check_loss(backend, loss, y_true, y_pred)


def test_reductions(cpu):
    y_true, y_pred = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    per_sample = np.mean((y_pred - y_true) ** 2, axis=-1)
    w = np.array([1.0, 0.0, 2.0, 1.0])
    assert np.isclose(losses.MeanSquaredError()(y_true, y_pred), per_sample.mean())
    assert np.isclose(losses.MeanSquaredError(reduction="sum")(y_true, y_pred),
                      per_sample.sum())
    np.testing.assert_allclose(losses.MeanSquaredError(reduction="none")(y_true, y_pred),
                               per_sample)
    # Keras's sum_over_batch_size divides the weighted sum by the number of samples
    assert np.isclose(losses.MeanSquaredError()(y_true, y_pred, sample_weight=w),
                      (per_sample * w).sum() / 4)
    check_loss(cpu, losses.MeanSquaredError(reduction="sum"), y_true, y_pred)


def test_crossentropy_matches_the_textbook(cpu):
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    want = -logp[np.arange(5), labels].mean()
    got = losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)
    assert np.isclose(got, want, rtol=1e-12)
    probs = np.exp(logp)
    assert np.isclose(losses.SparseCategoricalCrossentropy()(labels, probs), want, rtol=1e-9)
    assert np.isclose(losses.CategoricalCrossentropy()(_onehot(labels, 4), probs), want,
                      rtol=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logits_of_1e4_are_stable(backend, dtype):
    xp = backend.xp
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [5.0, 5.0, 5.0]])
    labels = np.array([0, 1, 2])
    z = backend.asarray(logits, dtype=getattr(xp, dtype))
    y = backend.asarray(labels)
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    value, grad = loss.value_and_grad(loss.prepare(y, z), z)
    want = np.array([0.0, 2e4, np.log(3.0)]).mean()
    assert np.isclose(float(value), want, rtol=1e-6)
    g = backend.to_numpy(grad)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-6)  # rows of (p - onehot)/B sum to 0
    bce = losses.BinaryCrossentropy(from_logits=True)
    t = backend.asarray(np.array([[1.0, 0.0]]), dtype=getattr(xp, dtype))
    zb = backend.asarray(np.array([[-1e4, -1e4]]), dtype=getattr(xp, dtype))
    value, grad = bce.value_and_grad(t, zb)
    assert np.isclose(float(value), 5e3, rtol=1e-6)
    assert np.all(np.isfinite(backend.to_numpy(grad)))


def test_labels_out_of_range_are_named(cpu):
    loss = losses.SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 10\).*\[0, 12\]"):
        loss.validate(np.array([0, 12, 3]), (None, 10))
    with pytest.raises(ValueError, match="do not match model outputs"):
        loss.validate(np.zeros((3, 2), int), (None, 10))
    with pytest.raises(ValueError, match=r"\[-1, 3\]"):
        loss.validate(np.array([-1, 3]), (None, 10))
    loss.validate(np.array([[1], [9]]), (None, 10))  # a trailing axis of 1 is fine


def test_get_by_name_and_errors():
    assert isinstance(losses.get("mse"), losses.MeanSquaredError)
    assert isinstance(losses.get(losses.sparse_categorical_crossentropy),
                      losses.SparseCategoricalCrossentropy)
    assert losses.get("sparse_categorical_crossentropy").name == \
        "sparse_categorical_crossentropy"
    with pytest.raises(ValueError, match="unknown loss 'msee'"):
        losses.get("msee")
    wrapped = losses.get(lambda t, p: t)  # a function written with ops: the tape's gradient
    assert isinstance(wrapped, losses.LossFunctionWrapper)
    with pytest.raises(ValueError, match="unknown loss 3"):
        losses.get(3)
    with pytest.raises(ValueError, match="unknown reduction"):
        losses.MeanSquaredError(reduction="avg")


def test_sparse_crossentropy_ignore_class_keras_figure():
    """Keras 3's docstring figure for SparseCategoricalCrossentropy, 1.177 on
    ``[1, 2]``; an extra entry labelled ``ignore_class`` leaves it unchanged (Keras masks
    the per-entry loss and the mean runs over the valid entries)."""
    y_pred = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    plain = losses.SparseCategoricalCrossentropy()
    assert float(plain(np.array([1, 2]), y_pred[:2])) == pytest.approx(1.177, abs=5e-4)
    ignoring = losses.SparseCategoricalCrossentropy(ignore_class=-1)
    assert float(ignoring(np.array([1, 2, -1]), y_pred)) == pytest.approx(1.177, abs=5e-4)
