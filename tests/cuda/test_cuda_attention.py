"""The numba.cuda attention kernels against the array-API composition (tiny shapes under
the simulator: lengths that do not divide the tiles, masks emptying rows, dropout)."""

import numpy as np
import pytest

from xpnet.kernels import attention as fused


def _put(device, *arrays):
    return [device.put(a) for a in arrays]


@pytest.mark.parametrize("case", ["plain", "causal+masks", "dropout", "full mask"])
def test_attention_forward_backward(device, case):
    rng = np.random.default_rng(0)
    b, h, tq, tk, d, dv = 2, 1, 5, 6, 3, 2
    q, k = (rng.standard_normal((b, h, t, d)) * 3 for t in (tq, tk))
    v = rng.standard_normal((b, h, tk, dv))
    dout = rng.standard_normal((b, h, tq, dv))
    kw = {}
    if case == "causal+masks":
        kv = np.ones((b, tk), dtype=bool)
        kv[1, :] = False
        kv[1, 0] = True  # batch row 1: every query sees only key 0
        qm = np.ones((b, tq), dtype=bool)
        qm[0, 2] = False  # an empty row
        kw = {"kv_mask": kv, "q_mask": qm, "causal": True}
    elif case == "dropout":
        kw = {"dropout": 0.4, "seed": 9}
    elif case == "full mask":
        full = rng.random((b, tq, tk)) > 0.4
        full[0, 1, :] = False
        kw = {"mask": full, "dropout": 0.2, "seed": 1}
    want_out, _, ctx = fused.attention(q, k, v, return_weights=True, **kw)
    want = (want_out, *fused.attention_grad(ctx, dout))
    cuda = fused._load("cuda")
    kernel_masks = fused._kernel_masks(np, q, k, (kw.get("kv_mask"), kw.get("q_mask"),
                                                  kw.get("mask")))
    dq_, dk_, dv_ = _put(device, q, k, v)
    masks = _put(device, *kernel_masks[:3])
    args = (*masks, kernel_masks[3], kw.get("causal", False), 1 / np.sqrt(d),
            kw.get("seed", 0), kw.get("dropout", 0.0))
    out, lse = cuda.attention_forward(dq_, dk_, dv_, *args)
    got = (out, *cuda.attention_backward(dq_, dk_, dv_, out, device.put(dout), lse, *args[:4],
                                         *args[4:]))
    for g, w, what in zip(got, want, ("out", "dq", "dk", "dv")):
        np.testing.assert_allclose(device.get(g), w, rtol=1e-9, atol=1e-12, err_msg=what)
