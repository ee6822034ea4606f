"""RoIAlign, RoIPool, NMS, batched NMS and box IoU against torchvision on the same inputs
(not CI: torchvision needs its own torch). Run it from the repository root in a venv with
torch 2.14.1 + torchvision 0.29.1 and xpnet's dependencies (numba, array-api-compat):

    python -m venv /work/venv-tv
    /work/venv-tv/bin/pip install torch==2.14.1 torchvision==0.29.1 numba array-api-compat \
        threadpoolctl tqdm safetensors
    /work/venv-tv/bin/python benchmarks/verify_detection.py

It prints the largest differences (forward, and the feature gradient through autograd) and
whether NMS keeps the same indices in the same order, then times both sides (2 threads,
several rounds, median and [min-max] of the ratio xpnet / torchvision).
"""

import statistics
import time

import numpy as np
import torch
import torchvision

from xpnet.backend import get_backend
from xpnet.detection import boxes as B
from xpnet.layers import RoIAlign
from xpnet.layers import RoIPool

torch.set_num_threads(2)
BE = get_backend("cpu")


def rois_case(rng, k, n, size, degenerate=True):
    xy = rng.uniform(-0.2 * size, 1.1 * size, (k, 2))
    r = np.concatenate([rng.integers(0, n, (k, 1)), xy, xy + rng.uniform(0, 0.7 * size, (k, 2))],
                       1)
    if degenerate:
        r[0, 3] = r[0, 1]
        r[1, 3:] = r[1, 1:3]
        r[2, 1:] = [-3 * size, -3 * size, -2 * size, -2 * size]
        r[3] = r[4]
    return r


def torch_roi(op, f, rois, dy, **kw):
    ft = torch.tensor(np.ascontiguousarray(f.transpose(0, 3, 1, 2)), requires_grad=True)
    y = op(ft, torch.tensor(rois), **kw)
    y.backward(torch.tensor(np.ascontiguousarray(dy.transpose(0, 3, 1, 2))))
    return y.detach().numpy().transpose(0, 2, 3, 1), ft.grad.numpy().transpose(0, 2, 3, 1)


def xp_roi(layer, f, rois, dy):
    y, ctx = layer.forward([BE.asarray(f), BE.asarray(rois)])
    return y, layer.backward(ctx, BE.asarray(dy))[0]


def check_roi_align(rng, dtype):
    worst = [0.0, 0.0]
    for scale, sr, aligned, out in [(1.0, -1, True, 7), (0.25, -1, True, 7), (0.25, 2, False, 7),
                                    (0.5, -1, False, (3, 5)), (0.125, 0, True, 14)]:
        n, h, w, c = 2, 16, 20, 8
        f = rng.standard_normal((n, h, w, c)).astype(dtype)
        rois = rois_case(rng, 64, n, h / scale).astype(dtype)
        size = (out, out) if isinstance(out, int) else out
        dy = rng.standard_normal((64,) + size + (c,)).astype(dtype)
        ty, tg = torch_roi(torchvision.ops.roi_align, f, rois, dy, output_size=size,
                           spatial_scale=scale, sampling_ratio=sr, aligned=aligned)
        layer = RoIAlign(out, scale, sr, aligned, dtype=np.dtype(dtype).name)
        y, g = xp_roi(layer, f, rois, dy)
        worst[0] = max(worst[0], float(np.abs(y - ty).max()))
        worst[1] = max(worst[1], float(np.abs(g - tg).max()))
    print(f"roi_align {np.dtype(dtype).name}: max |dy| {worst[0]:.2e}, max |dfeatures| "
          f"{worst[1]:.2e}")
    return worst


def check_roi_pool(rng, dtype):
    worst = [0.0, 0.0]
    for scale, out in [(1.0, 7), (0.25, 7), (0.5, (3, 5))]:
        n, h, w, c = 2, 16, 20, 8
        f = rng.standard_normal((n, h, w, c)).astype(dtype)
        rois = rois_case(rng, 64, n, h / scale).astype(dtype)
        size = (out, out) if isinstance(out, int) else out
        dy = rng.standard_normal((64,) + size + (c,)).astype(dtype)
        ty, tg = torch_roi(torchvision.ops.roi_pool, f, rois, dy, output_size=size,
                           spatial_scale=scale)
        y, g = xp_roi(RoIPool(out, scale, dtype=np.dtype(dtype).name), f, rois, dy)
        worst[0] = max(worst[0], float(np.abs(y - ty).max()))
        worst[1] = max(worst[1], float(np.abs(g - tg).max()))
    print(f"roi_pool {np.dtype(dtype).name}: max |dy| {worst[0]:.2e}, max |dfeatures| "
          f"{worst[1]:.2e}")
    return worst


