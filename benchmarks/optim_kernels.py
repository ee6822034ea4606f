"""The fused optimizer kernels of kernels/optim.py against their array-API composition
and against PyTorch's CPU optimizers, on one flat float32 buffer (the MNIST CNN's 225,000
parameters). Run from the repository root: ``NUMBA_NUM_THREADS=1 python
benchmarks/optim_kernels.py``. Prints a Markdown table: median microseconds per step over 7
rounds of 50 calls, the three contenders alternating, and the median [min-max] of the
per-round ratios. ``TORCH_THREADS`` sets PyTorch's threads (default 2)."""

import os
import statistics
import sys
import time

import array_api_compat.numpy as xp
import numpy as np

sys.path.insert(0, ".")

from xpnet import kernels  # noqa: E402
from xpnet.kernels import optim  # noqa: E402

N, ROUNDS, CALLS = 225_000, 7, 50
STEPS = {
    "nadam": (2, dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3, u_product=0.3),
              ("NAdam", {})),
    "adamax": (2, dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3),
               ("Adamax", {})),
    "adadelta": (2, dict(lr=1e-3, rho=0.95, epsilon=1e-7), ("Adadelta", {"rho": 0.95})),
    "ftrl": (2, dict(lr=1e-3, lr_power=-0.5, l1=0.0, l2=0.0, l2_shrinkage=0.0, beta=0.0), None),
    "lion": (1, dict(lr=1e-3, beta_1=0.9, beta_2=0.99), None),
}


def _timed(fn):
    t = time.perf_counter()
    for _ in range(CALLS):
        fn()
    return (time.perf_counter() - t) / CALLS * 1e6


def _torch_step(spec, g):
    if spec is None:
        return None
    import torch

    torch.set_num_threads(int(os.environ.get("TORCH_THREADS", "2")))
    p = torch.nn.Parameter(torch.randn(N))
    p.grad = torch.from_numpy(g.copy())
    opt = getattr(torch.optim, spec[0])([p], lr=1e-3, foreach=False, **spec[1])
    opt.step()
    return opt.step


def main():
    rng = np.random.default_rng(0)
    g = rng.standard_normal(N).astype(np.float32) * 1e-3
    print(f"{N} float32 parameters; median us per step over {ROUNDS} rounds of {CALLS} calls")
    print("| optimizer | fused njit | composed | PyTorch | composed / fused | PyTorch / fused |")
    print("|---|---|---|---|---|---|")
    for name, (k, kw, spec) in STEPS.items():
        fused = [rng.standard_normal(N).astype(np.float32)] + [np.full(N, 0.1, np.float32)
                                                                 for _ in range(k)]
        comp = [a.copy() for a in fused]
        ref = getattr(optim, f"reference_{name}")
        run_fused = lambda: getattr(kernels, name)(fused[0], g, *fused[1:], **kw)
        run_comp = lambda: ref(comp[0], g, *comp[1:], xp, **kw)
        run_torch = _torch_step(spec, g)
        for warm in (run_fused, run_comp, run_torch):  # compile / load the njit cache first
            if warm is not None:
                warm()
        times = {"fused": [], "comp": [], "torch": []}
        for _ in range(ROUNDS):
            times["fused"].append(_timed(run_fused))
            times["comp"].append(_timed(run_comp))
            if run_torch is not None:
                times["torch"].append(_timed(run_torch))
        med = {key: statistics.median(v) if v else None for key, v in times.items()}

        def ratio(key):
            if not times[key]:
                return "-"
            r = [a / b for a, b in zip(times[key], times["fused"])]
            return f"{statistics.median(r):.2f}x [{min(r):.2f}-{max(r):.2f}]"

        torch_us = "-" if med["torch"] is None else f"{med['torch']:.0f}"
        print(f"| {name} | {med['fused']:.0f} | {med['comp']:.0f} | {torch_us} | "
              f"{ratio('comp')} | {ratio('torch')} |")


if __name__ == "__main__":
    main()
