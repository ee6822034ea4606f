"""COCO AP against pycocotools on the same detections (equal to 1e-6)."""

import contextlib
import io

import numpy as np
import pytest

from xpnet.detection.metrics import coco_evaluate

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _case(seed, n_images=12, num_classes=3):
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n_images):
        g = int(rng.integers(0, 6))
        xy = rng.uniform(0, 50, (g, 2))
        gb = np.concatenate([xy, xy + rng.uniform(4, 30, (g, 2))], 1)
        gl = rng.integers(1, num_classes + 1, g)
        # detections: jittered copies of the ground truth (some lost), plus clutter
        keep = rng.random(g) < 0.8
        jb = gb[keep] + rng.normal(0, rng.choice([0.5, 3.0]), (int(keep.sum()), 4))
        jl = np.where(rng.random(int(keep.sum())) < 0.9, gl[keep],
                      rng.integers(1, num_classes + 1, int(keep.sum())))
        c = int(rng.integers(0, 4))
        cxy = rng.uniform(0, 50, (c, 2))
        cb = np.concatenate([cxy, cxy + rng.uniform(2, 20, (c, 2))], 1)
        db = np.concatenate([jb, cb])
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 0.5)
        dl = np.concatenate([jl, rng.integers(1, num_classes + 1, c)])
        ds = np.round(rng.random(len(db)), 2)  # rounded: equal scores happen
        gts.append({"boxes": gb, "labels": gl})
        dets.append({"boxes": db, "scores": ds, "labels": dl})
    return gts, dets


def _pycocotools(gts, dets, num_classes):
    images, anns, results = [], [], []
    for i, (g, d) in enumerate(zip(gts, dets), start=1):
        images.append({"id": i, "width": 100, "height": 100})
        for b, lab in zip(g["boxes"], g["labels"]):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(lab),
                         "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0})
        for b, s, lab in zip(d["boxes"], d["scores"], d["labels"]):
            results.append({"image_id": i, "category_id": int(lab), "score": float(s),
                            "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns,
                      "categories": [{"id": c} for c in range(1, num_classes + 1)]}
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(results) if results else COCO(), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"][:, :, :, 0, -1]  # (T, R, K) at area "all", 100 dets
    per_class = [np.mean(p[p > -1]) if np.any(p > -1) else np.nan
                 for p in np.moveaxis(prec, 2, 0)]
    return ev.stats, per_class


@pytest.mark.parametrize("seed", range(6))
def test_equals_pycocotools(seed):
    gts, dets = _case(seed)
    ours = coco_evaluate(dets, gts, num_classes=3)
    stats, per_class = _pycocotools(gts, dets, 3)
    np.testing.assert_allclose([ours["map"], ours["ap50"], ours["ap75"]], stats[:3],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose([ours["per_class"][c] for c in (1, 2, 3)], per_class,
                               rtol=0, atol=1e-6)


def test_max_detections_truncates_per_image():
    gts, dets = _case(7, n_images=4)
    for d in dets:  # many extra low-scored duplicates of the first box
        if len(d["boxes"]):
            extra = np.repeat(d["boxes"][:1], 5, axis=0)
            d["boxes"] = np.concatenate([d["boxes"], extra])
            d["scores"] = np.concatenate([d["scores"], np.full(5, 0.01)])
            d["labels"] = np.concatenate([d["labels"], np.repeat(d["labels"][:1], 5)])
    ours = coco_evaluate(dets, gts, num_classes=3, max_detections=3)
    full = coco_evaluate(dets, gts, num_classes=3)
    assert ours["map"] <= full["map"] + 1e-12


def test_perfect_detections_score_one():
    gts, _ = _case(3)
    dets = [{"boxes": g["boxes"], "scores": np.ones(len(g["labels"])), "labels": g["labels"]}
            for g in gts]
    r = coco_evaluate(dets, gts, num_classes=3)
    assert r["map"] == pytest.approx(1.0) and r["ap50"] == pytest.approx(1.0)


def test_class_without_ground_truth_is_nan_and_left_out():
    gts = [{"boxes": np.array([[0, 0, 10, 10.0]]), "labels": np.array([1])}]
    dets = [{"boxes": np.array([[0, 0, 10, 10.0], [5, 5, 9, 9.0]]),
             "scores": np.array([0.9, 0.8]), "labels": np.array([1, 2])}]
    r = coco_evaluate(dets, gts, num_classes=2)
    assert np.isnan(r["per_class"][2]) and r["map"] == pytest.approx(1.0)
