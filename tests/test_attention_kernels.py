"""The fused attention kernels (njit on NumPy) against the array-API composition, on hostile
inputs: scores of +-1e4, rows that see one key or none, lengths that do not divide the block
sizes, dropout replayed in the backward pass; and the composition against central
differences."""

import array_api_compat.numpy as xp
import numpy as np
import pytest

from xpnet.kernels import attention as fused
from xpnet.kernels import reference_attention as ref
from xpnet.kernels._cpu_attention import BK
from xpnet.kernels._cpu_attention import BQ


def _case(seed, b=2, h=2, tq=BQ + 7, tk=BK + 3, d=5, dv=3, scale=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((b, h, tq, d)) * scale).astype(dtype)
    k = (rng.standard_normal((b, h, tk, d)) * scale).astype(dtype)
    v = rng.standard_normal((b, h, tk, dv)).astype(dtype)
    dout = rng.standard_normal((b, h, tq, dv)).astype(dtype)
    return rng, q, k, v, dout


def _masks(rng, b, tq, tk):
    kv = rng.random((b, tk)) > 0.3
    kv[0, :] = False
    kv[0, 5] = True  # batch row 0: one visible key
    qm = rng.random((b, tq)) > 0.2
    full = rng.random((b, tq, tk)) > 0.1
    full[1, 3, :] = False  # a query that sees nothing
    return kv, qm, full


def _both(q, k, v, dout, **kw):
    out, _, ctx = fused.attention(q, k, v, **kw)
    assert ctx.route == "cpu"
    out_r, w, ctx_r = fused.attention(q, k, v, return_weights=True, **kw)
    assert ctx_r.route == "ref" and w is not None
    return (out, *fused.attention_grad(ctx, dout)), (out_r, *fused.attention_grad(ctx_r, dout))


CASES = {
    "plain": {},
    "causal": {"causal": True},
    "masks": "masks",
    "masks+causal": "masks+causal",
    "dropout": {"dropout": 0.3, "seed": 11},
    "dropout+masks": "dropout+masks",
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_matches_composition(njit, name, dtype):
    rng, q, k, v, dout = _case(1, dtype=dtype)
    kw = CASES[name]
    if isinstance(kw, str):
        kv, qm, full = _masks(rng, q.shape[0], q.shape[2], k.shape[2])
        kw = {"kv_mask": kv, "q_mask": qm, "mask": full, "causal": "causal" in kw}
        if "dropout" in CASES[name]:
            kw.update(dropout=0.25, seed=5)
    got, want = _both(q, k, v, dout, **kw)
    tol = {"rtol": 2e-4, "atol": 2e-5} if dtype == np.float32 else {"rtol": 1e-10,
                                                                    "atol": 1e-12}
    for g, w, what in zip(got, want, ("out", "dq", "dk", "dv")):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, w, err_msg=what, **tol)


def test_hostile_scores_and_odd_lengths(njit):
    """Scores near +-1e4 (no overflow), a single visible key per row, odd lengths."""
    rng, q, k, v, dout = _case(2, tq=3 * BQ + 1, tk=2 * BK + 5, scale=100.0 / np.sqrt(5),
                               dtype=np.float32)
    s = np.abs(q @ np.swapaxes(k, -1, -2))
    assert s.max() > 5e3
    kv = np.zeros((q.shape[0], k.shape[2]), dtype=bool)
    kv[:, -1] = True
    got, want = _both(q, k, v, dout, kv_mask=kv)
    assert all(np.isfinite(g).all() for g in got)
    np.testing.assert_allclose(got[0], np.broadcast_to(v[:, :, -1:, :], got[0].shape),
                               rtol=1e-6)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4)
    got, want = _both(q, k, v, dout, causal=True)
    for g, w in zip(got, want):
        assert np.isfinite(g).all()
        np.testing.assert_allclose(g, w, rtol=2e-3, atol=2e-2)


