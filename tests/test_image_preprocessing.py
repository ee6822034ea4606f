"""Issue 10 point 10, image layers: Resizing, CenterCrop, RandomCrop, RandomFlip,
RandomContrast, RandomRotation, RandomZoom and RandomTranslation. The float64 harness checks
each input gradient (for the random layers, for the draw of one forward, replayed from the
generator's state) on NumPy and array-api-strict; the values are Keras 3's, worked out by
hand from its resize (half-pixel centres) and affine_transform (integer grid) rules."""

import numpy as np
import pytest
from conftest import make_backend
from harness import check_layer

from xpnet import keras
from xpnet import layers


def _run(backend, layer, x, training=False):
    return backend.to_numpy(layer(backend.asarray(np.asarray(x, np.float32)),
                                  training=training))


# -- Resizing --------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs,shape,out", [
    ({"height": 5, "width": 3}, (2, 3, 4, 2), (2, 5, 3, 2)),
    ({"height": 2, "width": 6, "interpolation": "nearest"}, (2, 4, 3, 1), (2, 2, 6, 1)),
    ({"height": 3, "width": 3, "crop_to_aspect_ratio": True}, (1, 4, 6, 2), (1, 3, 3, 2)),
    ({"height": 4, "width": 4, "pad_to_aspect_ratio": True, "fill_value": 0.5},
     (1, 2, 4, 1), (1, 4, 4, 1)),
    ({"height": 2, "width": 3, "antialias": True}, (1, 6, 7, 1), (1, 2, 3, 1)),
    ({"height": 4, "width": 5, "interpolation": "bicubic"}, (1, 3, 3, 1), (1, 4, 5, 1)),
    ({"height": 4, "width": 2, "data_format": "channels_first"}, (2, 2, 3, 3), (2, 2, 4, 2)),
], ids=["bilinear", "nearest", "crop", "pad", "antialias", "bicubic", "channels_first"])
def test_resizing_harness(backend, kwargs, shape, out):
    check_layer(backend, layers.Resizing, kwargs, input_shape=shape,
                expected_output_shape=out, expected_num_params=0)


def test_resizing_values_as_keras(backend):
    row = np.array([0.0, 1.0, 2.0, 3.0]).reshape(1, 1, 4, 1)
    # bilinear, half-pixel centres: output j samples (j + 0.5) * 4 / 2 - 0.5 = 0.5, 2.5
    down = _run(backend, layers.Resizing(1, 2), row)
    np.testing.assert_allclose(down.ravel(), [0.5, 2.5])
    # up: samples -0.25, 0.25, 0.75, 1.25; weights renormalised at the edges
    up = _run(backend, layers.Resizing(1, 4), np.array([0.0, 1.0]).reshape(1, 1, 2, 1))
    np.testing.assert_allclose(up.ravel(), [0.0, 0.25, 0.75, 1.0], atol=1e-7)
    # nearest: floor((j + 0.5) * 4 / 3) = 0, 2, 3
    near = _run(backend, layers.Resizing(1, 3, interpolation="nearest"), row)
    np.testing.assert_array_equal(near.ravel(), [0.0, 2.0, 3.0])
    # crop_to_aspect_ratio: a 1x4 row to 1x2 keeps the centred 1x2 window [1, 2]
    crop = _run(backend, layers.Resizing(1, 2, crop_to_aspect_ratio=True), row)
    np.testing.assert_allclose(crop.ravel(), [1.0, 2.0])
    # pad_to_aspect_ratio: a 1x4 row to 4x4 pads 1.5 -> 1 row of fill each side, then 3 -> 4
    pad = _run(backend, layers.Resizing(3, 4, pad_to_aspect_ratio=True, fill_value=-1.0),
               row)
    np.testing.assert_allclose(pad[0, :, :, 0], [[-1.0] * 4, [0, 1, 2, 3], [-1.0] * 4])


