"""RoIAlign and RoIPool: the contract and float64 gradient checks through the shared
harness (NumPy and array-api-strict), forward and backward against direct loops written
from torchvision's CPU kernels, on random and degenerate RoIs (zero width, a point,
outside the image, overlapping RoIs whose gradients must add up), and the njit kernels
against the array-API reference."""

import array_api_compat.numpy as anp
import numpy as np
import pytest
from detection_loops import random_rois
from detection_loops import roi_align as loop_align
from detection_loops import roi_pool as loop_pool
from harness_detection import check_roi_layer

from xpnet.kernels import _load
from xpnet.kernels import reference_boxes as ref
from xpnet.layers import RoIAlign
from xpnet.layers import RoIPool

ALIGN_CASES = [  # output_size, spatial_scale, sampling_ratio, aligned
    ((2, 3), 1.0, -1, True),
    (2, 0.5, -1, False),
    ((3, 2), 0.25, 2, True),
    (2, 1.0, 1, False),
]


def _case(seed, n=2, h=5, w=6, c=1, k=5, scale=1.0):
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((n, h, w, c))
    return f, random_rois(rng, k, n, h, w, scale)


@pytest.mark.parametrize("out,scale,sr,aligned", ALIGN_CASES)
def test_roi_align_harness_and_loops(backend, out, scale, sr, aligned):
    f, rois = _case(1, scale=scale)
    rois = np.concatenate([rois, rois[3:4]])  # the same RoI twice: gradients add up
    kwargs = {"output_size": out, "spatial_scale": scale, "sampling_ratio": sr,
              "aligned": aligned}
    y = check_roi_layer(backend, RoIAlign, kwargs, f, rois)
    size = (out, out) if isinstance(out, int) else out
    np.testing.assert_allclose(y, loop_align(f, rois, size, scale, sr, aligned),
                               rtol=1e-10, atol=1e-12)
    layer = RoIAlign(**kwargs, dtype="float64")
    layer.build_on(backend, [(None,) + f.shape[1:], (None, 5)])
    dy = np.random.default_rng(2).standard_normal(y.shape)
    _, ctx = layer.forward([backend.asarray(f), backend.asarray(rois)])
    dx, droi = layer.backward(ctx, backend.asarray(dy))
    assert droi is None
    np.testing.assert_allclose(backend.to_numpy(dx),
                               loop_align(f, rois, size, scale, sr, aligned, dy=dy),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("out,scale", [((2, 3), 1.0), (2, 0.5), (3, 0.25)])
def test_roi_pool_harness_and_loops(backend, out, scale):
    f, rois = _case(3, scale=scale)
    rois = np.concatenate([rois, rois[3:4]])
    y = check_roi_layer(backend, RoIPool, {"output_size": out, "spatial_scale": scale},
                        f, rois)
    size = (out, out) if isinstance(out, int) else out
    np.testing.assert_allclose(y, loop_pool(f, rois, size, scale), rtol=1e-12)
    layer = RoIPool(out, scale, dtype="float64")
    layer.build_on(backend, [(None,) + f.shape[1:], (None, 5)])
    dy = np.random.default_rng(4).standard_normal(y.shape)
    _, ctx = layer.forward([backend.asarray(f), backend.asarray(rois)])
    dx, _ = layer.backward(ctx, backend.asarray(dy))
    np.testing.assert_allclose(backend.to_numpy(dx), loop_pool(f, rois, size, scale, dy=dy),
                               rtol=1e-12, atol=1e-12)


def test_roi_pool_ties_go_to_the_first_maximum(backend):
    f = np.zeros((1, 3, 3, 1))
    rois = np.array([[0, 0, 0, 2, 2.0]])
    layer = RoIPool(1)
    y, ctx = layer.forward([backend.asarray(f), backend.asarray(rois)])
    dx, _ = layer.backward(ctx, backend.asarray(np.ones((1, 1, 1, 1))))
    want = np.zeros((1, 3, 3, 1))
    want[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(backend.to_numpy(dx), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("out,scale,sr,aligned", ALIGN_CASES)
def test_roi_align_kernel_against_reference(njit, out, scale, sr, aligned, dtype):
    f, rois = _case(5, n=3, h=9, w=8, c=4, k=12, scale=scale)
    f, rois = f.astype(dtype), rois.astype(dtype)
    size = (out, out) if isinstance(out, int) else out
    cpu = _load("cpu_boxes")
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12,
                                                                     "atol": 1e-12}
    y = cpu.roi_align(f, rois, size[0], size[1], scale, sr, aligned)
    np.testing.assert_allclose(y, ref.roi_align(f, rois, size, scale, sr, aligned, anp), **tol)
    dy = np.random.default_rng(0).standard_normal(y.shape).astype(dtype)
    np.testing.assert_allclose(cpu.roi_align_grad(dy, rois, 3, 9, 8, scale, sr, aligned),
                               ref.roi_align_grad(dy, rois, f.shape, scale, sr, aligned, anp),
                               **tol)


def test_roi_pool_kernel_against_reference(njit):
    f, rois = _case(6, n=3, h=9, w=8, c=4, k=12, scale=0.5)
    cpu = _load("cpu_boxes")
    y, am = cpu.roi_pool(f, rois, 3, 2, 0.5)
    ry, ram = ref.roi_pool(f, rois, (3, 2), 0.5, anp)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(am, ram)
    dy = np.random.default_rng(1).standard_normal(y.shape)
    np.testing.assert_allclose(cpu.roi_pool_grad(dy, am, rois, 3, 9, 8),
                               ref.roi_pool_grad(dy, ram, rois, f.shape, anp), rtol=1e-12)


def test_layer_errors():
    with pytest.raises(ValueError, match="output_size"):
        RoIAlign(0)
    with pytest.raises(ValueError, match="spatial_scale"):
        RoIPool(2, spatial_scale=-1)
    with pytest.raises(ValueError, match="sampling_ratio"):
        RoIAlign(2, sampling_ratio=1.5)
    layer = RoIAlign(2)
    with pytest.raises(ValueError, match="rois"):
        layer.check_input_shape([(None, 4, 4, 1), (None, 4)])
    assert layer.compute_output_shape([(None, 8, 8, 3), (None, 5)]) == (None, 2, 2, 3)


@pytest.mark.parametrize("cls", [RoIAlign, RoIPool])
def test_in_a_functional_graph_under_the_tape(cls):
    """``layer([features, rois])`` in a Keras functional model, differentiated by the
    engine's tape: the same gradients as the contract's backward, none for the rois."""
    from xpnet import keras
    from xpnet import ops
    from xpnet.engine.tape import GradientTape

    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 6, 6, 3))
    rois = np.array([[0, 1, 1, 9, 9], [1, 0, 2, 5, 11], [0, 1, 1, 9, 9.0]])
    fi, ri = keras.Input(shape=(6, 6, 3), dtype="float64"), keras.Input(shape=(5,))
    layer = cls(2, 0.5, dtype="float64")
    model = keras.Model([fi, ri], keras.layers.Flatten()(layer([fi, ri])))
    with GradientTape() as tape:
        x = tape.watch(f)
        loss = ops.sum(model([x, rois]) ** 2)
    (gx,) = tape.gradient(loss, [x])
    y, ctx = layer.forward([f, rois])
    dx, droi = layer.backward(ctx, 2 * y)
    assert droi is None
    np.testing.assert_allclose(np.asarray(gx), dx, rtol=1e-12, atol=1e-12)
