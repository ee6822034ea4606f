import math

import numpy as np
import pytest
from harness import check_layer

from xpnet import activations
from xpnet.kernels import reference
from xpnet.layers import ELU
from xpnet.layers import Activation
from xpnet.layers import LeakyReLU
from xpnet.layers import ReLU
from xpnet.layers import Softmax

KINKS = {"relu": 0.0, "relu6": [0.0, 6.0], "leaky_relu": 0.0, "elu": 0.0, "selu": 0.0,
         "hard_sigmoid": [-3.0, 3.0]}
ALL = ["linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "sigmoid",
       "hard_sigmoid", "tanh", "softplus", "softsign", "silu", "swish", "exponential",
       "softmax", "log_softmax"]


@pytest.mark.parametrize("name", ALL)
def test_activation_layer(backend, name):
    wide = name in ("relu6", "hard_sigmoid")
    check_layer(backend, Activation, {"activation": name}, input_shape=(3, 5),
                expected_output_shape=(3, 5), expected_num_params=0,
                dodge=KINKS.get(name), low=-8.0 if wide else -2.0, high=8.0 if wide else 2.0)


@pytest.mark.parametrize("cls,kwargs", [(ReLU, {}), (ReLU, {"negative_slope": 0.1}),
                                        (LeakyReLU, {}), (LeakyReLU, {"negative_slope": 0.01}),
                                        (ELU, {"alpha": 0.5}), (Softmax, {})])
def test_parameterised_activation_layers(backend, cls, kwargs):
    check_layer(backend, cls, kwargs, input_shape=(4, 3), expected_output_shape=(4, 3),
                dodge=0.0)


def test_keras_defaults(cpu):
    x = cpu.asarray(np.array([-1.0, 2.0]))
    assert np.allclose(activations.leaky_relu(x), [-0.2, 2.0])  # string/function: 0.2
    assert LeakyReLU().negative_slope == 0.3  # the layer: 0.3, as Keras 3
    assert activations.get("leaky_relu") == ("leaky_relu", 0.2)
    assert activations.get("swish") == ("silu", None)
    assert activations.get(activations.relu) == ("relu", None)
    # exact GELU (erf) is Keras 3's default; the tanh form differs by < 5e-4
    z = cpu.asarray(np.linspace(-5, 5, 1001))
    exact, approx = activations.gelu(z), activations.gelu(z, approximate=True)
    assert 1e-5 < np.max(np.abs(exact - approx)) < 5e-4


def test_erf_matches_math_erf(cpu):
    x = np.concatenate([np.linspace(-10, 10, 20001), [0.0, 1e-300, -1e-8, 0.999999, 1.0]])
    got = reference.erf(cpu.asarray(x), cpu.xp)
    want = np.array([math.erf(v) for v in x])
    assert np.max(np.abs(got - want)) < 5e-16


@pytest.mark.parametrize("name", ["sigmoid", "softplus", "softmax", "log_softmax", "tanh",
                                  "silu", "gelu", "elu", "selu", "softsign"])
def test_hostile_inputs_stay_finite(backend, name):
    xp = backend.xp
    z = backend.asarray(np.array([[-1e4, 0.0, 1e4], [3e4, 3e4, -3e4]]), dtype=xp.float32)
    y = activations.__dict__[name](z)
    assert bool(xp.all(xp.isfinite(y)))


def test_softmax_properties(backend):
    xp = backend.xp
    rng = np.random.default_rng(0)
    z = rng.standard_normal((5, 7)) * 50
    y = activations.softmax(backend.asarray(z))
    shifted = activations.softmax(backend.asarray(z + 1000.0))
    np.testing.assert_allclose(backend.to_numpy(xp.sum(y, axis=-1)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(y), backend.to_numpy(shifted), atol=1e-12)
    axis0 = activations.softmax(backend.asarray(z), axis=0)
    np.testing.assert_allclose(backend.to_numpy(xp.sum(axis0, axis=0)), 1.0, rtol=1e-12)


def test_unknown_and_custom_activations_are_refused():
    with pytest.raises(ValueError, match="unknown activation 'relu7'"):
        activations.get("relu7")
    with pytest.raises(ValueError, match="needs its gradient"):
        activations.get(lambda x: x)
