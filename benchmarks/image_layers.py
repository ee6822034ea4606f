"""Image preprocessing layers: xpnet on NumPy against PyTorch eager on the CPU, side by side.

    python benchmarks/image_layers.py [--rounds 3]

Batch 32 x 64 x 64 x 3 float32. For each operation: xpnet's forward (training mode) and its
input gradient (``backward``), against ``torch.nn.functional.interpolate`` (bilinear,
align_corners=False: the same half-pixel rule) and ``affine_grid`` + ``grid_sample``
(reflection padding) for a rotation; PyTorch's gradient time is its forward + backward minus
its forward. Median of 7 calls per round; ratio = xpnet / PyTorch, median [min-max] over
rounds. PyTorch runs on 2 threads.
"""

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from xpnet import layers
from xpnet.backend import get_backend


def _median_time(f, n=7):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def _case(backend, layer, x, torch_forward):
    layer.build_on(backend, (None,) + x.shape[1:])
    y, ctx = layer.forward(x, training=True)
    ours = (_median_time(lambda: layer.forward(x, training=True)),
            _median_time(lambda: layer.backward(ctx, y)))
    xt = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    g = torch.ones_like(torch_forward(xt))

    def both():
        torch_forward(xt).backward(g)

    forward = _median_time(lambda: torch_forward(xt))
    return ours + (forward, _median_time(both) - forward)


def _rotate(xt, degrees=20.0):
    a = math.radians(degrees)
    theta = torch.tensor([[math.cos(a), -math.sin(a), 0.0],
                          [math.sin(a), math.cos(a), 0.0]]).expand(xt.shape[0], 2, 3)
    grid = F.affine_grid(theta, xt.shape, align_corners=True)
    return F.grid_sample(xt, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    backend = get_backend("cpu")
    x = np.random.default_rng(0).uniform(0, 1, (32, 64, 64, 3)).astype(np.float32)
    cases = {
        "Resizing 64->128 bilinear": (lambda: layers.Resizing(128, 128), lambda t: F.interpolate(
            t, size=(128, 128), mode="bilinear", align_corners=False)),
        "Resizing 64->32 bilinear": (lambda: layers.Resizing(32, 32), lambda t: F.interpolate(
            t, size=(32, 32), mode="bilinear", align_corners=False)),
        "RandomRotation(0.1) reflect": (lambda: layers.RandomRotation(0.1, seed=0), _rotate),
    }
    print("| Operation | xpnet fwd / grad (ms) | PyTorch fwd / grad (ms) | forward ratio | "
          "gradient ratio |")
    print("|---|---|---|---|---|")
    for name, (make, torch_forward) in cases.items():
        runs = np.array([_case(backend, make(), x, torch_forward) for _ in range(args.rounds)])
        med = np.median(runs, axis=0) * 1e3
        rf, rb = runs[:, 0] / runs[:, 2], runs[:, 1] / runs[:, 3]
        print(f"| {name} | {med[0]:.2f} / {med[1]:.2f} | {med[2]:.2f} / {med[3]:.2f} | "
              f"{np.median(rf):.2f}x [{rf.min():.2f}-{rf.max():.2f}] | "
              f"{np.median(rb):.2f}x [{rb.min():.2f}-{rb.max():.2f}] |")


if __name__ == "__main__":
    main()