def check_nms(rng):
    same = 0
    trials = 0
    for n in (1, 10, 200, 2000):
        for thr in (0.0, 0.3, 0.5, 0.7, 1.0):
            for dtype in (np.float32, np.float64):
                xy = rng.uniform(0, 100, (n, 2))
                b = np.concatenate([xy, xy + rng.uniform(0, 40, (n, 2))], 1).astype(dtype)
                s = np.round(rng.random(n), 2).astype(dtype)  # ties
                if n >= 10:
                    b[1] = b[0]
                    s[1] = s[0]
                    b[2, 2:] = b[2, :2]
                idx = rng.integers(0, 4, n)
                tk = torchvision.ops.nms(torch.tensor(b), torch.tensor(s), thr).numpy()
                xk = BE.to_numpy(B.nms(BE.asarray(b), BE.asarray(s), thr))
                tb = torchvision.ops.batched_nms(torch.tensor(b), torch.tensor(s),
                                                 torch.tensor(idx), thr).numpy()
                xb = BE.to_numpy(B.batched_nms(BE.asarray(b), BE.asarray(s), BE.asarray(idx),
                                               thr))
                # batched: torchvision sorts the kept boxes by score with an unstable sort,
                # so compare the kept sets and the score order
                ok = np.array_equal(tk, xk) and set(tb) == set(xb) and \
                    np.array_equal(s[tb], s[xb])
                same += ok
                trials += 1
    iou_err = 0.0
    for _ in range(5):
        xy = rng.uniform(0, 100, (300, 2))
        b = np.concatenate([xy, xy + rng.uniform(0.5, 40, (300, 2))], 1)
        t = torchvision.ops.box_iou(torch.tensor(b[:100]), torch.tensor(b[100:])).numpy()
        x = BE.to_numpy(B.box_iou(BE.asarray(b[:100]), BE.asarray(b[100:])))
        iou_err = max(iou_err, float(np.abs(t - x).max()))
    print(f"nms / batched_nms: identical in {same}/{trials} cases; box_iou max |diff| "
          f"{iou_err:.2e}")
    return same, trials


def _median_ratio(fx, ft, rounds=7, reps=5):
    ratios = []
    fx(), ft()
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            fx()
        tx = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(reps):
            ft()
        tt = time.perf_counter() - t
        ratios.append(tx / tt)
    return tx / reps, tt / reps, statistics.median(ratios), min(ratios), max(ratios)


def timing(rng):
    n, h, w, c, k = 8, 16, 16, 64, 512
    f = rng.standard_normal((n, h, w, c)).astype(np.float32)
    rois = rois_case(rng, k, n, 64, degenerate=False).astype(np.float32)
    dy = rng.standard_normal((k, 7, 7, c)).astype(np.float32)
    layer = RoIAlign(7, 0.25, 2, True)
    fx, rx, dyx = BE.asarray(f), BE.asarray(rois), BE.asarray(dy)
    ft = torch.tensor(np.ascontiguousarray(f.transpose(0, 3, 1, 2)), requires_grad=True)
    rt, dyt = torch.tensor(rois), torch.tensor(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)))

    def xp_step():
        y, ctx = layer.forward([fx, rx])
        layer.backward(ctx, dyx)

    def tv_step():
        ft.grad = None
        torchvision.ops.roi_align(ft, rt, 7, 0.25, 2, True).backward(dyt)

    rows = [("roi_align fwd+bwd 8x16x16x64, 512 RoIs, 7x7", *_median_ratio(xp_step, tv_step))]
    xy = rng.uniform(0, 200, (4000, 2))
    b = np.concatenate([xy, xy + rng.uniform(5, 40, (4000, 2))], 1).astype(np.float32)
    s = rng.random(4000).astype(np.float32)
    bx, sx, bt, st = BE.asarray(b), BE.asarray(s), torch.tensor(b), torch.tensor(s)
    rows.append(("nms 4000 boxes, IoU 0.5", *_median_ratio(lambda: B.nms(bx, sx, 0.5),
                                                             lambda: torchvision.ops.nms(
                                                                 bt, st, 0.5))))
    print("\n| op | xpnet | torchvision | ratio median [min-max] |\n|---|---|---|---|")
    for name, tx, tt, med, lo, hi in rows:
        print(f"| {name} | {tx * 1e3:.2f} ms | {tt * 1e3:.2f} ms | {med:.2f}x "
              f"[{lo:.2f}-{hi:.2f}] |")


def main():
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}")
    rng = np.random.default_rng(0)
    a32, a64 = check_roi_align(rng, np.float32), check_roi_align(rng, np.float64)
    p32, p64 = check_roi_pool(rng, np.float32), check_roi_pool(rng, np.float64)
    same, trials = check_nms(rng)
    timing(rng)
    ok = max(a64) < 1e-10 and max(a32) < 1e-4 and max(p32 + p64) == 0 and same == trials
    print("VERIFIED" if ok else "DIFFERENCES FOUND")


if __name__ == "__main__":
    main()
