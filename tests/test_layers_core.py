import numpy as np
import pytest
from harness import check_layer

from xpnet.layers import Add
from xpnet.layers import Average
from xpnet.layers import Concatenate
from xpnet.layers import Dense
from xpnet.layers import Flatten
from xpnet.layers import Identity
from xpnet.layers import Multiply
from xpnet.layers import Reshape
from xpnet.layers import Subtract


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "gelu", "softmax",
                                        "leaky_relu", "elu", "silu"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense(backend, activation, use_bias):
    check_layer(backend, Dense, {"units": 3, "activation": activation, "use_bias": use_bias},
                input_shape=(4, 5), expected_output_shape=(4, 3),
                expected_weights={"kernel": (5, 3), **({"bias": (3,)} if use_bias else {})})


def test_dense_on_sequences(backend):
    check_layer(backend, Dense, {"units": 2, "activation": "tanh"}, input_shape=(2, 3, 4),
                expected_output_shape=(2, 3, 2))


def test_dense_is_linear_without_activation(cpu):
    layer = Dense(3, bias_initializer="random_normal")
    layer.build_on(cpu, (None, 4))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    f = lambda x: layer.forward(x.astype(np.float32))[0] - layer.params["bias"]  # noqa: E731
    np.testing.assert_allclose(f(2 * a - b), 2 * f(a) - f(b), rtol=1e-5, atol=1e-5)


def test_dense_rejects_bad_arguments_and_shapes(cpu):
    with pytest.raises(ValueError, match="units must be a positive int, got units=0"):
        Dense(0)
    layer = Dense(3, name="head")
    layer.build_on(cpu, (None, 4))
    with pytest.raises(ValueError, match=r"head: expected input width 4 .* got input shape "
                                         r"\(None, 7\)"):
        layer(np.zeros((2, 7), np.float32))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        Dense(3, unit_count=4)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_flatten(backend, data_format):
    check_layer(backend, Flatten, {"data_format": data_format}, input_shape=(2, 3, 2, 2),
                expected_output_shape=(2, 12))


def test_flatten_channels_first_matches_channels_last(cpu):
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (batch, C, W)
    first = Flatten(data_format="channels_first")(x)
    last = Flatten()(np.moveaxis(x, 1, -1))
    np.testing.assert_array_equal(first, last)


def test_reshape(backend):
    check_layer(backend, Reshape, {"target_shape": (3, -1)}, input_shape=(2, 6),
                expected_output_shape=(2, 3, 2))
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((4, 2)).compute_output_shape((None, 6))


def test_identity(backend):
    check_layer(backend, Identity, {}, input_shape=(2, 3), expected_output_shape=(2, 3))


@pytest.mark.parametrize("cls", [Add, Average, Multiply])
def test_elementwise_merge(backend, cls):
    check_layer(backend, cls, {}, input_shape=[(2, 3), (2, 3), (2, 3)],
                expected_output_shape=(2, 3))


def test_subtract(backend):
    check_layer(backend, Subtract, {}, input_shape=[(2, 3), (2, 3)],
                expected_output_shape=(2, 3))


@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate(backend, axis):
    shapes = [(2, 3, 2), (2, 3, 4)] if axis == -1 else [(2, 1, 4), (2, 3, 4)]
    out = (2, 3, 6) if axis == -1 else (2, 4, 4)
    check_layer(backend, Concatenate, {"axis": axis}, input_shape=shapes,
                expected_output_shape=out)


def test_merge_shape_errors():
    with pytest.raises(ValueError, match="same shape"):
        Add().check_input_shape([(None, 3), (None, 4)])
    with pytest.raises(ValueError, match="list of at least 2"):
        Add().check_input_shape((None, 3))
    with pytest.raises(ValueError, match="differ off axis"):
        Concatenate().check_input_shape([(None, 3, 2), (None, 4, 2)])