def test_fully_masked_row_is_zero(njit):
    """Keras 3 zeroes a row whose keys are all masked (its Softmax multiplies by the mask):
    the output row is 0 and nothing flows back through it."""
    rng, q, k, v, dout = _case(3, tq=4, tk=6)
    kv = np.ones((2, 6), dtype=bool)
    kv[1] = False
    for kw in ({}, {"return_weights": True}):
        out, w, ctx = fused.attention(q, k, v, kv_mask=kv, **kw)
        dq, dk, dv = fused.attention_grad(ctx, dout)
        assert np.all(out[1] == 0) and np.all(dq[1] == 0) and np.all(dk[1] == 0)
        assert np.all(dv[1] == 0) and np.abs(out[0]).sum() > 0
        if w is not None:
            assert np.all(w[1] == 0)


def test_dropout_is_replayable(njit):
    rng, q, k, v, dout = _case(4, tq=9, tk=17)
    a = fused.attention(q, k, v, dropout=0.5, seed=3)[0]
    b = fused.attention(q, k, v, dropout=0.5, seed=3)[0]
    c = fused.attention(q, k, v, dropout=0.5, seed=4)[0]
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3
    keep = ref.keep_mask(3, 0.5, 4, 9, 17, xp)
    assert 0.4 < keep.mean() < 0.6


@pytest.mark.parametrize("kw", [{}, {"causal": True, "dropout": 0.3, "seed": 2}, "masks"])
def test_composition_gradient_by_central_differences(kw):
    rng, q, k, v, dout = _case(5, b=2, h=1, tq=3, tk=4, d=2, dv=2)
    if kw == "masks":
        kv = np.array([[1, 0, 1, 1], [0, 0, 1, 0]], dtype=bool)
        kw = {"kv_mask": kv, "q_mask": np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)}
    dw = rng.standard_normal((2, 1, 3, 4))

    def objective(q, k, v):
        out, w, _ = fused.attention(q, k, v, return_weights=True, **kw)
        return float(np.sum(out * dout) + np.sum(w * dw))

    _, _, ctx = fused.attention(q, k, v, return_weights=True, **kw)
    grads = fused.attention_grad(ctx, dout, dw)
    args = [q, k, v]
    for n, g in enumerate(grads):
        num = np.zeros_like(g)
        for idx in np.ndindex(g.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[n][idx] += 1e-6
            minus[n][idx] -= 1e-6
            num[idx] = (objective(*plus) - objective(*minus)) / 2e-6
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-7)


def test_strict_namespace_takes_the_composition(njit):
    import array_api_strict as strict

    dev, cpu = strict.Device("device1"), strict.Device("CPU_DEVICE")
    rng, q, k, v, dout = _case(6, tq=5, tk=7)
    kv = np.array([[1] * 7, [0] * 6 + [1]], dtype=bool)
    qs, ks, vs, ds, kvs = (strict.asarray(a, device=dev) for a in (q, k, v, dout, kv))
    kw = {"causal": True, "dropout": 0.2, "seed": 1}
    out, _, ctx = fused.attention(qs, ks, vs, kv_mask=kvs, **kw)
    assert ctx.route == "ref"
    got = (out, *fused.attention_grad(ctx, ds))
    want = _both(q, k, v, dout, kv_mask=kv, **kw)[0]
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g.to_device(cpu)), w, rtol=1e-10, atol=1e-12)


def test_threads_give_the_same_result(njit):
    """Chunks of (batch, head) pairs side by side on xpnet's threads: bit-identical."""
    from xpnet.kernels import threads

    rng, q, k, v, dout = _case(7, b=3, h=3, tq=20, tk=33, dtype=np.float32)
    kw = {"causal": True, "dropout": 0.2, "seed": 3}
    out, _, ctx = fused.attention(q, k, v, **kw)
    want = (out, *fused.attention_grad(ctx, dout))
    with threads.using(2):
        out, _, ctx = fused.attention(q, k, v, **kw)
        got = (out, *fused.attention_grad(ctx, dout))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_broadcast_masks(njit):
    """Masks with a batch axis of one (or none) broadcast as in the composition."""
    rng, q, k, v, dout = _case(8, tq=6, tk=9)
    kv = np.array([[1, 1, 0, 1, 0, 1, 1, 1, 0]], dtype=bool)
    full = rng.random((6, 9)) > 0.3
    got, want = _both(q, k, v, dout, kv_mask=kv, mask=full)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
