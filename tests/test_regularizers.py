import numpy as np
import pytest
from harness import assert_grad_close
from harness import numerical_grad

from xpnet import keras
from xpnet import regularizers


@pytest.mark.parametrize("reg", [regularizers.L1(0.3), regularizers.L2(0.2),
                                 regularizers.L1L2(0.1, 0.4)], ids=lambda r: type(r).__name__)
def test_penalty_and_gradient(backend, reg):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    w[np.abs(w) < 0.05] = 0.1  # off the kink of |w|
    xp = backend.xp
    dirs, derivs = numerical_grad(lambda a: float(reg(backend.asarray(a, dtype=xp.float64))),
                                  w, rng)
    assert_grad_close(backend.to_numpy(reg.grad(backend.asarray(w))), dirs, derivs,
                      type(reg).__name__)
    want = reg.l1 * np.abs(w).sum() + reg.l2 * (w * w).sum()
    assert np.isclose(float(reg(backend.asarray(w))), want)


def test_model_loss_and_step_include_the_penalty(cpu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)
    model = keras.Sequential([keras.layers.Dense(2, input_shape=(3,), use_bias=False,
                                                 kernel_regularizer=regularizers.L2(0.5))],
                             backend="cpu")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    w = model.get_weights()[0].astype(np.float64)
    data = np.mean(np.mean((x @ w - y) ** 2, axis=1))
    assert np.isclose(model.evaluate(x, y, verbose=0), data + 0.5 * (w * w).sum(), rtol=1e-5)
    model.train_on_batch(x, y)
    grad = x.T @ (2 * (x @ w - y) / 2) / 8 + 2 * 0.5 * w
    np.testing.assert_allclose(model.get_weights()[0], w - 0.1 * grad, rtol=1e-5, atol=1e-6)


def test_get_and_config():
    assert isinstance(regularizers.get("l2"), regularizers.L2)
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.01, "l2": 0.01}
    reg = regularizers.get({"class_name": "L1L2", "config": {"l1": 0.2, "l2": 0.0}})
    assert (reg.l1, reg.l2) == (0.2, 0.0)
    with pytest.raises(ValueError, match="unknown regularizer"):
        regularizers.get("l3")
    layer = keras.layers.Dense(2, kernel_regularizer="l2")
    clone = keras.layers.Dense.from_config(layer.get_config())
    assert isinstance(clone.kernel_regularizer, regularizers.L2)
