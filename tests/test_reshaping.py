import numpy as np
import pytest
from conv_loops import channels_first
from harness import check_layer

from xpnet import layers


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("cls,kwargs,shape,out", [
    (layers.UpSampling2D, {"size": (2, 3)}, (2, 3, 2, 2), (2, 6, 6, 2)),
    (layers.UpSampling2D, {"interpolation": "bilinear"}, (2, 3, 4, 2), (2, 6, 8, 2)),
    (layers.UpSampling2D, {"size": (3, 2), "interpolation": "bilinear"}, (1, 2, 3, 2),
     (1, 6, 6, 2)),
    (layers.UpSampling3D, {"size": (1, 2, 2)}, (1, 2, 3, 2, 2), (1, 2, 6, 4, 2)),
    (layers.ZeroPadding2D, {"padding": ((1, 2), (0, 1))}, (2, 3, 4, 2), (2, 6, 5, 2)),
    (layers.ZeroPadding3D, {"padding": 1}, (1, 2, 2, 3, 2), (1, 4, 4, 5, 2)),
    (layers.Cropping2D, {"cropping": ((1, 0), (1, 2))}, (2, 3, 5, 2), (2, 2, 2, 2)),
    (layers.Cropping3D, {"cropping": ((0, 1), (1, 1), (1, 0))}, (1, 3, 4, 3, 2),
     (1, 2, 2, 2, 2)),
])
def test_spatial_layers_gradients(backend, cls, kwargs, shape, out, data_format):
    if data_format == "channels_first":
        shape, out = channels_first(shape), channels_first(out)
    check_layer(backend, cls, {**kwargs, "data_format": data_format}, input_shape=shape,
                expected_output_shape=out, expected_num_params=0)


@pytest.mark.parametrize("cls,kwargs,shape,out", [
    (layers.UpSampling1D, {"size": 3}, (2, 4, 2), (2, 12, 2)),
    (layers.ZeroPadding1D, {"padding": (2, 1)}, (2, 3, 2), (2, 6, 2)),
    (layers.ZeroPadding1D, {"padding": 1, "data_format": "channels_first"}, (2, 2, 3),
     (2, 2, 5)),
    (layers.Cropping1D, {"cropping": (0, 2)}, (2, 5, 2), (2, 3, 2)),
    (layers.Cropping1D, {"cropping": (1, 2), "data_format": "channels_first"}, (2, 2, 5),
     (2, 2, 2)),
])
def test_1d_layers_gradients(backend, cls, kwargs, shape, out):
    check_layer(backend, cls, kwargs, input_shape=shape, expected_output_shape=out)


def test_upsampling_nearest_repeats(cpu):
    x = np.arange(4.0).reshape(1, 2, 2, 1)
    y = layers.UpSampling2D((1, 2), dtype="float64")(x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[0, 0, 1, 1], [2, 2, 3, 3]])
    y1 = layers.UpSampling1D(2, dtype="float64")(np.array([[[1.0], [2.0]]]))
    np.testing.assert_array_equal(y1[0, :, 0], [1, 1, 2, 2])


def test_upsampling_bilinear_uses_half_pixel_centres(cpu):
    """As tf.image.resize / jax.image.resize: [0, 1] upsampled by 2 is
    [0, 0.25, 0.75, 1]; by 3 it is [0, 0, 1/3, 2/3, 1, 1]."""
    x = np.array([0.0, 1.0]).reshape(1, 2, 1, 1)
    y = layers.UpSampling2D((2, 1), interpolation="bilinear", dtype="float64")(x)
    np.testing.assert_allclose(y[0, :, 0, 0], [0, 0.25, 0.75, 1])
    y = layers.UpSampling2D((1, 3), interpolation="bilinear", dtype="float64")(
        x.reshape(1, 1, 2, 1))
    np.testing.assert_allclose(y[0, 0, :, 0], [0, 0, 1 / 3, 2 / 3, 1, 1])


def test_zero_padding_and_cropping_values(cpu):
    x = np.arange(6.0).reshape(1, 2, 3, 1)
    y = layers.ZeroPadding2D(((1, 0), (0, 2)), dtype="float64")(x)
    np.testing.assert_array_equal(y[0, :, :, 0], [[0, 0, 0, 0, 0], [0, 1, 2, 0, 0],
                                                  [3, 4, 5, 0, 0]])
    c = layers.Cropping2D(((0, 1), (1, 1)), dtype="float64")(x)
    np.testing.assert_array_equal(c[0, :, :, 0], [[1]])
    # ZeroPadding then the same Cropping is the identity
    z = layers.Cropping2D(((1, 0), (0, 2)))(layers.ZeroPadding2D(((1, 0), (0, 2)))(x))
    np.testing.assert_array_equal(z, x)


@pytest.mark.parametrize("cls,value,pairs", [
    (layers.ZeroPadding2D, 2, ((2, 2), (2, 2))),
    (layers.ZeroPadding2D, (1, 3), ((1, 1), (3, 3))),
    (layers.Cropping2D, ((1, 2), (3, 4)), ((1, 2), (3, 4))),
    (layers.ZeroPadding1D, 3, ((3, 3),)),
    (layers.Cropping1D, (1, 2), ((1, 2),)),
    (layers.ZeroPadding3D, (1, 2, 3), ((1, 1), (2, 2), (3, 3))),
])
def test_padding_specs_as_keras(cls, value, pairs):
    layer = cls(value)
    assert layer.pairs == pairs
    assert cls.from_config(layer.get_config()).pairs == pairs


def test_reshaping_rejects_bad_arguments(cpu):
    with pytest.raises(ValueError, match="interpolation must be 'nearest' or 'bilinear'"):
        layers.UpSampling2D(interpolation="bicubic")
    with pytest.raises(ValueError, match="padding must be an int, a tuple of 2 ints"):
        layers.ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match=r"crop: input shape \(None, 2, 4, 1\) leaves nothing"):
        layers.Cropping2D(((1, 1), (0, 0)), name="crop")(np.zeros((1, 2, 4, 1), np.float32))
    with pytest.raises(ValueError, match="size must be an int or a tuple of 2 ints"):
        layers.UpSampling2D(0)

