import numpy as np
import pytest
from conv_loops import channels_first
from conv_loops import conv
from conv_loops import conv_transpose
from conv_loops import pads_for
from harness import check_layer

from xpnet import Sequential
from xpnet import kernels
from xpnet import layers
from xpnet.kernels import conv as kconv
from xpnet.kernels import reference_conv as ref


def _case(cls, kwargs, shape, data_format):
    kwargs = {**kwargs, "data_format": data_format}
    return cls, kwargs, shape if data_format == "channels_last" else channels_first(shape)


# Odd sizes on purpose: stride 2 on odd inputs, dilation, groups, even kernels with "same".
CONV2D = [
    ({"filters": 4, "kernel_size": 3, "strides": 2}, (2, 7, 5, 3)),
    ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 5, 6, 2)),
    ({"filters": 3, "kernel_size": (4, 2), "padding": "same", "activation": "tanh"},
     (2, 5, 4, 2)),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": (2, 1), "padding": "same"},
     (2, 5, 4, 3)),
    ({"filters": 4, "kernel_size": 2, "groups": 2, "use_bias": False}, (2, 4, 5, 4)),
    ({"filters": 6, "kernel_size": 1, "activation": "relu"}, (2, 3, 4, 3)),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kwargs,shape", CONV2D)
def test_conv2d_gradients(backend, kwargs, shape, data_format):
    cls, kw, shape = _case(layers.Conv2D, kwargs, shape, data_format)
    k = kw["kernel_size"]
    k = (k, k) if isinstance(k, int) else k
    c = shape[-1] if data_format == "channels_last" else shape[1]
    expected = {"kernel": k + (c // kw.get("groups", 1), kw["filters"])}
    if kw.get("use_bias", True):
        expected["bias"] = (kw["filters"],)
    check_layer(backend, cls, kw, input_shape=shape, expected_weights=expected)


CONV1D = [
    ({"filters": 3, "kernel_size": 3, "strides": 2}, (2, 9, 2)),
    ({"filters": 2, "kernel_size": 4, "padding": "same"}, (2, 7, 3)),
    ({"filters": 2, "kernel_size": 3, "padding": "causal", "dilation_rate": 2}, (2, 6, 2)),
    ({"filters": 4, "kernel_size": 2, "groups": 2, "activation": "sigmoid"}, (2, 5, 2)),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kwargs,shape", CONV1D)
def test_conv1d_gradients(backend, kwargs, shape, data_format):
    check_layer(backend, *_case(layers.Conv1D, kwargs, shape, data_format))


CONV3D = [
    ({"filters": 2, "kernel_size": 2, "strides": (2, 1, 2), "padding": "same"}, (1, 3, 4, 3, 2)),
    ({"filters": 2, "kernel_size": (2, 3, 2), "dilation_rate": (1, 1, 2)}, (2, 3, 3, 4, 1)),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kwargs,shape", CONV3D)
def test_conv3d_gradients(backend, kwargs, shape, data_format):
    check_layer(backend, *_case(layers.Conv3D, kwargs, shape, data_format))


FORWARD = [
    (layers.Conv1D, {"filters": 3, "kernel_size": 3, "strides": 2}, (2, 10, 2)),
    (layers.Conv1D, {"filters": 3, "kernel_size": 4, "padding": "causal"}, (2, 7, 2)),
    (layers.Conv1D, {"filters": 4, "kernel_size": 3, "padding": "same", "dilation_rate": 2,
                     "groups": 2}, (2, 9, 4)),
    (layers.Conv2D, {"filters": 3, "kernel_size": (4, 2), "padding": "same"}, (2, 5, 6, 3)),
    (layers.Conv2D, {"filters": 5, "kernel_size": 3, "strides": (2, 3), "padding": "same"},
     (2, 9, 8, 4)),
    (layers.Conv2D, {"filters": 6, "kernel_size": 3, "groups": 3, "dilation_rate": 2},
     (1, 7, 8, 6)),
    (layers.Conv3D, {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"},
     (2, 3, 5, 4, 2)),
]


@pytest.mark.parametrize("cls,kwargs,shape", FORWARD)
@pytest.mark.parametrize("use_kernels", [True, False], ids=["njit", "composition"])
def test_conv_forward_matches_loop_reference(cpu, cls, kwargs, shape, use_kernels):
    layer = cls(dtype="float64", bias_initializer="random_normal", **kwargs)
    x = np.random.default_rng(1).standard_normal(shape)
    was = kernels.enabled()
    try:
        kernels.enabled(use_kernels)
        y = layer(x)
    finally:
        kernels.enabled(was)
    strides, dilation = layer.strides, layer.dilation_rate
    pads = pads_for(shape[1:-1], layer.kernel_size, strides, dilation, layer.padding)
    want = conv(x, np.asarray(layer.params["kernel"]), strides, dilation, pads, layer.groups)
    want = want + np.asarray(layer.params["bias"])
    assert y.shape == want.shape
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + want.shape[1:]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


def test_same_padding_puts_the_odd_pixel_at_the_end(cpu):
    """Keras: kernel 4 at stride 1 pads 1 before and 2 after; kernel 2 pads 0 and 1."""
    assert kconv.window((5,), (4,), (1,), (1,), "same").pads == ((1, 2),)
    assert kconv.window((6, 5), (2, 3), (2, 2), (1, 1), "same").pads == ((0, 0), (1, 1))
    assert kconv.window((5,), (3,), (2,), (1,), "same").pads == ((1, 1),)
    layer = layers.Conv1D(1, 4, padding="same", use_bias=False, dtype="float64",
                          kernel_initializer="ones")
    y = layer(np.arange(1.0, 6.0)[None, :, None])[0, :, 0]
    # output i sums inputs i-1 .. i+2 (zeros beyond the ends)
    np.testing.assert_allclose(y, [1 + 2 + 3, 1 + 2 + 3 + 4, 2 + 3 + 4 + 5, 3 + 4 + 5, 4 + 5])


@pytest.mark.parametrize("activation", ["softmax", "log_softmax"])
def test_channels_first_softmax_is_over_the_last_axis_as_keras(backend, activation):
    """Keras applies a layer's softmax over the output's last axis, whatever the format."""
    check_layer(backend, layers.Conv2D, {"filters": 3, "kernel_size": 2, "activation": activation,
                                         "data_format": "channels_first"},
                input_shape=(2, 2, 4, 5), expected_output_shape=(2, 3, 3, 4))
    layer = layers.Conv2D(3, 2, activation="softmax", data_format="channels_first",
                          dtype="float64")
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 5))
    y = backend.to_numpy(layer(backend.asarray(x, dtype=backend.xp.float64)))
    np.testing.assert_allclose(y.sum(axis=-1), 1.0, rtol=1e-12)


def test_channels_first_matches_channels_last(cpu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3))
    a = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", dtype="float64")
    b = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu", dtype="float64",
                      data_format="channels_first")
    ya = a(x)
    b.build_on(cpu, (None, 3, 6, 5))
    b.set_weights(a.get_weights())
    yb = b(np.moveaxis(x, -1, 1))
    np.testing.assert_allclose(np.moveaxis(yb, 1, -1), ya, rtol=1e-12)


# -- transposed convolutions ---------------------------------------------------------------
TRANSPOSE = [
    ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2}, (2, 3, 3, 3)),
    ({"filters": 2, "kernel_size": 2, "strides": 3}, (2, 2, 3, 2)),   # stride > kernel
    ({"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"}, (1, 3, 2, 2)),
    ({"filters": 2, "kernel_size": 3, "dilation_rate": 2, "padding": "same",
      "activation": "tanh"}, (2, 3, 4, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}, (2, 3, 2, 2)),
]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kwargs,shape", TRANSPOSE)
def test_conv2d_transpose_gradients(backend, kwargs, shape, data_format):
    cls, kw, shape = _case(layers.Conv2DTranspose, kwargs, shape, data_format)
    c = shape[-1] if data_format == "channels_last" else shape[1]
    check_layer(backend, cls, kw, input_shape=shape,
                expected_weights={"kernel": (kw["kernel_size"],) * 2 + (kw["filters"], c),
                                  "bias": (kw["filters"],)})


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls,kwargs,shape", [
    (layers.Conv1DTranspose, {"filters": 2, "kernel_size": 3, "strides": 2}, (2, 4, 3)),
    (layers.Conv3DTranspose, {"filters": 2, "kernel_size": 2, "strides": 2, "padding": "same"},
     (1, 2, 3, 2, 2)),
])
def test_conv_transpose_1d_3d_gradients(backend, cls, kwargs, shape, data_format):
    check_layer(backend, *_case(cls, kwargs, shape, data_format))


