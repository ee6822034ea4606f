"""Issue 10, point 11 (optimizers): Nadam, Adamax, Adadelta, Ftrl and Lion against one step
computed by hand, a golden float64 trajectory from Keras 3's update equations
(keras/src/optimizers/*.py, written out below as a NumPy loop), and fused vs composed."""

import math

import array_api_compat.numpy as xp
import numpy as np
import pytest
from kernel_cases import tolerance

from xpnet import kernels
from xpnet import optimizers
from xpnet.kernels import optim


def _run(backend, opt, p, grads):
    param = backend.asarray(np.array(p, dtype=np.float64))
    for g in grads:
        opt.apply_gradients([(backend.asarray(np.array(g, dtype=np.float64)), param)])
    return backend.to_numpy(param)


def test_one_step_by_hand(backend):
    p, g = [1.0], [[0.5]]
    # Nadam, t = 1: u1 = 0.9 (1 - 0.5 * 0.96) = 0.468, u2 = 0.9 (1 - 0.5 * 0.96^2) = 0.48528;
    # m = 0.05, v = 0.00025, m_hat = u2 m / (1 - u1 u2) + (1 - u1) g / (1 - u1),
    # v_hat = v / (1 - 0.999) = 0.25, p -= lr m_hat / (sqrt(v_hat) + 1e-7)
    m_hat = 0.48528 * 0.05 / (1 - 0.468 * 0.48528) + 0.5
    np.testing.assert_allclose(_run(backend, optimizers.Nadam(0.01), p, g),
                               [1 - 0.01 * m_hat / (0.5 + 1e-7)], rtol=1e-13)
    # Adamax: m = 0.05, u = max(0, |g|) = 0.5, p -= lr m / ((1 - 0.9)(u + 1e-7))
    np.testing.assert_allclose(_run(backend, optimizers.Adamax(0.01), p, g),
                               [1 - 0.01 * 0.05 / (0.1 * (0.5 + 1e-7))], rtol=1e-13)
    # Adadelta (rho 0.95): E[g^2] = 0.05 * 0.25, d = -sqrt(0 + eps) g / sqrt(E[g^2] + eps)
    d = -math.sqrt(1e-7) * 0.5 / math.sqrt(0.0125 + 1e-7)
    np.testing.assert_allclose(_run(backend, optimizers.Adadelta(1.0), p, g), [1 + d],
                               rtol=1e-13)
    # Ftrl (lr 0.1, n0 = 0.1): n = 0.35, z = g - (sqrt(n) - sqrt(n0)) / lr * p,
    # p = (clip(z, 0, 0) - z) / (sqrt(n) / lr)
    z = 0.5 - (math.sqrt(0.35) - math.sqrt(0.1)) / 0.1
    np.testing.assert_allclose(_run(backend, optimizers.Ftrl(0.1), p, g),
                               [-z / (math.sqrt(0.35) / 0.1)], rtol=1e-13)
    # Lion: sign(0.9 * 0 + 0.1 * 0.5) = 1 -> p = 1 - lr; and sign(0) = 0 leaves p alone
    np.testing.assert_allclose(_run(backend, optimizers.Lion(0.01), [1.0, 2.0],
                                    [[0.5, 0.0]]), [0.99, 2.0], rtol=1e-15)


