"""Detection losses (float64 finite differences, NumPy and array-api-strict), target
assignment and balanced sampling, the RPN head through the harness, proposal selection,
and one Faster R-CNN training step and prediction on a tiny synthetic batch."""

import numpy as np
import pytest
from harness import assert_grad_close
from harness import check_loss
from harness import numerical_grad

from xpnet.datasets.shapes import load_shapes
from xpnet.datasets.shapes import synthetic_shapes
from xpnet.detection.losses import SmoothL1
from xpnet.detection.losses import box_head_loss
from xpnet.detection.losses import rpn_loss
from xpnet.detection.rpn import RPNHead
from xpnet.detection.rpn import select_proposals
from xpnet.detection.targets import assign_targets
from xpnet.detection.targets import match_boxes
from xpnet.detection.targets import sample_balanced


def _dodged(rng, shape, beta):
    d = rng.uniform(-1, 1, shape)
    near = np.abs(np.abs(d) - beta) < 0.02  # keep off smooth-L1's kink at |d| = beta
    d[near] += 0.05
    return d


@pytest.mark.parametrize("beta", [1.0 / 9, 1.0])
def test_smooth_l1_loss(backend, beta):
    rng = np.random.default_rng(0)
    t = rng.uniform(-1, 1, (6, 4))
    check_loss(backend, SmoothL1(beta=beta), t, t + _dodged(rng, (6, 4), beta))
    check_loss(backend, SmoothL1(beta=beta, reduction="sum_over_batch_size"), t,
               t + _dodged(rng, (6, 4), beta))


def _check_fn(backend, fn, inputs, fixed, rng):
    """Finite differences of ``sum(values)`` of ``fn(*inputs, *fixed)`` w.r.t. each input."""
    xp = backend.xp
    dev = [backend.asarray(a) for a in fixed]

    def total(*xs):
        (a, b), _ = fn(*[backend.asarray(x, dtype=xp.float64) for x in xs], *dev)
        return float(a) + float(b)

    _, grads = fn(*[backend.asarray(x, dtype=xp.float64) for x in inputs], *dev)
    for i, x0 in enumerate(inputs):
        def f(x, i=i):
            xs = list(inputs)
            xs[i] = x
            return total(*xs)
        dirs, derivs = numerical_grad(f, x0, rng)
        assert_grad_close(backend.to_numpy(grads[i]), dirs, derivs, f"{fn.__name__} {i}")


def test_rpn_loss_gradients(backend):
    rng = np.random.default_rng(1)
    labels = np.array([1, 0, -1, 1, 0, 0, -1, 1])
    targets = rng.uniform(-1, 1, (8, 4))
    _check_fn(backend, rpn_loss, [rng.uniform(-3, 3, 8), targets + _dodged(rng, (8, 4), 1 / 9)],
              [labels, targets], rng)
    (obj, box), (dl, dd) = rpn_loss(*[backend.asarray(a) for a in
                                      (np.zeros(8), targets, labels, targets)])
    assert float(obj) == pytest.approx(np.log(2)) and float(box) == 0.0
    assert np.all(backend.to_numpy(dl)[labels < 0] == 0)  # ignored anchors get nothing


def test_box_head_loss_gradients(backend):
    rng = np.random.default_rng(2)
    labels = np.array([2, 0, -1, 1, 3, 0])
    targets = rng.uniform(-1, 1, (6, 4))
    reg = rng.uniform(-1, 1, (6, 16))
    for r in range(6):  # keep the true class's deltas off the kink
        c = max(labels[r], 0)
        reg[r, 4 * c:4 * c + 4] = targets[r] + _dodged(rng, 4, 1 / 9)
    _check_fn(backend, box_head_loss, [rng.uniform(-2, 2, (6, 4)), reg], [labels, targets],
              rng)
    _, (_, dreg) = box_head_loss(*[backend.asarray(a) for a in
                                   (np.zeros((6, 4)), reg, labels, targets)])
    dreg = backend.to_numpy(dreg).reshape(6, 4, 4)
    assert np.all(dreg[1] == 0) and np.all(dreg[0, [0, 1, 3]] == 0)  # only the true class