@pytest.mark.parametrize("size,k,s,padding,output_padding,out", [
    (5, 3, 2, "same", None, 10), (5, 3, 2, "valid", None, 11), (5, 2, 3, "valid", None, 15),
    (5, 4, 2, "same", None, 10), (5, 1, 1, "valid", None, 5), (5, 3, 2, "valid", 1, 12),
    (5, 3, 2, "same", 1, 10), (5, 4, 3, "same", 2, 14),
])
def test_conv_transpose_output_length_as_keras(size, k, s, padding, output_padding, out):
    assert kconv.transpose_output_length(size, k, s, 1, padding, output_padding) == out
    layer = layers.Conv1DTranspose(1, k, strides=s, padding=padding,
                                   output_padding=output_padding)
    assert layer.compute_output_shape((None, size, 2)) == (None, out, 1)


@pytest.mark.parametrize("k,s,d,padding,size", [
    (3, 2, 1, "same", 4), (3, 2, 1, "valid", 3), (2, 3, 1, "valid", 3), (4, 2, 1, "same", 3),
    (3, 1, 2, "same", 5), (5, 3, 1, "same", 2),
])
def test_conv_transpose_is_the_adjoint_of_conv(cpu, k, s, d, padding, size):
    """TensorFlow defines conv2d_transpose as the gradient of conv2d: with the same kernel,
    <convT(x), y> == <x, conv(y)> for the convolution with the same padding and stride."""
    rng = np.random.default_rng(0)
    t = layers.Conv2DTranspose(3, k, strides=s, dilation_rate=d, padding=padding,
                               use_bias=False, dtype="float64")
    x = rng.standard_normal((2, size, size + 1, 2))
    y_t = t(x)
    c = layers.Conv2D(2, k, strides=s, dilation_rate=d, padding=padding, use_bias=False,
                      dtype="float64")
    c.build_on(cpu, (None,) + y_t.shape[1:])
    c.set_weights(t.get_weights())
    probe = rng.standard_normal(y_t.shape)
    conv_probe = c(probe)
    assert conv_probe.shape == x.shape
    np.testing.assert_allclose(np.sum(y_t * probe), np.sum(x * conv_probe), rtol=1e-12)