def _keras_trajectory(name, kwargs, p, grads):
    """Keras 3's update_step for one variable, step by step in float64."""
    p = np.array(p, dtype=np.float64)
    lr = kwargs["learning_rate"]
    s1, s2, u_product = np.zeros_like(p), np.zeros_like(p), 1.0
    if name.startswith("ftrl"):
        s1 += kwargs.get("initial_accumulator_value", 0.1)
    for it, g in enumerate(np.asarray(grads, dtype=np.float64)):
        t = it + 1  # Keras: local_step = iterations + 1
        if name == "nadam":
            b1, b2, eps = 0.9, 0.999, 1e-7
            u_product = u_product * b1 * (1.0 - 0.5 * 0.96**t)
            u_t, u_t1 = b1 * (1 - 0.5 * 0.96**t), b1 * (1 - 0.5 * 0.96 ** (t + 1))
            s1 += (g - s1) * (1 - b1)
            s2 += (g * g - s2) * (1 - b2)
            m_hat = u_t1 * s1 / (1 - u_product * u_t1) + (1 - u_t) * g / (1 - u_product)
            p -= m_hat * lr / (np.sqrt(s2 / (1 - b2**t)) + eps)
        elif name == "adamax":
            b1, b2, eps = 0.9, 0.999, 1e-7
            s1 += (g - s1) * (1 - b1)
            s2 = np.maximum(b2 * s2, np.abs(g))
            p -= lr * s1 / ((1 - b1**t) * (s2 + eps))
        elif name == "adadelta":
            rho, eps = 0.95, 1e-7
            s1 = rho * s1 + (1 - rho) * g * g
            delta = -np.sqrt(s2 + eps) * g / np.sqrt(s1 + eps)
            s2 = rho * s2 + (1 - rho) * delta * delta
            p += lr * delta
        elif name.startswith("ftrl"):
            k, l1 = kwargs["learning_rate_power"], kwargs["l1_regularization_strength"]
            l2 = kwargs["l2_regularization_strength"] + kwargs["beta"] / (2 * lr)
            shrink = kwargs["l2_shrinkage_regularization_strength"]
            new = s1 + g * g
            s2 += g + 2 * shrink * p - (new**-k - s1**-k) / lr * p
            p = (np.clip(s2, -l1, l1) - s2) / (new**-k / lr + 2 * l2)
            s1 = new
        elif name == "lion":
            b1, b2 = 0.9, 0.99
            p -= lr * np.sign(s1 * b1 + g * (1 - b1))
            s1 = s1 * b2 + g * (1 - b2)
    return p


