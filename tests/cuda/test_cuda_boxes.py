"""The numba.cuda box kernels (NMS, RoIAlign, RoIPool forward and backward, atomics for
overlapping RoIs) against the array-API reference: tiny shapes under the simulator, the
public dispatch through CuPy on a GPU."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from xpnet.kernels import _load
from xpnet.kernels import boxes as kboxes
from xpnet.kernels import reference_boxes as ref


def _rois(rng, k, n, h, w):
    xy = rng.uniform(-2, max(h, w), (k, 2))
    r = np.concatenate([rng.integers(0, n, (k, 1)), xy, xy + rng.uniform(0, 5, (k, 2))], 1)
    r[0, 3] = r[0, 1]  # zero width
    r[-1] = r[1]  # overlapping copies: the atomics must add both
    return r


def _run(device, name, *args):
    """The kernel through the public dispatch on a GPU, the launcher under the sim."""
    if device.gpu:
        return getattr(kboxes, name)(*[device.put(a) if isinstance(a, np.ndarray) else a
                                       for a in args])
    return getattr(_load("cuda_boxes"), name)(*args)


@pytest.mark.parametrize("aligned,sr", [(True, -1), (False, 2)])
def test_roi_align(device, aligned, sr):
    rng = np.random.default_rng(0)
    f = rng.standard_normal((2, 5, 4, 2))
    rois = _rois(rng, 4, 2, 5, 4)
    if device.gpu:
        y = kboxes.roi_align(device.put(f), device.put(rois), (2, 2), 0.5, sr, aligned)
        dx = kboxes.roi_align_grad(device.put(np.ones(y.shape)), device.put(rois), f.shape,
                                   0.5, sr, aligned)
    else:
        cuda = _load("cuda_boxes")
        y = cuda.roi_align(f, rois, 2, 2, 0.5, sr, aligned)
        dx = cuda.roi_align_grad(np.ones(y.shape), rois, 2, 5, 4, 0.5, sr, aligned)
    np.testing.assert_allclose(device.get(y), ref.roi_align(f, rois, (2, 2), 0.5, sr,
                                                            aligned, xp), rtol=1e-12,
                               atol=1e-12)
    np.testing.assert_allclose(device.get(dx), ref.roi_align_grad(
        np.ones((4, 2, 2, 2)), rois, f.shape, 0.5, sr, aligned, xp), rtol=1e-12, atol=1e-12)


def test_roi_pool(device):
    rng = np.random.default_rng(1)
    f = rng.standard_normal((2, 5, 4, 2))
    rois = _rois(rng, 4, 2, 5, 4)
    dy = rng.standard_normal((4, 2, 2, 2))
    if device.gpu:
        y, am = kboxes.roi_pool(device.put(f), device.put(rois), (2, 2), 1.0)
        dx = kboxes.roi_pool_grad(device.put(dy), am, device.put(rois), f.shape)
    else:
        cuda = _load("cuda_boxes")
        y, am = cuda.roi_pool(f, rois, 2, 2, 1.0)
        dx = cuda.roi_pool_grad(dy, am, rois, 2, 5, 4)
    ry, ram = ref.roi_pool(f, rois, (2, 2), 1.0, xp)
    np.testing.assert_array_equal(device.get(y), ry)
    np.testing.assert_array_equal(device.get(am), ram)
    np.testing.assert_allclose(device.get(dx), ref.roi_pool_grad(dy, ram, rois, f.shape, xp),
                               rtol=1e-12)


def test_nms(device):
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 10, (12, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 6, (12, 2))], 1)
    b[5] = b[4]  # identical boxes
    b[6, 2:] = b[6, :2]  # zero area
    cls = rng.integers(0, 2, 12)
    keep = kboxes.nms_keep(device.put(b), device.put(cls), 0.3) if device.gpu else \
        _load("cuda_boxes").nms_keep(b, cls, 0.3)
    np.testing.assert_array_equal(device.get(keep), ref.nms_keep(b, cls, 0.3, xp))