@pytest.mark.parametrize("kwargs,shape", [
    ({"filters": 3, "kernel_size": 3, "strides": 2, "padding": "same"}, (2, 3, 4, 2)),
    ({"filters": 2, "kernel_size": 2, "strides": 3}, (1, 2, 3, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1, "padding": "same"},
     (2, 3, 3, 2)),
    ({"filters": 2, "kernel_size": 4, "strides": 2, "padding": "same"}, (1, 3, 2, 3)),
])
@pytest.mark.parametrize("use_kernels", [True, False], ids=["njit", "composition"])
def test_conv_transpose_forward_matches_loop_reference(cpu, kwargs, shape, use_kernels):
    layer = layers.Conv2DTranspose(dtype="float64", bias_initializer="random_normal", **kwargs)
    x = np.random.default_rng(2).standard_normal(shape)
    was = kernels.enabled()
    try:
        kernels.enabled(use_kernels)
        y = layer(x)
    finally:
        kernels.enabled(was)
    win = layer._window(shape[1:-1])
    crop = [b for b, _ in win.pads]
    want = conv_transpose(x, np.asarray(layer.params["kernel"]), layer.strides,
                          layer.dilation_rate, y.shape[1:-1], crop)
    np.testing.assert_allclose(y, want + np.asarray(layer.params["bias"]), rtol=1e-12,
                               atol=1e-12)


