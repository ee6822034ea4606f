"""The box kernels' NumPy routes: the njit loops against the array-API compositions
(``XPNET_KERNELS=0``'s path) on a detector's shapes; median of several rounds.

    python benchmarks/detection_kernels.py
"""

import statistics
import time

import array_api_compat.numpy as anp
import numpy as np

from xpnet.kernels import _load
from xpnet.kernels import reference_boxes as ref


def best(f, rounds=7):
    f()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    rng = np.random.default_rng(0)
    cpu = _load("cpu_boxes")
    n, h, w, c, k = 8, 16, 16, 64, 512
    f = rng.standard_normal((n, h, w, c)).astype(np.float32)
    xy = rng.uniform(0, 56, (k, 2))
    rois = np.concatenate([rng.integers(0, n, (k, 1)), xy, xy + rng.uniform(4, 30, (k, 2))],
                          1).astype(np.float32)
    dy = rng.standard_normal((k, 7, 7, c)).astype(np.float32)
    rows = [
        ("roi_align forward", lambda: cpu.roi_align(f, rois, 7, 7, 0.25, 2, True),
         lambda: ref.roi_align(f, rois, (7, 7), 0.25, 2, True, anp)),
        ("roi_align backward", lambda: cpu.roi_align_grad(dy, rois, n, h, w, 0.25, 2, True),
         lambda: ref.roi_align_grad(dy, rois, f.shape, 0.25, 2, True, anp)),
    ]
    xy = rng.uniform(0, 200, (1000, 2))
    b = np.concatenate([xy, xy + rng.uniform(5, 40, (1000, 2))], 1).astype(np.float32)
    cls = np.zeros(1000, dtype=np.int64)
    rows.append(("nms 1000 sorted boxes", lambda: cpu.nms_keep(b, cls, 0.5),
                 lambda: ref.nms_keep(b, cls, 0.5, anp)))
    print(f"| op ({n}x{h}x{w}x{c} features, {k} RoIs, 7x7) | njit | array API | speed-up |")
    print("|---|---|---|---|")
    for name, fk, fr in rows:
        tk, tr = best(fk), best(fr, 3)
        print(f"| {name} | {tk * 1e3:.2f} ms | {tr * 1e3:.1f} ms | {tr / tk:.0f}x |")


if __name__ == "__main__":
    main()
