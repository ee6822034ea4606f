import numpy as np
import pytest
from conv_loops import channels_first
from conv_loops import pads_for
from conv_loops import pool
from harness import check_layer

from xpnet import kernels
from xpnet import layers
from xpnet.kernels import conv as kconv
from xpnet.kernels import reference_conv as ref


def distinct(rng, shape):
    """Inputs whose values all differ by at least 1/size: no ties for max pooling, and
    central differences (eps 1e-6) never change a window's winner."""
    n = int(np.prod(shape))
    return rng.permutation(n).reshape(shape) / n * 2.0 - 1.0


POOLS = [
    # (rank, kwargs, channels-last shape): stride 2 on odd inputs, "same", overlapping windows
    (1, {"pool_size": 2}, (2, 7, 3)),
    (1, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 8, 2)),
    (2, {}, (2, 5, 4, 3)),
    (2, {"pool_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 2)),
    (2, {"pool_size": (2, 3), "strides": 1}, (2, 4, 5, 2)),
    (2, {"pool_size": 2, "padding": "same"}, (1, 5, 3, 2)),
    (3, {"pool_size": 2, "strides": (1, 2, 2), "padding": "same"}, (1, 3, 5, 4, 2)),
]
MAX = {1: layers.MaxPooling1D, 2: layers.MaxPooling2D, 3: layers.MaxPooling3D}
AVG = {1: layers.AveragePooling1D, 2: layers.AveragePooling2D, 3: layers.AveragePooling3D}


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("rank,kwargs,shape", POOLS)
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_gradients(backend, mode, rank, kwargs, shape, data_format):
    cls = (MAX if mode == "max" else AVG)[rank]
    shape = shape if data_format == "channels_last" else channels_first(shape)
    check_layer(backend, cls, {**kwargs, "data_format": data_format}, input_shape=shape,
                x_fn=distinct if mode == "max" else None, expected_num_params=0)


@pytest.mark.parametrize("rank,kwargs,shape", POOLS)
@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("use_kernels", [True, False], ids=["njit", "composition"])
def test_pooling_forward_matches_loop_reference(cpu, mode, rank, kwargs, shape, use_kernels):
    layer = (MAX if mode == "max" else AVG)[rank](dtype="float64", **kwargs)
    x = np.random.default_rng(0).standard_normal(shape)
    was = kernels.enabled()
    try:
        kernels.enabled(use_kernels)
        y = layer(x)
    finally:
        kernels.enabled(was)
    pads = pads_for(shape[1:-1], layer.pool_size, layer.strides, (1,) * rank, layer.padding)
    want = pool(x, layer.pool_size, layer.strides, pads, mode)
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + want.shape[1:]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_pooling_defaults_as_keras():
    assert layers.MaxPooling2D().get_config()["pool_size"] == (2, 2)
    assert layers.MaxPooling2D(3).strides == (3, 3)  # strides default to pool_size
    assert layers.AveragePooling1D().padding == "valid"
    assert layers.MaxPooling3D().pool_size == (2, 2, 2)
    assert layers.MaxPooling2D().data_format == "channels_last"


def test_average_pooling_same_does_not_count_padding(cpu):
    y = layers.AveragePooling1D(2, padding="same", dtype="float64")(
        np.array([[[1.0], [2.0], [3.0]]]))
    np.testing.assert_allclose(y[0, :, 0], [1.5, 3.0])  # the last window holds only 3.0


def test_max_pooling_gradient_goes_to_the_first_maximum(backend):
    """Ties route the whole gradient to the first winner, as TensorFlow."""
    xp = backend.xp
    layer = layers.MaxPooling2D(2, dtype="float64")
    x = backend.asarray(np.array([[[[1.0], [1.0]], [[0.5], [1.0]]]]), dtype=xp.float64)
    layer.build_on(backend, (None, 2, 2, 1))
    y, ctx = layer.forward(x)
    dx = backend.to_numpy(layer.backward(ctx, backend.asarray(np.array([[[[3.0]]]]),
                                                              dtype=xp.float64)))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("shape,k,s,padding", [
    ((2, 8, 8, 3), (2, 2), (2, 2), "valid"),
    ((2, 7, 9, 2), (3, 3), (2, 2), "same"),
    ((2, 6, 5, 1), (2, 3), (1, 1), "valid"),
    ((2, 5, 5, 4), (2, 2), (2, 2), "same"),
    ((3, 9, 2), (3,), (2,), "same"),
])
def test_max_pool_kernels_match_composition_with_ties(cpu, njit, shape, k, s, padding):
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=shape).astype(np.float32)  # many ties
    win = kconv.window(shape[1:-1], k, s, (1,) * len(k), padding)
    y, arg = kconv.max_pool(x, win)
    y_ref, arg_ref = ref.max_pool(x, win, xp)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(kconv.max_pool_grad(dy, arg, win),
                               ref.max_pool_grad(dy, arg_ref, win, xp), rtol=1e-6, atol=1e-6)


GLOBAL = [
    (layers.GlobalAveragePooling1D, (2, 5, 3)), (layers.GlobalMaxPooling1D, (2, 5, 3)),
    (layers.GlobalAveragePooling2D, (2, 3, 4, 2)), (layers.GlobalMaxPooling2D, (2, 3, 4, 2)),
    (layers.GlobalAveragePooling3D, (1, 2, 3, 2, 2)), (layers.GlobalMaxPooling3D, (1, 2, 3, 2, 2)),
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls,shape", GLOBAL)
def test_global_pooling_gradients(backend, cls, shape, data_format, keepdims):
    rank = len(shape) - 2
    c = shape[-1]
    shape = shape if data_format == "channels_last" else channels_first(shape)
    want = (shape[0], c) if not keepdims else \
        ((shape[0],) + (1,) * rank + (c,) if data_format == "channels_last"
         else (shape[0], c) + (1,) * rank)
    check_layer(backend, cls, {"data_format": data_format, "keepdims": keepdims},
                input_shape=shape, expected_output_shape=want,
                x_fn=distinct if "Max" in cls.__name__ else None)


def test_global_pooling_values(cpu):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(layers.GlobalAveragePooling2D(dtype="float64")(x),
                               x.mean(axis=(1, 2)))
    np.testing.assert_allclose(layers.GlobalMaxPooling2D(dtype="float64",
                                                         data_format="channels_first")(x),
                               x.max(axis=(2, 3)))


def test_pooling_rejects_bad_shapes(cpu):
    with pytest.raises(ValueError, match=r"pool: expects inputs of rank 4 .* got shape"):
        layers.MaxPooling2D(name="pool")(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"small: input shape \(None, 2, 5, 1\) is smaller"):
        layers.MaxPooling2D(3, name="small")(np.zeros((1, 2, 5, 1), np.float32))
    with pytest.raises(ValueError, match="padding must be one of"):
        layers.AveragePooling2D(padding="full")
    with pytest.raises(ValueError, match=r"pool_size must be an int or a tuple of 2 ints"):
        layers.MaxPooling2D((2, 0))
