"""Each optimizer against a step computed by hand, then a short trajectory against the
textbook formulas written out in NumPy (float64)."""

import math

import numpy as np
import pytest

from xpnet import optimizers


def _step(backend, opt, p, g, steps=1):
    param = backend.asarray(np.array(p, dtype=np.float64))
    for _ in range(steps):
        opt.apply_gradients([(backend.asarray(np.array(g, dtype=np.float64)), param)])
    return backend.to_numpy(param)


def test_sgd_by_hand(backend):
    np.testing.assert_allclose(_step(backend, optimizers.SGD(0.1), [1.0, 2.0], [0.5, -1.0]),
                               [0.95, 2.1])
    # momentum 0.9: v1 = -0.1 g, p1 = p0 + v1; v2 = 0.9 v1 - 0.1 g, p2 = p1 + v2
    got = _step(backend, optimizers.SGD(0.1, momentum=0.9), [1.0], [1.0], steps=2)
    np.testing.assert_allclose(got, [1.0 - 0.1 - 0.19])
    # Nesterov: p += momentum * v - lr * g
    got = _step(backend, optimizers.SGD(0.1, momentum=0.9, nesterov=True), [1.0], [1.0])
    np.testing.assert_allclose(got, [1.0 + 0.9 * -0.1 - 0.1])


def test_adam_by_hand(backend):
    # step 1: m = 0.1 g, v = 0.001 g^2, alpha = lr sqrt(1 - 0.999) / (1 - 0.9)
    g = 0.5
    m, v = 0.1 * g, 0.001 * g * g
    alpha = 0.01 * math.sqrt(0.001) / 0.1
    want = 1.0 - alpha * m / (math.sqrt(v) + 1e-7)
    np.testing.assert_allclose(_step(backend, optimizers.Adam(0.01), [1.0], [g]), [want],
                               rtol=1e-12)


def test_rmsprop_by_hand(backend):
    g = 2.0
    v = 0.1 * g * g
    want = 1.0 - 0.01 * g / math.sqrt(v + 1e-7)  # epsilon inside the root, as Keras
    np.testing.assert_allclose(_step(backend, optimizers.RMSprop(0.01), [1.0], [g]), [want],
                               rtol=1e-12)


def test_adagrad_by_hand(backend):
    g = 3.0
    acc = 0.1 + g * g  # the accumulator starts at 0.1
    want = 1.0 - 0.5 * g / math.sqrt(acc + 1e-7)
    np.testing.assert_allclose(_step(backend, optimizers.Adagrad(0.5), [1.0], [g]), [want],
                               rtol=1e-12)


def _textbook(name, p, grads, **hp):
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p) + (0.1 if name == "adagrad" else 0.0)
    mg, vhat = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        lr = hp["learning_rate"]
        if name == "adam":
            b1, b2 = 0.9, 0.999
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            vhat = np.maximum(vhat, v)
            mhat, vh = m / (1 - b1 ** t), (vhat if hp.get("amsgrad") else v) / (1 - b2 ** t)
            # Keras's epsilon sits outside the bias correction: eps_hat = eps * sqrt(1-b2^t)
            p = p - lr * mhat / (np.sqrt(vh) + 1e-7 / math.sqrt(1 - b2 ** t))
        elif name == "rmsprop":
            v = 0.9 * v + 0.1 * g * g
            mg = 0.9 * mg + 0.1 * g
            denom = v - mg * mg if hp.get("centered") else v
            step = lr * g / np.sqrt(denom + 1e-7)
            m = hp.get("momentum", 0.0) * m + step
            p = p - m
        elif name == "sgd":
            m = hp["momentum"] * m - lr * g
            p = p + (hp["momentum"] * m - lr * g if hp.get("nesterov") else m)
        elif name == "adagrad":
            v = v + g * g
            p = p - lr * g / np.sqrt(v + 1e-7)
    return p


@pytest.mark.parametrize("name,hp", [
    ("adam", {"learning_rate": 0.05}), ("adam", {"learning_rate": 0.05, "amsgrad": True}),
    ("rmsprop", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.5, "centered": True}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adagrad", {"learning_rate": 0.1}),
])
def test_golden_trajectory(backend, name, hp):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal((3, 4))
    grads = [rng.standard_normal((3, 4)) for _ in range(10)]
    opt = optimizers.get(name).__class__(**hp)
    param = backend.asarray(p0.copy())
    for g in grads:
        opt.apply_gradients([(backend.asarray(g), param)])
    np.testing.assert_allclose(backend.to_numpy(param), _textbook(name, p0, grads, **hp),
                               rtol=1e-10, atol=1e-12)
    assert opt.iterations == 10


def test_schedule_as_learning_rate(cpu):
    opt = optimizers.SGD(learning_rate=lambda step: 0.1 / (1 + step))
    assert opt.learning_rate == 0.1
    got = _step(cpu, opt, [1.0], [1.0], steps=2)
    np.testing.assert_allclose(got, [1.0 - 0.1 - 0.05])