GOLDEN = {
    "nadam": (optimizers.Nadam, {"learning_rate": 0.05}),
    "adamax": (optimizers.Adamax, {"learning_rate": 0.05}),
    "adadelta": (optimizers.Adadelta, {"learning_rate": 1.0}),
    "ftrl": (optimizers.Ftrl, {"learning_rate": 0.1, "learning_rate_power": -0.5,
                               "l1_regularization_strength": 0.01,
                               "l2_regularization_strength": 0.02,
                               "l2_shrinkage_regularization_strength": 0.03, "beta": 0.1}),
    "ftrl_power": (optimizers.Ftrl, {"learning_rate": 0.1, "learning_rate_power": -0.7,
                                     "l1_regularization_strength": 0.0,
                                     "l2_regularization_strength": 0.0,
                                     "l2_shrinkage_regularization_strength": 0.0,
                                     "beta": 0.0}),
    "lion": (optimizers.Lion, {"learning_rate": 0.01}),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden_trajectory(backend, name):
    cls, kwargs = GOLDEN[name]
    rng = np.random.default_rng(4)
    p0 = rng.standard_normal(6)
    grads = rng.standard_normal((8, 6))
    want = _keras_trajectory(name, kwargs, p0, grads)
    np.testing.assert_allclose(_run(backend, cls(**kwargs), p0, grads), want, rtol=1e-12,
                               atol=1e-14)


# name -> (step(kernels_or_reference, p, g, slots, t), number of slots, slot initial value)
STEPS = {
    "nadam": (lambda k, p, g, s, t: k.nadam(p, g, s[0], s[1], lr=0.01, beta_1=0.9,
                                            beta_2=0.999, epsilon=1e-7, step=t,
                                            u_product=math.prod(optim.nadam_u(0.9, i)
                                                                for i in range(1, t + 1))),
              2, 0.0),
    "adamax": (lambda k, p, g, s, t: k.adamax(p, g, s[0], s[1], lr=0.01, beta_1=0.9,
                                              beta_2=0.999, epsilon=1e-7, step=t), 2, 0.0),
    "adadelta": (lambda k, p, g, s, t: k.adadelta(p, g, s[0], s[1], lr=1.0, rho=0.95,
                                                  epsilon=1e-7), 2, 0.0),
    "ftrl": (lambda k, p, g, s, t: k.ftrl(p, g, s[0], s[1], lr=0.1, lr_power=-0.5, l1=0.01,
                                          l2=0.02, l2_shrinkage=0.03, beta=0.1), 2, 0.1),
    "ftrl_power": (lambda k, p, g, s, t: k.ftrl(p, g, s[0], s[1], lr=0.1, lr_power=-0.7,
                                                l1=0.0, l2=0.0, l2_shrinkage=0.0, beta=0.0),
                   2, 0.1),
    "lion": (lambda k, p, g, s, t: k.lion(p, g, s[0], lr=0.01, beta_1=0.9, beta_2=0.99),
             1, 0.0),
}


class Reference:
    """optim.reference_<name>, called like the dispatch functions (NumPy namespace)."""

    def __getattr__(self, name):
        f = getattr(optim, f"reference_{name}")
        return lambda p, g, *slots, **kw: f(p, g, *slots, xp, **kw)


@pytest.mark.parametrize("name", list(STEPS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_update_equals_composed(njit, name, dtype):
    step, n_slots, init = STEPS[name]
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(1000).astype(dtype)
    fused = [p0.copy(), [np.full_like(p0, init) for _ in range(n_slots)]]
    composed = [p0.copy(), [np.full_like(p0, init) for _ in range(n_slots)]]
    for t in range(1, 6):
        g = rng.standard_normal(1000).astype(dtype)
        g[:5] = 0.0  # Lion's sign(0); Adamax's max with |0|
        step(kernels, fused[0], g, fused[1], t)
        step(Reference(), composed[0], g, composed[1], t)
    assert fused[0].dtype == dtype
    np.testing.assert_allclose(fused[0], composed[0], **tolerance(dtype))
    for a, b in zip(fused[1], composed[1]):
        np.testing.assert_allclose(a, b, **tolerance(dtype))


def test_strided_parameters_fall_back():
    p = np.random.default_rng(0).standard_normal((8, 6))
    view, g = p.T, np.ones((6, 8))
    expected = view.copy()
    optim.reference_lion(expected, g, np.zeros_like(g), xp, lr=0.1, beta_1=0.9, beta_2=0.99)
    kernels.lion(view, g, np.zeros((8, 6)).T, lr=0.1, beta_1=0.9, beta_2=0.99)
    np.testing.assert_allclose(p.T, expected)


def test_names_defaults_configs_and_errors():
    assert isinstance(optimizers.get("nadam"), optimizers.Nadam)
    assert isinstance(optimizers.get("Adamax"), optimizers.Adamax)
    assert optimizers.get("adadelta").rho == 0.95
    assert optimizers.get("adadelta").learning_rate == 0.001
    ftrl = optimizers.get("ftrl")
    assert (ftrl.learning_rate_power, ftrl.initial_accumulator_value) == (-0.5, 0.1)
    assert (optimizers.get("lion").beta_1, optimizers.get("lion").beta_2) == (0.9, 0.99)
    for cls in (optimizers.Nadam, optimizers.Adamax, optimizers.Adadelta, optimizers.Ftrl,
                optimizers.Lion):
        opt = cls(learning_rate=0.02)
        again = optimizers.get({"class_name": cls.__name__, "config": opt.get_config()})
        assert again.get_config() == opt.get_config()
    with pytest.raises(ValueError, match="learning_rate_power"):
        optimizers.Ftrl(learning_rate_power=0.5)
    with pytest.raises(ValueError, match="l1_regularization_strength"):
        optimizers.Ftrl(l1_regularization_strength=-1.0)
    with pytest.raises(ValueError, match="beta_1"):
        optimizers.Lion(beta_1=0.0)
    with pytest.raises(NotImplementedError, match="keras.optimizers.Adafactor"):
        optimizers.get("adafactor")
    with pytest.raises(NotImplementedError, match="keras.optimizers.Muon"):
        getattr(optimizers, "Muon")  # noqa: B009
    from xpnet import keras

    with pytest.raises(NotImplementedError, match="keras.optimizers.Muon"):
        getattr(keras.optimizers, "Muon")  # noqa: B009


def test_nadam_u_product_survives_a_restore():
    """The schedule product is recomputed from the step count (as after loading a model)."""
    a, b = optimizers.Nadam(0.05), optimizers.Nadam(0.05)
    rng = np.random.default_rng(5)
    pa, pb = rng.standard_normal(4), None
    grads = rng.standard_normal((6, 4))
    for g in grads[:3]:
        a.apply_gradients([(g, pa)])
    pb = pa.copy()
    b.iterations = a.iterations
    b.set_slots(pb, {k: v.copy() for k, v in a.get_slots(pa).items()})
    for g in grads[3:]:
        a.apply_gradients([(g, pa)])
        b.apply_gradients([(g, pb)])
    np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("name", ["nadam", "adamax", "adadelta", "ftrl", "lion"])
def test_training_resumes_exactly_after_save_and_load(tmp_path, name):
    """The slots (and Nadam's schedule product, from the step count) survive a save."""
    from xpnet import keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 4)).astype("float32")
    y = rng.standard_normal((48, 1)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(name, "mse")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert type(again.optimizer).__name__.lower() == name
    for m in (model, again):
        m.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
