"""Learning-rate schedules against Keras 3's formulas, written out by hand, and as an
optimizer's learning rate through fit and a config round trip."""

import math

import numpy as np
import pytest

from xpnet import keras
from xpnet import optimizers
from xpnet import schedules


def test_exponential_decay():
    s = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
    assert math.isclose(s(0), 0.1) and math.isclose(s(5), 0.1 * 0.5 ** 0.5)
    st = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    assert [st(9), st(10), st(29), st(30)] == [0.1, 0.05, 0.025, 0.0125]


def test_piecewise_constant_decay():
    s = schedules.PiecewiseConstantDecay([100, 110], [1.0, 0.5, 0.1])
    assert [s(0), s(100), s(101), s(110), s(111)] == [1.0, 1.0, 0.5, 0.5, 0.1]
    with pytest.raises(ValueError, match="one element fewer"):
        schedules.PiecewiseConstantDecay([1, 2], [1.0, 0.5])
    with pytest.raises(ValueError, match="increase strictly"):
        schedules.PiecewiseConstantDecay([5, 2], [1.0, 0.5, 0.1])


def test_inverse_time_decay():
    s = schedules.InverseTimeDecay(0.1, decay_steps=4, decay_rate=0.5)
    assert math.isclose(s(6), 0.1 / (1 + 0.5 * 1.5))
    st = schedules.InverseTimeDecay(0.1, decay_steps=4, decay_rate=0.5, staircase=True)
    assert math.isclose(st(6), 0.1 / 1.5)


def test_cosine_decay_with_and_without_warmup():
    s = schedules.CosineDecay(0.2, decay_steps=100, alpha=0.1)
    assert math.isclose(s(0), 0.2) and math.isclose(s(100), 0.02) and math.isclose(s(500), 0.02)
    assert math.isclose(s(50), 0.2 * (0.9 * 0.5 + 0.1))
    w = schedules.CosineDecay(0.0, decay_steps=100, warmup_target=1.0, warmup_steps=10)
    assert [w(0), w(5)] == [0.0, 0.5]
    assert math.isclose(w(10), 1.0) and math.isclose(w(60), 0.5, abs_tol=1e-12)
    assert math.isclose(w(110), 0.0, abs_tol=1e-12) and math.isclose(w(1000), 0.0,
                                                                     abs_tol=1e-12)


def test_polynomial_and_restarts():
    p = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, power=2.0)
    assert math.isclose(p(5), 0.25) and p(20) == 0.0
    pc = schedules.PolynomialDecay(1.0, decay_steps=10, end_learning_rate=0.0, cycle=True)
    assert math.isclose(pc(15), 0.25)
    r = schedules.CosineDecayRestarts(1.0, first_decay_steps=10, t_mul=2.0, m_mul=0.5)
    assert math.isclose(r(0), 1.0) and math.isclose(r(10), 0.5)  # restart at half the peak
    assert math.isclose(r(20), 0.5 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert math.isclose(r(30), 0.25)


def test_schedule_drives_the_optimizer_and_round_trips(cpu):
    sched = schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)
    opt = optimizers.SGD(learning_rate=sched)
    p = cpu.asarray(np.array([0.0]))
    for _ in range(3):
        opt.apply_gradients([(np.array([1.0]), p)])
    np.testing.assert_allclose(p, [-(0.5 + 0.25 + 0.125)])  # the step count drives it
    clone = optimizers.get({"class_name": "SGD", "config": opt.get_config()})
    assert isinstance(clone._learning_rate, schedules.ExponentialDecay)
    assert clone._learning_rate.get_config() == sched.get_config()
    assert keras.optimizers.schedules.CosineDecay is schedules.CosineDecay
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'Foo'"):
        schedules.deserialize({"class_name": "Foo", "config": {}})
    with pytest.raises(ValueError, match="decay_steps must be > 0"):
        schedules.CosineDecay(0.1, decay_steps=0)


def test_fit_with_cosine_warmup(cpu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    y = x @ np.array([[1.0], [-1.0], [2.0]], np.float32)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(3,))], backend="cpu")
    sched = schedules.CosineDecay(0.0, decay_steps=40, warmup_target=0.1, warmup_steps=8)
    model.compile(optimizer=keras.optimizers.SGD(sched), loss="mse")
    h = model.fit(x, y, epochs=6, batch_size=8, verbose=0)
    assert model.optimizer.iterations == 48
    assert math.isclose(model.optimizer.learning_rate, sched(48))
    assert h.history["loss"][-1] < 0.1 * h.history["loss"][0]
