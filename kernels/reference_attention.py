"""Scaled dot-product attention as the plain array-API composition: the fallback for any
namespace, and the oracle the fused kernels are tested against.

Shapes: ``q`` (B, H, Tq, D), ``k`` (B, H, Tk, D), ``v`` (B, H, Tk, Dv). A key ``j`` is
visible to query ``i`` of batch row ``b`` when every given mask allows it:
``kv_mask[b, j]``, ``q_mask[b, i]``, ``mask[b or 0, i, j]`` and, with ``causal``, ``i >= j``.
A row that sees no key gets all-zero weights (Keras 3's ``Softmax`` multiplies its output by
the mask, so a fully masked row is zero, not uniform), hence a zero output and no gradient.

Dropout on the weights draws its keep/drop decisions from a counter-based hash of
``(seed, b * H + h, i, j)`` (:func:`keep_mask`), so the backward pass, and any kernel,
replays exactly the forward pass's mask without storing it.
"""

import math

__all__ = ["allowed", "keep_mask", "forward", "backward"]

_M32 = 0xFFFFFFFF


def _fmix(x, xp):
    """MurmurHash3's 32-bit finaliser on uint64 arrays holding 32-bit values."""
    x = x ^ (x >> 16)
    x = (x * 0x85EBCA6B) & _M32
    x = x ^ (x >> 13)
    x = (x * 0xC2B2AE35) & _M32
    return x ^ (x >> 16)


def keep_mask(seed, rate, bh, tq, tk, xp, device=None):
    """Bool (BH, Tq, Tk): True where dropout keeps weight ``(bh, i, j)``;
    ``u = fmix(fmix(fmix(seed + bh) + i) + j) >> 8`` over 2**24, kept when ``u >= rate``."""
    u64 = xp.uint64
    s = xp.asarray(int(seed) & _M32, dtype=u64, device=device)
    h = _fmix((s + xp.reshape(xp.arange(bh, dtype=u64, device=device), (-1, 1, 1))) & _M32,
              xp)
    h = _fmix((h + xp.reshape(xp.arange(tq, dtype=u64, device=device), (1, -1, 1))) & _M32,
              xp)
    h = _fmix((h + xp.reshape(xp.arange(tk, dtype=u64, device=device), (1, 1, -1))) & _M32,
              xp)
    threshold = int(math.ceil(rate * (1 << 24)))
    return (h >> 8) >= threshold


def allowed(shape, xp, device, kv_mask=None, q_mask=None, mask=None, causal=False):
    """Bool (B, 1, Tq, Tk) for scores of ``shape`` (B, H, Tq, Tk), or None when nothing is
    masked; masks with a batch axis of one (or none) broadcast."""
    b, _, tq, tk = shape
    out = None

    def both(a, m):
        return m if a is None else a & m

    if kv_mask is not None:
        out = both(out, xp.reshape(xp.astype(kv_mask, xp.bool), (-1, 1, 1, tk)))
    if q_mask is not None:
        out = both(out, xp.reshape(xp.astype(q_mask, xp.bool), (-1, 1, tq, 1)))
    if mask is not None:
        out = both(out, xp.reshape(xp.astype(mask, xp.bool), (-1, 1, tq, tk)))
    if causal:
        i = xp.reshape(xp.arange(tq, device=device), (tq, 1))
        j = xp.reshape(xp.arange(tk, device=device), (1, tk))
        out = both(out, xp.reshape(i >= j, (1, 1, tq, tk)))
    if out is not None:
        out = xp.broadcast_to(out, (b, 1, tq, tk))
    return out


def weights(q, k, xp, scale, allow):
    """``softmax(scale q k^T)`` over the allowed keys, zero rows where none is allowed."""
    s = (q @ xp.matrix_transpose(k)) * scale
    if allow is None:
        m = xp.max(s, axis=-1, keepdims=True)
        e = xp.exp(s - m)
        return e / xp.sum(e, axis=-1, keepdims=True)
    low = xp.asarray(-xp.finfo(s.dtype).max, dtype=s.dtype, device=_device(s, xp))
    m = xp.max(xp.where(allow, s, low), axis=-1, keepdims=True)
    e = xp.where(allow, xp.exp(xp.where(allow, s - m, 0.0)), 0.0)
    total = xp.sum(e, axis=-1, keepdims=True)
    return e / xp.where(total > 0, total, 1.0)


def _device(a, xp):
    return getattr(a, "device", None)


def forward(q, k, v, xp, scale, kv_mask=None, q_mask=None, mask=None, causal=False,
            dropout=0.0, seed=0):
    """``(out, p, keep)``: ``out = (p * keep / (1 - dropout)) @ v``, ``p`` the weights
    (before dropout), ``keep`` None without dropout."""
    dev = _device(q, xp)
    allow = allowed((*q.shape[:3], k.shape[2]), xp, dev, kv_mask, q_mask, mask, causal)
    p = weights(q, k, xp, scale, allow)
    keep = None
    pd = p
    if dropout > 0.0:
        b, h, tq, _ = q.shape
        keep = xp.reshape(keep_mask(seed, dropout, b * h, tq, k.shape[2], xp, dev), p.shape)
        pd = xp.where(keep, p * (1.0 / (1.0 - dropout)), 0.0)
    return pd @ v, p, keep


def backward(q, k, v, p, keep, dout, xp, scale, dropout=0.0, dp_extra=None):
    """``(dq, dk, dv)`` from the saved weights ``p``; ``dp_extra`` is a gradient arriving at
    the returned weights themselves (``return_attention_scores``)."""
    pd = p if keep is None else xp.where(keep, p * (1.0 / (1.0 - dropout)), 0.0)
    dv = xp.matrix_transpose(pd) @ dout
    dp = dout @ xp.matrix_transpose(v)
    if keep is not None:
        dp = xp.where(keep, dp * (1.0 / (1.0 - dropout)), 0.0)
    if dp_extra is not None:
        dp = dp + dp_extra
    ds = p * (dp - xp.sum(dp * p, axis=-1, keepdims=True))
    dq = (ds @ k) * scale
    dk = (xp.matrix_transpose(ds) @ q) * scale
    return dq, dk, dv
