"""Box operations against direct loop references (tests/detection_loops.py), on NumPy and
array-api-strict, with random and degenerate boxes (zero area, outside the image,
identical boxes with equal scores); the njit NMS against the array-API reference."""

import math

import array_api_compat.numpy as anp
import numpy as np
import pytest
from detection_loops import box_iou as loop_iou
from detection_loops import nms as loop_nms

from xpnet.detection import boxes as B
from xpnet.kernels import reference_boxes


def _boxes(rng, n, degenerate=True):
    xy = rng.uniform(-10, 60, (n, 2))
    b = np.concatenate([xy, xy + rng.uniform(0, 30, (n, 2))], 1)
    if degenerate and n >= 6:
        b[0, 2] = b[0, 0]  # zero width
        b[1, 2:] = b[1, :2]  # a point
        b[2] = [-50, -50, -40, -40]  # outside any image
        b[4] = b[3]  # identical pair
    return b


def _host(backend, a):
    return backend.to_numpy(a)


@pytest.mark.filterwarnings("ignore:invalid value")
@pytest.mark.parametrize("seed", range(3))
def test_box_iou_against_loops(backend, seed):
    rng = np.random.default_rng(seed)
    a, b = _boxes(rng, 9), _boxes(rng, 7)
    got = _host(backend, B.box_iou(backend.asarray(a), backend.asarray(b)))
    np.testing.assert_allclose(got, loop_iou(a, b), rtol=1e-12, equal_nan=True)
    assert np.isnan(got[1]).all() == np.isnan(loop_iou(a[1:2], b)).all()
    same = _host(backend, B.box_iou(backend.asarray(a[3:5]), backend.asarray(a[3:5])))
    np.testing.assert_allclose(same, 1.0)


def _nms_case(rng, n, ties):
    b = _boxes(rng, n)
    s = rng.random(n)
    if ties:
        s = np.round(s, 1)  # many equal scores
        b[5] = b[6] = b[7]
        s[5] = s[6] = s[7]  # identical boxes, equal scores: the lowest index survives
    return b, s