def test_resizing_unbatched_and_errors(cpu):
    y = layers.Resizing(4, 4)(np.ones((2, 2, 3), np.float32))
    assert y.shape == (4, 4, 3)
    np.testing.assert_allclose(y, 1.0)
    with pytest.raises(ValueError, match="interpolation"):
        layers.Resizing(2, 2, interpolation="area")
    with pytest.raises(ValueError, match="Only one of|only one of"):
        layers.Resizing(2, 2, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True)


# -- CenterCrop and RandomCrop ----------------------------------------------------------------
@pytest.mark.parametrize("shape,out", [((2, 5, 6, 2), (2, 3, 4, 2)), ((1, 2, 6, 1),
                                                                      (1, 3, 4, 1))],
                         ids=["crop", "smart_resize"])
def test_center_crop(backend, shape, out):
    check_layer(backend, layers.CenterCrop, {"height": 3, "width": 4}, input_shape=shape,
                expected_output_shape=out)
    x = np.arange(30.0).reshape(1, 5, 6, 1)
    y = _run(backend, layers.CenterCrop(3, 4), x)
    np.testing.assert_array_equal(y[0, :, :, 0], x[0, 1:4, 1:5, 0])  # offsets (5-3)//2, 1


@pytest.mark.parametrize("training", [True, False], ids=["train", "infer"])
def test_random_crop(backend, training):
    check_layer(backend, layers.RandomCrop, {"height": 3, "width": 2, "seed": 4},
                input_shape=(2, 5, 4, 2), expected_output_shape=(2, 3, 2, 2),
                training=training)


def test_random_crop_one_window_per_batch(cpu):
    x = np.arange(2 * 8 * 8).reshape(2, 8, 8, 1).astype(np.float32)
    x[1] = x[0]
    layer = layers.RandomCrop(4, 4, seed=0)
    windows = set()
    for _ in range(20):
        y = layer(x, training=True)
        np.testing.assert_array_equal(y[0], y[1])  # the same window for the whole batch
        top, left = divmod(int(y[0, 0, 0, 0]), 8)
        np.testing.assert_array_equal(y[0, :, :, 0], x[0, top:top + 4, left:left + 4, 0])
        windows.add((top, left))
    assert len(windows) > 5 and all(0 <= t <= 4 and 0 <= s <= 4 for t, s in windows)
    # inference: the largest window of the target aspect ratio (all of it), resized 8 -> 4
    pooled = x[0, :, :, 0].reshape(4, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(layer(x)[0, :, :, 0], pooled)


# -- RandomFlip, RandomContrast ------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_random_flip(backend, mode):
    check_layer(backend, layers.RandomFlip, {"mode": mode, "seed": 1},
                input_shape=(4, 3, 3, 2), expected_output_shape=(4, 3, 3, 2), training=True)
    x = np.random.default_rng(0).normal(size=(64, 3, 4, 1))
    y = _run(backend, layers.RandomFlip(mode, seed=2), x, training=True)
    xf = x.astype(np.float32)
    flipped = {"horizontal": xf[:, :, ::-1], "vertical": xf[:, ::-1],
               "horizontal_and_vertical": xf[:, ::-1, ::-1]}[mode]
    same = np.all(y == xf, axis=(1, 2, 3))
    flip = np.all(y == flipped, axis=(1, 2, 3))
    assert np.all(same | flip) and 16 < flip.sum() < 48  # each image, p = 1/2
    np.testing.assert_array_equal(_run(backend, layers.RandomFlip(mode), x), xf)


def test_random_contrast(backend):
    check_layer(backend, layers.RandomContrast, {"factor": (0.5, 0.5), "seed": 3,
                                                 "value_range": (-10, 10)},
                input_shape=(2, 3, 3, 2), expected_output_shape=(2, 3, 3, 2), training=True)
    x = np.random.default_rng(1).uniform(50, 200, (8, 4, 4, 3))
    y = _run(backend, layers.RandomContrast(0.3, seed=0), x, training=True)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=1e-5)
    ratio = y.std(axis=(1, 2)) / x.std(axis=(1, 2))
    assert np.all(ratio.std(axis=1) < 1e-4)  # one factor per image
    # Keras 3 draws factor=0.3 from [1 - 0, 1 + 0.3] (its _set_factor floors the lower at 0)
    assert np.all((ratio > 1.0 - 1e-5) & (ratio < 1.3 + 1e-5)) and ratio.std() > 0.01
    clipped = _run(backend, layers.RandomContrast((0.9, 0.9), seed=1, value_range=(0, 1)),
                   np.random.default_rng(2).uniform(0, 1, (4, 5, 5, 1)), training=True)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0