def test_match_and_assign(backend):
    gt = np.array([[0, 0, 10, 10.0], [20, 20, 30, 30]])
    boxes = np.array([[0, 0, 10, 10.0], [1, 1, 11, 11], [0, 0, 5, 10], [40, 40, 50, 50],
                      [19, 19, 24, 24]])
    m, _ = match_boxes(backend.asarray(gt), backend.asarray(boxes), 0.7, 0.3)
    # IoUs: 1, 81/119=0.68 (between), 0.5 (between), 0, 25/100-ish (below)
    np.testing.assert_array_equal(backend.to_numpy(m), [0, -2, -2, -1, -1])
    m, _ = match_boxes(backend.asarray(gt), backend.asarray(boxes), 0.7, 0.3, True)
    np.testing.assert_array_equal(backend.to_numpy(m), [0, -2, -2, -1, 1])  # gt 1's best
    lab, reg = assign_targets(backend.asarray(gt), backend.asarray(np.array([3, 2])),
                              backend.asarray(boxes), 0.5, 0.5, (10, 10, 5, 5))
    np.testing.assert_array_equal(backend.to_numpy(lab), [3, 3, 3, 0, 0])
    np.testing.assert_allclose(backend.to_numpy(reg)[0], 0.0, atol=1e-12)


def test_sample_balanced_counts_and_seed(backend):
    labels = np.array([1] * 30 + [0] * 100 + [-1] * 10)
    rng = backend.rng(5)
    out = backend.to_numpy(sample_balanced(backend.asarray(labels), 40, 0.25, rng))
    assert (out == 1).sum() == 10 and (out == 0).sum() == 30 and (out == -1).sum() == 100
    assert np.all(out[labels == -1] == -1)
    again = backend.to_numpy(sample_balanced(backend.asarray(labels), 40, 0.25,
                                             backend.rng(5)))
    np.testing.assert_array_equal(out, again)
    few = np.array([1, 1, 0, 0, 0, -1])  # fewer positives than allowed: negatives fill up
    out = backend.to_numpy(sample_balanced(backend.asarray(few), 4, 0.5, rng))
    assert (out == 1).sum() == 2 and (out == 0).sum() == 2


def test_rpn_head_harness(backend):
    # RPNHead returns two outputs: its gradients are checked by hand through both
    rng = np.random.default_rng(3)
    head = RPNHead(2, filters=3, dtype="float64")
    head.build_on(backend, (None, 4, 3, 2))
    x0 = rng.uniform(-1, 1, (2, 4, 3, 2))
    r1, r2 = rng.standard_normal((2, 24)), rng.standard_normal((2, 24, 4))

    def obj(x):
        (a, b), _ = head.forward(backend.asarray(x))
        return float(backend.xp.sum(a * backend.asarray(r1)) +
                     backend.xp.sum(b * backend.asarray(r2)))

    for layer in (head.conv, head.cls_logits, head.bbox_pred):
        layer.zero_grads()
    _, ctx = head.forward(backend.asarray(x0))
    dx = head.backward(ctx, (backend.asarray(r1), backend.asarray(r2)))
    dirs, derivs = numerical_grad(obj, x0, rng)
    assert_grad_close(backend.to_numpy(dx), dirs, derivs, "rpn head d/dx")
    k0 = backend.to_numpy(head.conv.params["kernel"]).copy()
    g = backend.to_numpy(head.conv.grads["kernel"]).copy()

    def objk(k):
        head.conv.params["kernel"][...] = backend.asarray(k)
        return obj(x0)
    dirs, derivs = numerical_grad(objk, k0, rng)
    head.conv.params["kernel"][...] = backend.asarray(k0)
    assert_grad_close(g, dirs, derivs, "rpn head d/dkernel")