@pytest.mark.parametrize("thr", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_nms_against_loops(backend, seed, thr):
    rng = np.random.default_rng(seed)
    b, s = _nms_case(rng, 40, ties=seed % 2 == 0)
    keep = _host(backend, B.nms(backend.asarray(b), backend.asarray(s), thr))
    np.testing.assert_array_equal(keep, loop_nms(b, s, thr))
    if seed % 2 == 0 and thr < 1.0:
        assert 6 not in keep and 7 not in keep  # the copies of box 5 always go


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_against_loops(backend, seed):
    rng = np.random.default_rng(seed)
    b, s = _nms_case(rng, 50, ties=True)
    idxs = rng.integers(0, 3, 50)
    keep = _host(backend, B.batched_nms(backend.asarray(b), backend.asarray(s),
                                        backend.asarray(idxs), 0.5))
    np.testing.assert_array_equal(keep, loop_nms(b, s, 0.5, idxs))
    assert np.all(np.diff(s[keep]) <= 0)  # by decreasing score


def test_nms_empty_and_single(backend):
    e = backend.asarray(np.zeros((0, 4)))
    assert _host(backend, B.nms(e, backend.asarray(np.zeros(0)), 0.5)).shape == (0,)
    one = B.nms(backend.asarray(np.array([[0, 0, 1, 1.0]])), backend.asarray(np.ones(1)), 0.5)
    np.testing.assert_array_equal(_host(backend, one), [0])


def test_nms_kernel_against_reference(njit):
    from xpnet.kernels import _load

    rng = np.random.default_rng(9)
    for n in (1, 7, 300):
        b, s = _nms_case(rng, max(n, 8), ties=True)
        b = b[np.argsort(-s, kind="stable")]
        cls = rng.integers(0, 2, len(b))
        np.testing.assert_array_equal(_load("cpu_boxes").nms_keep(b, cls, 0.4),
                                      reference_boxes.nms_keep(b, cls, 0.4, anp))


@pytest.mark.parametrize("weights", [(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)])
def test_encode_decode_round_trip(backend, weights):
    rng = np.random.default_rng(1)
    anchors = _boxes(rng, 30, degenerate=False) + np.array([0, 0, 1, 1])
    gt = _boxes(rng, 30, degenerate=False) + np.array([0, 0, 1, 1])
    d = B.encode_boxes(backend.asarray(gt), backend.asarray(anchors), weights)
    # the formula, by hand
    pw, ph = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    want = np.stack([weights[0] * ((gt[:, 0] + gw / 2) - (anchors[:, 0] + pw / 2)) / pw,
                     weights[1] * ((gt[:, 1] + gh / 2) - (anchors[:, 1] + ph / 2)) / ph,
                     weights[2] * np.log(gw / pw), weights[3] * np.log(gh / ph)], 1)
    np.testing.assert_allclose(_host(backend, d), want, rtol=1e-12, atol=1e-12)
    back = B.decode_boxes(d, backend.asarray(anchors), weights)
    np.testing.assert_allclose(_host(backend, back), gt, rtol=1e-10, atol=1e-10)


def test_decode_clips_log_scale_and_handles_classes(backend):
    anchors = np.array([[0, 0, 10, 10.0], [5, 5, 7, 9.0]])
    codes = np.array([[0, 0, 100.0, -1.0, 1, 2, 0, 0], [0.5, -0.5, 0, 0, 0, 0, 10, 10]])
    got = _host(backend, B.decode_boxes(backend.asarray(codes), backend.asarray(anchors)))
    assert got.shape == (2, 8)
    w = math.exp(B.BBOX_XFORM_CLIP) * 10  # dw = 100 is capped at log(1000 / 16)
    np.testing.assert_allclose(got[0, [0, 2]], [5 - w / 2, 5 + w / 2])
    np.testing.assert_allclose(got[0, 4:], [15 - 5, 25 - 5, 15 + 5, 25 + 5])
    np.testing.assert_allclose(got[1, :4], [6 + 1 - 1, 7 - 2 - 2, 6 + 1 + 1, 7 - 2 + 2])


def test_clip_and_remove_small(backend):
    b = np.array([[-5, -5, 100, 20.0], [10, 30, 12, 30.5], [70, 70, 80, 90]])
    got = _host(backend, B.clip_boxes_to_image(backend.asarray(b), (40, 64)))
    np.testing.assert_array_equal(got, [[0, 0, 64, 20], [10, 30, 12, 30.5], [64, 40, 64, 40]])
    keep = _host(backend, B.remove_small_boxes(backend.asarray(got), 1.0))
    np.testing.assert_array_equal(keep, [0])


def test_anchors_follow_torchvision(backend):
    xp = backend.xp
    base = _host(backend, B.generate_anchors((32, 64), (0.5, 1.0, 2.0), xp, xp.float64,
                                             backend.device))
    # torchvision: h_ratio = sqrt(r), w = size / h_ratio, h = size * h_ratio, round(+-/2)
    want = []
    for r in (0.5, 1.0, 2.0):
        for s in (32, 64):
            w, h = s / math.sqrt(r), s * math.sqrt(r)
            want.append(np.round([-w / 2, -h / 2, w / 2, h / 2]))
    np.testing.assert_array_equal(base, want)
    grid = _host(backend, B.grid_anchors(backend.asarray(base), (2, 3), 16))
    assert grid.shape == (2 * 3 * 6, 4)
    np.testing.assert_array_equal(grid[6 * 4 + 1], base[1] + [16, 16, 16, 16])  # row 1, col 1
    np.testing.assert_array_equal(grid[6 * 2 + 5], base[5] + [32, 0, 32, 0])  # row 0, col 2