# -- depthwise and separable ---------------------------------------------------------------
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("kwargs,shape", [
    ({"kernel_size": 3, "depth_multiplier": 2, "padding": "same", "strides": 2}, (2, 5, 4, 3)),
    ({"kernel_size": (2, 3), "dilation_rate": 2, "activation": "relu"}, (2, 5, 6, 2)),
])
def test_depthwise_conv2d_gradients(backend, kwargs, shape, data_format):
    cls, kw, shape = _case(layers.DepthwiseConv2D, kwargs, shape, data_format)
    c = shape[-1] if data_format == "channels_last" else shape[1]
    k = kw["kernel_size"]
    k = (k, k) if isinstance(k, int) else k
    m = kw.get("depth_multiplier", 1)
    check_layer(backend, cls, kw, input_shape=shape,
                expected_weights={"kernel": k + (c, m), "bias": (c * m,)})


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_depthwise_conv1d_gradients(backend, data_format):
    check_layer(backend, *_case(layers.DepthwiseConv1D, {"kernel_size": 3, "depth_multiplier": 2,
                                                         "strides": 2}, (2, 7, 2), data_format))


def test_depthwise_conv2d_matches_per_channel_convolutions(cpu):
    """Output channel c*m + j is input channel c convolved with kernel[..., c, j]."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3))
    layer = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=False,
                                   dtype="float64")
    y = layer(x)
    k = np.asarray(layer.params["kernel"])
    pads = pads_for((6, 5), (3, 3), (1, 1), (1, 1), "same")
    for c in range(3):
        for j in range(2):
            want = conv(x[..., c:c + 1], k[:, :, c:c + 1, j:j + 1], (1, 1), (1, 1), pads)
            np.testing.assert_allclose(y[..., c * 2 + j], want[..., 0], rtol=1e-12)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_separable_conv2d_gradients(backend, data_format):
    cls, kw, shape = _case(layers.SeparableConv2D, {"filters": 3, "kernel_size": 3,
                                                    "depth_multiplier": 2, "strides": 2,
                                                    "padding": "same"}, (2, 5, 4, 2),
                           data_format)
    check_layer(backend, cls, kw, input_shape=shape,
                expected_weights={"depthwise_kernel": (3, 3, 2, 2),
                                  "pointwise_kernel": (1, 1, 4, 3), "bias": (3,)})


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_separable_conv1d_gradients(backend, data_format):
    check_layer(backend, *_case(layers.SeparableConv1D, {"filters": 2, "kernel_size": 2,
                                                         "activation": "tanh"}, (2, 5, 3),
                                data_format))


def test_separable_is_depthwise_then_pointwise(cpu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 5, 2))
    sep = layers.SeparableConv2D(3, 3, depth_multiplier=2, bias_initializer="random_normal",
                                 dtype="float64")
    y = sep(x)
    dw, pw, b = sep.get_weights()
    depth = layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False, dtype="float64")
    depth.build_on(cpu, (None, 5, 5, 2))
    depth.set_weights([dw])
    point = layers.Conv2D(3, 1, dtype="float64")
    point.build_on(cpu, (None, 3, 3, 4))
    point.set_weights([pw, b])
    np.testing.assert_allclose(y, point(depth(x)), rtol=1e-12)


# -- the engine's Numba kernels against the composition -----------------------------------
@pytest.mark.parametrize("shape,k,s,d,padding", [
    ((2, 7, 6, 1), (3, 3), (1, 1), (1, 1), "valid"),
    ((2, 7, 6, 3), (3, 2), (2, 2), (1, 1), "same"),
    ((2, 8, 5, 4), (4, 4), (1, 1), (1, 1), "same"),
    ((1, 9, 9, 2), (3, 3), (1, 1), (2, 3), "same"),
    ((3, 10, 5), (3,), (2,), (1,), "same"),
    ((3, 10, 2), (4,), (1,), (2,), "causal"),
])
def test_im2col_col2im_kernels_match_composition(cpu, njit, shape, k, s, d, padding):
    import array_api_compat.numpy as xp

    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    win = kconv.window(shape[1:-1], k, s, d, padding)
    cols = kconv.im2col(x, win)
    np.testing.assert_array_equal(cols, ref.im2col(x, win, xp))
    g = rng.standard_normal(cols.shape).astype(np.float32)
    np.testing.assert_allclose(kconv.col2im(g, win), ref.col2im(g, win, xp), rtol=1e-5,
                               atol=1e-5)
    # col2im is im2col's adjoint: <im2col(x), g> == <x, col2im(g)>
    np.testing.assert_allclose(np.sum(cols.astype(np.float64) * g),
                               np.sum(x.astype(np.float64) * kconv.col2im(g, win)), rtol=1e-5)


# -- arguments, shapes, weights, regularizers ---------------------------------------------
def test_conv_rejects_bad_arguments(cpu):
    with pytest.raises(ValueError, match="filters must be a positive int"):
        layers.Conv2D(0, 3)
    with pytest.raises(ValueError, match="divisible by the number of groups"):
        layers.Conv2D(5, 3, groups=2)
    with pytest.raises(ValueError, match="strides > 1` not supported"):
        layers.Conv2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="padding must be one of"):
        layers.Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match="kernel_size must be an int or a tuple of 2"):
        layers.Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="data_format must be"):
        layers.Conv2D(2, 3, data_format="nhwc")
    with pytest.raises(ValueError, match="must be greater than output padding"):
        layers.Conv2DTranspose(2, 3, strides=2, output_padding=2)


def test_conv_rejects_bad_shapes(cpu):
    layer = layers.Conv2D(2, 3, groups=2, name="c2")
    with pytest.raises(ValueError, match=r"c2: expects inputs of rank 4 .* got shape"):
        layer(np.zeros((2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"c2: input channels must be divisible by groups=2"):
        layer(np.zeros((2, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"c2: input shape \(None, 2, 5, 4\) is too small"):
        layer(np.zeros((2, 2, 5, 4), np.float32))
    layer(np.zeros((2, 5, 5, 4), np.float32))
    with pytest.raises(ValueError, match=r"c2: expected 4 input channels, got input shape"):
        layer(np.zeros((2, 5, 5, 6), np.float32))
    # a fully convolutional layer accepts other spatial sizes once built
    assert layer(np.zeros((1, 9, 7, 4), np.float32)).shape == (1, 7, 5, 2)


def test_conv_unknown_spatial_sizes(cpu):
    layer = layers.Conv2D(3, 3, strides=2, padding="same")
    assert layer.compute_output_shape((None, None, 9, 2)) == (None, None, 5, 3)
    t = layers.Conv2DTranspose(3, 3, strides=2, padding="same", data_format="channels_first")
    assert t.compute_output_shape((None, 2, None, 4)) == (None, 3, None, 8)


def test_conv_kernel_regularizer_adds_to_the_loss(cpu):
    model = Sequential([layers.Conv2D(2, 3, kernel_regularizer="l2", bias_regularizer="l1",
                                      input_shape=(5, 5, 1)),
                        layers.Flatten(), layers.Dense(1)], backend="cpu")
    model.compile(optimizer="sgd", loss="mse")
    conv_layer = model.layers[0]
    assert set(conv_layer.regularizers) == {"kernel", "bias"}
    x = np.random.default_rng(0).standard_normal((4, 5, 5, 1)).astype(np.float32)
    y = np.zeros((4, 1), np.float32)
    plain = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    penalty = 0.01 * float(np.sum(conv_layer.get_weights()[0] ** 2))
    assert model.test_on_batch(x, y) == pytest.approx(plain + penalty, rel=1e-5)


@pytest.mark.parametrize("kernel_size, c", [(3, 4), (2, 1)])
def test_threaded_chunks_match_one_thread(kernel_size, c):
    """Every NumPy pass splits the batch over ``kernels.threads``; on 3 threads (uneven
    chunks of a batch of 7) each gives the numbers it gives on one."""
    from xpnet.kernels import conv as kconv
    from xpnet.kernels import threads

    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 9, 8, c)).astype(np.float32)
    kernel = rng.standard_normal((kernel_size, kernel_size, c, 5)).astype(np.float32)
    bias = rng.standard_normal(5).astype(np.float32)
    win = kconv.window((9, 8), (kernel_size,) * 2, (2, 1), (1, 1), "same")
    pool = kconv.window((9, 8), (3, 3), (2, 2), (1, 1), "same")

    def passes():
        y, ctx = kconv.conv_fused_forward(x, kernel, bias, win, 1, "relu")
        dy = np.cos(y)
        dk, db, dx = kconv.conv_fused_backward(ctx, dy, kernel)
        dk1, db1, _ = kconv.conv_fused_backward(ctx, dy, kernel, need_dx=False)
        cols = kconv.im2col(x, win)
        back = kconv.col2im(cols, win)
        pooled, arg = kconv.max_pool(x, pool)
        dpool = kconv.max_pool_grad(pooled, arg, pool)
        z, _ = kconv.bias_activation(x.reshape(-1, c) + 0, bias[:c], "relu")
        dz, dbias = kconv.activation_bias_grad("relu", np.sin(z), z)
        return [y, dk, db, dx, dk1, db1, cols, back, pooled, arg, dpool, z, dz, dbias]

    with threads.using(1):
        one = passes()
    with threads.using(3):
        assert threads.count() == 3
        three = passes()
    for a, b in zip(one, three):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


FUSED_CASES = [
    # (spatial sizes, channels, kernel, strides, dilation, padding, groups)
    ((9, 8), 1, (3, 3), (1, 1), (1, 1), "valid", 1),     # one channel: NumPy's slices
    ((9, 8), 3, (3, 2), (2, 1), (1, 1), "same", 1),      # stride, even kernel, padding
    ((10, 9), 2, (3, 3), (1, 1), (2, 2), "same", 1),     # dilation
    ((9, 8), 5, (3, 3), (2, 2), (1, 1), "same", 1),      # wide columns: OpenBLAS's dkernel
    ((7, 7), 4, (1, 1), (1, 1), (1, 1), "valid", 1),     # pointwise: columns are the input
    ((6, 5), 40, (1, 1), (1, 1), (1, 1), "valid", 1),    # pointwise, wide
    ((11,), 2, (4,), (1,), (1,), "causal", 1),           # 1-D
    ((11,), 9, (4,), (2,), (1,), "same", 1),             # 1-D, stride
    ((9, 8), 4, (3, 3), (1, 1), (1, 1), "same", 2),      # groups
    ((9, 8), 3, (3, 2), (2, 1), (1, 1), "same", 3),      # depthwise (one channel a group)
    ((7, 6), 6, (1, 1), (1, 1), (1, 1), "valid", 3),     # grouped pointwise
    ((12,), 6, (3,), (1,), (2,), "causal", 2),           # 1-D, groups, dilation
]


@pytest.mark.parametrize("kind", [None, "relu"])
@pytest.mark.parametrize("sizes, c, k, s, d, padding, groups", FUSED_CASES)
def test_fused_conv_matches_the_engine(sizes, c, k, s, d, padding, groups, kind):
    """The chunked NumPy pipeline (im2col + product with bias and ReLU, groups side by side
    in one column array; the narrow kernel gradient without ``dx``) against the array-API
    engine composed with the bias and the activation, float64, 2 threads."""
    from xpnet.kernels import reference_conv as ref
    from xpnet.kernels import threads
    from xpnet.kernels.reference import activation_grad

    rng = np.random.default_rng(len(sizes) * 100 + c)
    x = rng.standard_normal((5,) + sizes + (c,))
    kernel = rng.standard_normal(k + (c // groups, 6))
    bias = rng.standard_normal(6)
    win = kconv.window(sizes, k, s, d, padding)
    with threads.using(2):
        y, ctx = kconv.conv_fused_forward(x, kernel, bias, win, groups, kind)
        dy = rng.standard_normal(y.shape)
        dk, db, dx = kconv.conv_fused_backward(ctx, dy, kernel)
        dk2, db2, none = kconv.conv_fused_backward(ctx, dy, kernel, need_dx=False)
    z, cols = ref.conv_forward(x, kernel, win, groups, np)
    z = z + bias
    want = z if kind is None else np.maximum(z, 0)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    dz = dy if kind is None else activation_grad("relu", dy, want, np)
    dk_ref, dx_ref = ref.conv_backward(dz, cols, kernel, win, groups, np)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db, dz.reshape(-1, 6).sum(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dk2, dk, rtol=1e-12)
    assert none is None
    # the bias-free, activation-free entry points the other layers use
    z0, ctx0 = kconv.conv_forward(x, kernel, win, groups)
    np.testing.assert_allclose(z0, z - bias, rtol=1e-12, atol=1e-12)
    dk0, dx0 = kconv.conv_backward(dy, ctx0, kernel, win, groups)
    dk_ref0, dx_ref0 = ref.conv_backward(dy, cols, kernel, win, groups, np)
    np.testing.assert_allclose(dk0, dk_ref0, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx0, dx_ref0, rtol=1e-12, atol=1e-12)


def test_fused_conv_dispatch(monkeypatch):
    """Which convolutions take the fused NumPy pipeline, and which loops inside it."""
    from xpnet.kernels import _cpu_conv

    calls = []
    for name in ("im2col", "grad_narrow"):
        original = getattr(_cpu_conv, name)
        monkeypatch.setattr(_cpu_conv, name, lambda *a, _f=original, _n=name: (
            calls.append(_n), _f(*a))[1])
    rng = np.random.default_rng(0)
    win = kconv.window((6, 6), (3, 3), (1, 1), (1, 1), "valid")
    for c in (1, 3, 4):  # 9, 27 and 36 values a pixel
        x = rng.standard_normal((2, 6, 6, c)).astype(np.float32)
        k = rng.standard_normal((3, 3, c, 4)).astype(np.float32)
        y, ctx = kconv.conv_fused_forward(x, k, None, win, 1, "relu")
        kconv.conv_fused_backward(ctx, y, k, need_dx=False)
        kconv.conv_fused_backward(ctx, y, k, need_dx=True)
    # one channel: slices, no im2col loop; a kernel gradient alone on narrow columns:
    # grad_narrow; with dx, or on wide columns: the product
    assert calls == ["grad_narrow", "im2col", "grad_narrow", "im2col"]
    x4 = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    k4 = np.ones((3, 3, 4, 4), np.float32)
    assert kconv.conv_fused_forward(x4, k4, None, win, 1, "tanh") is None      # activation
    assert kconv.conv_fused_forward(x4, k4.astype(np.float64), None, win, 1, None) is None


@pytest.mark.parametrize("layer,shape,macs", [
    (layers.Conv2D(64, 3), (None, 13, 13, 32), 11 * 11 * 9 * 32 * 64),
    (layers.Conv2D(8, 3, groups=2, strides=2, padding="same"), (None, 7, 7, 4), 16 * 9 * 2 * 8),
    (layers.Conv1D(4, 5, data_format="channels_first"), (None, 3, 10), 6 * 5 * 3 * 4),
    (layers.Conv2DTranspose(4, 3, strides=2), (None, 5, 5, 2), 25 * 9 * 4 * 2),
    (layers.DepthwiseConv2D(3, depth_multiplier=2), (None, 6, 6, 3), 16 * 9 * 3 * 2),
    (layers.SeparableConv2D(5, 3), (None, 6, 6, 3), 16 * (9 * 3 + 3 * 5)),
])
def test_macs_count_the_window_at_every_output_pixel(layer, shape, macs):
    """Per-sample multiply-adds, for the trainer's BLAS-thread choice by step size."""
    assert layer.macs(shape) == macs