def test_select_proposals(backend):
    xp = backend.xp
    anchors = np.array([[0, 0, 10, 10.0], [1, 1, 11, 11], [30, 30, 40, 40], [5, 5, 5, 5]])
    logits = np.array([3.0, 2.0, 1.0, 5.0])
    boxes, scores = select_proposals(backend.asarray(anchors), backend.asarray(logits),
                                     backend.asarray(np.zeros((4, 4))), (32, 32),
                                     pre_nms_top_n=4, post_nms_top_n=2, nms_thresh=0.5)
    # the point is dropped, anchor 1 is suppressed by 0, the third is clipped to 32
    np.testing.assert_allclose(backend.to_numpy(boxes), [[0, 0, 10, 10], [30, 30, 32, 32]])
    np.testing.assert_allclose(backend.to_numpy(scores), [3.0, 1.0])
    assert boxes.dtype == xp.float64


def test_synthetic_shapes_is_seeded_and_valid():
    x, t = synthetic_shapes(20, 64, seed=3)
    x2, t2 = synthetic_shapes(20, 64, seed=3)
    np.testing.assert_array_equal(x, x2)
    assert x.shape == (20, 64, 64, 3) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    for d in t:
        assert 1 <= len(d["labels"]) <= 5 and set(d["labels"]) <= {1, 2, 3}
        b = d["boxes"]
        assert np.all(b[:, 2:] > b[:, :2]) and b.min() >= 0 and b.max() <= 64
    (a, _), (b, _) = load_shapes(4, 4, 96)
    assert a.shape == (4, 96, 96, 3) and not np.array_equal(a, b)
    kinds = np.concatenate([d["labels"] for d in synthetic_shapes(60, 64, seed=0)[1]])
    assert set(kinds) == {1, 2, 3}


def test_faster_rcnn_step_and_predict(backend):
    from xpnet import optimizers
    from xpnet.applications_detection import faster_rcnn
    from xpnet.applications_detection import small_backbone

    x, t = synthetic_shapes(4, 32, seed=1, size_range=(6, 12))
    model = faster_rcnn(small_backbone((4, 8, 8)), num_classes=3, input_shape=(32, 32, 3),
                        anchor_sizes=(8, 12), representation_size=16, roi_output_size=3,
                        backend=backend)
    model.compile(optimizers.Adam(1e-3))
    before = [w.copy() for w in model.get_weights()]
    hist = model.fit(x, t, epochs=2, batch_size=2, verbose=0)
    assert len(hist) == 2 and set(hist[0]) == {"rpn_objectness", "rpn_box", "classifier",
                                               "box"}
    assert all(np.isfinite(v) for h in hist for v in h.values())
    after = model.get_weights()
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))  # every weight moved
    preds = model.predict(x)
    assert len(preds) == 4
    for p in preds:
        p = {k: backend.to_numpy(v) for k, v in p.items()}
        n = p["boxes"].shape[0]
        assert p["boxes"].shape == (n, 4) and p["scores"].shape == (n,) and \
            p["labels"].shape == (n,)
        assert np.all(np.diff(np.asarray(p["scores"])) <= 0)
        assert n == 0 or (np.asarray(p["labels"]).min() >= 1 and
                          np.asarray(p["labels"]).max() <= 3)


def test_detection_example_runs(capsys, tmp_path):
    """examples/detection.py end to end on a few images (the full run is in the results)."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "examples", "detection.py")
    spec = importlib.util.spec_from_file_location("example_detection", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pytest.importorskip("matplotlib")
    r = module.main(["--epochs", "1", "--train", "8", "--test", "4", "--backend", "cpu",
                     "--plot", str(tmp_path / "det.png")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"test AP50 {r['ap50']:.3f} mAP {r['map']:.3f}"
    assert (tmp_path / "det.png").stat().st_size > 0