# -- RandomRotation, RandomZoom, RandomTranslation --------------------------------------------
@pytest.mark.parametrize("cls,kwargs", [
    (layers.RandomRotation, {"factor": 0.2}),
    (layers.RandomRotation, {"factor": 0.3, "fill_mode": "constant", "fill_value": 0.5}),
    (layers.RandomRotation, {"factor": 0.5, "fill_mode": "wrap", "interpolation": "nearest"}),
    (layers.RandomZoom, {"height_factor": 0.4, "fill_mode": "nearest"}),
    (layers.RandomZoom, {"height_factor": (-0.3, 0.2), "width_factor": 0.5,
                         "data_format": "channels_first"}),
    (layers.RandomTranslation, {"height_factor": 0.3, "width_factor": (-0.2, 0.4)}),
], ids=["rotation", "rotation_constant", "rotation_wrap_nearest", "zoom", "zoom_cf",
        "translation"])
def test_random_affine_harness(backend, cls, kwargs):
    shape = (2, 2, 4, 5) if kwargs.get("data_format") == "channels_first" else (2, 4, 5, 2)
    check_layer(backend, cls, {**kwargs, "seed": 5}, input_shape=shape,
                expected_output_shape=shape, training=True)
    x = np.ones(shape, np.float32)
    np.testing.assert_array_equal(_run(backend, cls(**kwargs), x), x)  # inference: identity


def test_rotation_by_a_quarter_turn_is_rot90(backend):
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 3))
    y = _run(backend, layers.RandomRotation((0.25, 0.25), seed=0), x, training=True)
    # Keras: output (y, x) reads input (x + cy - cx, cx + cy - y), i.e. np.rot90
    np.testing.assert_allclose(y, np.rot90(x, 1, axes=(1, 2)), atol=1e-5)


def test_zoom_and_translation_values(backend):
    ramp = np.tile(np.arange(8.0), (1, 8, 1))[..., None]  # in[y, x] = x
    zoom_in = _run(backend, layers.RandomZoom((-0.5, -0.5), seed=0), ramp, training=True)
    # zoom 0.5 about the centre: x reads 0.5 x + (8 - 1) / 2 * 0.5
    np.testing.assert_allclose(zoom_in[0, 3, :, 0], 0.5 * np.arange(8) + 1.75, atol=1e-6)
    col = np.tile(np.arange(8.0)[:, None], (1, 1, 3))[..., None]  # in[y, x] = y
    down = _run(backend, layers.RandomTranslation((0.25, 0.25), 0.0, seed=0), col,
                training=True)
    # shift by 0.25 * 8 = 2 rows; "reflect" reads row -1 as 0 and -2 as 1
    np.testing.assert_allclose(down[0, :, 1, 0], [1, 0, 0, 1, 2, 3, 4, 5], atol=1e-6)
    const = _run(backend, layers.RandomTranslation((0.25, 0.25), 0.0, seed=0,
                                                   fill_mode="constant", fill_value=-1.0),
                 col, training=True)
    np.testing.assert_allclose(const[0, :, 1, 0], [-1, -1, 0, 1, 2, 3, 4, 5], atol=1e-6)
    wrap = _run(backend, layers.RandomTranslation((0.25, 0.25), 0.0, seed=0,
                                                  fill_mode="wrap"), col, training=True)
    np.testing.assert_allclose(wrap[0, :, 1, 0], [6, 7, 0, 1, 2, 3, 4, 5], atol=1e-6)