def test_clipping_and_weight_decay(cpu):
    g = np.array([3.0, 4.0])  # norm 5
    np.testing.assert_allclose(_step(cpu, optimizers.SGD(1.0, clipnorm=1.0), [0.0, 0.0], g),
                               [-0.6, -0.8])
    np.testing.assert_allclose(_step(cpu, optimizers.SGD(1.0, clipvalue=3.5), [0.0, 0.0], g),
                               [-3.0, -3.5])
    opt = optimizers.SGD(1.0, global_clipnorm=1.0)
    a, b = cpu.asarray(np.zeros(1)), cpu.asarray(np.zeros(1))
    opt.apply_gradients([(np.array([3.0]), a), (np.array([4.0]), b)])
    np.testing.assert_allclose([a[0], b[0]], [-0.6, -0.8])
    # decoupled decay: p -= lr * wd * p before the update
    np.testing.assert_allclose(_step(cpu, optimizers.SGD(0.1, weight_decay=0.5), [2.0], [0.0]),
                               [2.0 - 0.1 * 0.5 * 2.0])


def test_names_and_errors():
    assert isinstance(optimizers.get("Adam"), optimizers.Adam)
    assert optimizers.get("sgd").learning_rate == 0.01
    assert optimizers.get("adam").epsilon == 1e-7
    assert optimizers.get("adagrad").initial_accumulator_value == 0.1
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
        optimizers.get("adamm")
    with pytest.raises(ValueError, match="learning_rate must be positive or 0"):
        optimizers.Adam(learning_rate=-1.0)
    with pytest.raises(TypeError, match="unexpected argument"):
        optimizers.Adam(lr_decay=0.1)


def test_adamw_against_keras_semantics(backend):
    """Keras 3 AdamW: decay ``p -= lr * wd * p`` with the step's learning rate, then the
    Adam update from the decayed weights; default weight_decay 0.004."""
    assert optimizers.AdamW().weight_decay == 0.004
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal((2, 3))
    grads = [rng.standard_normal((2, 3)) for _ in range(5)]
    opt = optimizers.AdamW(learning_rate=0.05, weight_decay=0.1)
    param = backend.asarray(p0.copy())
    for g in grads:
        opt.apply_gradients([(backend.asarray(g), param)])
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        p = p - 0.05 * 0.1 * p
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        alpha = 0.05 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        p = p - alpha * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(backend.to_numpy(param), p, rtol=1e-10, atol=1e-12)


def _two_layer_model(optimizer, seed=0):
    from xpnet import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(4, activation="tanh", input_shape=(3,)),
                              keras.layers.Dense(2)], backend="cpu")
    model.compile(optimizer=optimizer, loss="mse")
    return model


def test_clipnorm_clips_each_variable_with_flat_buffers():
    """The model packs its weights in one flat buffer; clipnorm must still clip each
    variable by its own norm (Keras), not the buffer as a whole."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 3)).astype(np.float32) * 5
    y = rng.standard_normal((16, 2)).astype(np.float32) * 5
    model = _two_layer_model(optimizers.SGD(1.0, clipnorm=0.1))
    model._ensure_packed()  # gen: the weights are captured at the first train step (Keras)
    assert model._flat is not None and model._flat.valid()
    before = model.get_weights()
    model.train_on_batch(x, y)
    grads = [la.grads[k].copy() for la in model.layers for k in la._trainable_names]
    after = model.get_weights()
    for g, b, a in zip(grads, before, after):
        norm = np.linalg.norm(g)
        assert norm > 0.1  # every variable is clipped here
        np.testing.assert_allclose(b - a, g * (0.1 / norm), rtol=1e-4, atol=1e-7)
    # global_clipnorm, by contrast, scales all variables by one factor
    model = _two_layer_model(optimizers.SGD(1.0, global_clipnorm=0.1))
    before = model.get_weights()
    model.train_on_batch(x, y)
    grads = [la.grads[k].copy() for la in model.layers for k in la._trainable_names]
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    for g, b, a in zip(grads, before, model.get_weights()):
        np.testing.assert_allclose(b - a, g * (0.1 / total), rtol=1e-4, atol=1e-7)


def test_weight_decay_in_a_model_decays_every_weight():
    """SGD(weight_decay) through the flat buffer: with zero gradients the weights shrink by
    (1 - lr * wd) each step."""
    model = _two_layer_model(optimizers.SGD(0.1, weight_decay=0.5))
    w0 = model.get_weights()
    x = np.zeros((4, 3), np.float32)
    y = model.predict(x, verbose=0)  # zero loss gradient: only the decay acts
    model.train_on_batch(x, y)
    for a, b in zip(w0, model.get_weights()):
        np.testing.assert_allclose(b, a * (1 - 0.1 * 0.5), rtol=1e-6, atol=1e-7)


def test_exclude_from_weight_decay_by_name_in_a_model():
    """Keras's ``exclude_from_weight_decay(var_names=["bias"])``: with zero gradients the
    kernels decay and the biases, packed in the same flat buffer, do not."""
    opt = optimizers.SGD(0.1, weight_decay=0.5)
    opt.exclude_from_weight_decay(var_names=["bias"])
    model = _two_layer_model(opt)
    w = model.get_weights()
    w[1][...] = 1.0
    w[3][...] = 1.0
    model.set_weights(w)
    x = np.zeros((4, 3), np.float32)
    model.train_on_batch(x, model.predict(x, verbose=0))
    after = model.get_weights()
    np.testing.assert_allclose(after[0], w[0] * 0.95, rtol=1e-6)
    np.testing.assert_array_equal(after[1], w[1])
    np.testing.assert_array_equal(after[3], w[3])
    p, q = np.ones(2), np.ones(2)
    plain = optimizers.SGD(0.1, weight_decay=0.5)
    plain.exclude_from_weight_decay(var_list=[q])
    plain.apply_gradients([(np.zeros(2), p), (np.zeros(2), q)])
    np.testing.assert_allclose([p[0], q[0]], [0.95, 1.0])