@pytest.mark.parametrize("layer", [
    layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same", dilation_rate=1, groups=2,
                  activation="relu", kernel_regularizer="l2"),
    layers.Conv1D(2, 3, padding="causal", dilation_rate=2),
    layers.Conv3DTranspose(2, 3, strides=2, output_padding=(1, 0, 1)),
    layers.DepthwiseConv2D(3, depth_multiplier=2, data_format="channels_first"),
    layers.SeparableConv2D(3, 3, pointwise_regularizer="l1"),
    layers.MaxPooling3D((2, 1, 2), padding="same"),
    layers.GlobalAveragePooling2D(keepdims=True),
    layers.UpSampling2D((2, 3), interpolation="bilinear"),
    layers.ZeroPadding2D(((1, 2), (3, 4))),
    layers.Cropping1D((2, 0)),
], ids=lambda la: type(la).__name__)
def test_configs_survive_json(layer):
    """Saved models store configs as JSON, where tuples come back as lists."""
    import json

    config = layer.get_config()
    clone = type(layer).from_config(json.loads(json.dumps(config)))
    assert clone.get_config() == config


def test_float16_convolutions_take_the_composed_path():
    """Numba has no float16 arithmetic: half-precision layers keep the array-API engine."""
    x = np.random.default_rng(0).standard_normal((2, 6, 6, 1)).astype(np.float16)
    layer = layers.Conv2D(4, 3, dtype="float16")
    layer(x)  # builds it
    y, ctx = layer.forward(x)
    assert y.dtype == np.float16 and not isinstance(ctx, kconv.FusedContext)
    layer.backward(ctx, np.ones_like(y), need_dx=False)
    assert layer.grads["kernel"].dtype == np.float16
    assert np.isfinite(layer.grads["kernel"]).all() and layer.grads["kernel"].any()