@pytest.mark.parametrize("cls,kwargs", [
    (layers.RandomFlip, {}), (layers.RandomRotation, {"factor": 0.3}),
    (layers.RandomZoom, {"height_factor": 0.3}), (layers.RandomContrast, {"factor": 0.5}),
    (layers.RandomTranslation, {"height_factor": 0.2, "width_factor": 0.2}),
    (layers.RandomCrop, {"height": 3, "width": 3}),
])
def test_same_seed_same_images_on_every_backend(cls, kwargs):
    x = np.random.default_rng(3).uniform(0, 255, (8, 6, 6, 2)).astype(np.float32)
    outs = []
    for name in ("cpu", "strict"):
        backend = make_backend(name)
        layer = cls(**kwargs, seed=11)
        outs.append([_run(backend, layer, x, training=True) for _ in range(2)])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    assert not np.allclose(outs[0][0], outs[0][1])  # a new draw every step


def test_augmentation_in_a_model(backend):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)), layers.Rescaling(1 / 255), layers.RandomFlip(),
        layers.RandomRotation(0.1), layers.RandomZoom(0.1), layers.Resizing(6, 6),
        layers.Flatten(), layers.Dense(2, activation="softmax")], backend=backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (20, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    p1, p2 = model.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(p1, p2)  # inference: augmentations off


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
def test_affine_njit_matches_the_composition(njit, interpolation, fill_mode):
    from xpnet.kernels import image as kimage
    from xpnet.kernels import reference_image as ref

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 7, 2))
    t = np.array([[0.7, -0.8, 2.0, 0.6, 0.9, -3.0],  # rotation + scale + shift
                  [2.5, 0.0, -9.0, 0.0, 3.0, 11.0],  # far outside: every fold taken
                  [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]])  # the identity
    y, ctx = kimage.affine(x, t, interpolation, fill_mode, 0.25)
    plan = ref.affine_plan(t, x.shape, interpolation, fill_mode, x.dtype)
    np.testing.assert_allclose(y, ref.affine_sample(x, plan, 0.25), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(y[2], x[2])
    dy = rng.normal(size=x.shape)
    np.testing.assert_allclose(kimage.affine_grad(ctx, dy), ref.affine_sample_grad(dy, plan),
                               rtol=1e-10, atol=1e-12)


def test_unsupported_keras_inputs_say_so(cpu):
    with pytest.raises(NotImplementedError, match="bounding boxes"):
        layers.RandomFlip(bounding_box_format="xyxy")
    with pytest.raises(NotImplementedError, match="dict inputs"):
        layers.RandomFlip()({"images": np.zeros((1, 2, 2, 1), np.float32)})


def test_augmentation_model_saves_and_loads(cpu, tmp_path):
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input(shape=(9, 7, 2)), layers.RandomCrop(6, 6), layers.RandomFlip("vertical"),
        layers.RandomTranslation(0.1, 0.2, fill_mode="constant"), layers.RandomContrast(0.2),
        layers.CenterCrop(4, 4), layers.Resizing(5, 5, interpolation="nearest"),
        layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).uniform(0, 1, (6, 9, 7, 2)).astype(np.float32)
    model.fit(x, np.zeros((6, 1), np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "aug.keras")
    again = keras.models.load_model(tmp_path / "aug.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    assert [type(la).__name__ for la in again.layers][:3] == ["RandomCrop", "RandomFlip",
                                                              "RandomTranslation"]


def test_integer_pixels_become_floats(backend):
    img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1)
    x = backend.asarray(img)
    for layer in (layers.Rescaling(1 / 255), layers.Resizing(2, 2), layers.CenterCrop(2, 2),
                  layers.Normalization(mean=8.0, variance=4.0)):
        y = layer(x)
        assert y.dtype == backend.xp.float32, type(layer).__name__
    np.testing.assert_allclose(backend.to_numpy(layers.Rescaling(1 / 255)(x)).ravel(),
                               np.arange(16) / 255, rtol=1e-6)
