"""``numba.cuda`` FlashAttention for CuPy arrays (and, under Numba's CUDA simulator, NumPy).

One thread per query row (forward, and the ``dq`` pass) or per key row (the ``dk``/``dv``
pass); a block's threads load tiles of the other side's rows into shared memory together and
each runs the online softmax over them, so no (Tq, Tk) array exists: the forward writes
the output and each row's log-sum-exp, and the backward recomputes the weights from it.
Head sizes up to ``MAXD``; the dispatcher sends larger ones to the composition.

Shared and local arrays need their dtype at compile time, so the kernels are built once per
dtype (:func:`_kernels`).
"""

import math

import numba
import numpy as np
from numba import cuda

from xpnet.kernels._attention_math import MAXD
from xpnet.kernels._attention_math import make_keep
from xpnet.kernels._attention_math import visible

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)
TQ = 4 if SIMULATOR else 64  # rows per block (threads)
TK = 4 if SIMULATOR else 16  # rows per shared tile

_keep = make_keep(cuda.jit(device=True, inline=True))
_visible = cuda.jit(device=True, inline=True)(visible)
_KERNELS = {}


def _kernels(dtype):
    """The three kernels for ``dtype`` (float32 or float64), compiled on first use."""
    key = np.dtype(dtype).name
    if key not in _KERNELS:
        _KERNELS[key] = _build(numba.float32 if key == "float32" else numba.float64)
    return _KERNELS[key]


def _build(ftype):
    @cuda.jit
    def forward(q, k, v, kvm, qm, am, flags, causal, heads, scale, seed, threshold, inv,
                out, lse):
        sk = cuda.shared.array((TK, MAXD), ftype)
        sv = cuda.shared.array((TK, MAXD), ftype)
        qr = cuda.local.array(MAXD, ftype)
        acc = cuda.local.array(MAXD, ftype)
        tx, bh = cuda.threadIdx.x, cuda.blockIdx.y
        i = cuda.blockIdx.x * TQ + tx
        tq, tk, d, dv = q.shape[1], k.shape[1], q.shape[2], v.shape[2]
        w = max(d, dv)
        b = bh // heads
        ab = b if am.shape[0] > 1 else 0
        on = i < tq
        for c in range(d):
            qr[c] = q[bh, i, c] * scale if on else 0.0
        for c in range(dv):
            acc[c] = 0.0
        top, total = -math.inf, 0.0
        stop = min(tk, (cuda.blockIdx.x + 1) * TQ) if causal else tk
        for j0 in range(0, stop, TK):
            for idx in range(tx, TK * w, TQ):
                r, c = idx // w, idx % w
                if j0 + r < tk and c < d:
                    sk[r, c] = k[bh, j0 + r, c]
                if j0 + r < tk and c < dv:
                    sv[r, c] = v[bh, j0 + r, c]
            cuda.syncthreads()
            if on:
                for r in range(min(TK, tk - j0)):
                    j = j0 + r
                    if _visible(kvm, qm, am, flags, b, ab, i, j, causal):
                        s = 0.0
                        for c in range(d):
                            s += qr[c] * sk[r, c]
                        if s > top:
                            alpha = math.exp(top - s)
                            total *= alpha
                            for c in range(dv):
                                acc[c] *= alpha
                            top = s
                        p = math.exp(s - top)
                        total += p
                        if threshold > 0:
                            p = p * inv if _keep(seed, bh, i, j, threshold) else 0.0
                        for c in range(dv):
                            acc[c] += p * sv[r, c]
            cuda.syncthreads()
        if on:
            for c in range(dv):
                out[bh, i, c] = acc[c] / total if total > 0.0 else 0.0
            lse[bh, i] = top + math.log(total) if total > 0.0 else math.inf

    @cuda.jit
    def grad_q(q, k, v, out, dout, lse, kvm, qm, am, flags, causal, heads, scale, seed,
               threshold, inv, dq, delta):
        sk = cuda.shared.array((TK, MAXD), ftype)
        sv = cuda.shared.array((TK, MAXD), ftype)
        qr = cuda.local.array(MAXD, ftype)
        gr = cuda.local.array(MAXD, ftype)
        acc = cuda.local.array(MAXD, ftype)
        tx, bh = cuda.threadIdx.x, cuda.blockIdx.y
        i = cuda.blockIdx.x * TQ + tx
        tq, tk, d, dv = q.shape[1], k.shape[1], q.shape[2], v.shape[2]
        w = max(d, dv)
        b = bh // heads
        ab = b if am.shape[0] > 1 else 0
        on = i < tq
        dsum = 0.0
        for c in range(dv):
            gr[c] = dout[bh, i, c] if on else 0.0
            dsum += gr[c] * (out[bh, i, c] if on else 0.0)
        for c in range(d):
            qr[c] = q[bh, i, c] if on else 0.0
            acc[c] = 0.0
        row_lse = lse[bh, i] if on else math.inf
        stop = min(tk, (cuda.blockIdx.x + 1) * TQ) if causal else tk
        for j0 in range(0, stop, TK):
            for idx in range(tx, TK * w, TQ):
                r, c = idx // w, idx % w
                if j0 + r < tk and c < d:
                    sk[r, c] = k[bh, j0 + r, c]
                if j0 + r < tk and c < dv:
                    sv[r, c] = v[bh, j0 + r, c]
            cuda.syncthreads()
            if on and row_lse != math.inf:
                for r in range(min(TK, tk - j0)):
                    j = j0 + r
                    if _visible(kvm, qm, am, flags, b, ab, i, j, causal):
                        s, dp = 0.0, 0.0
                        for c in range(d):
                            s += qr[c] * sk[r, c]
                        for c in range(dv):
                            dp += gr[c] * sv[r, c]
                        p = math.exp(s * scale - row_lse)
                        if threshold > 0:
                            dp = dp * inv if _keep(seed, bh, i, j, threshold) else 0.0
                        ds = p * (dp - dsum) * scale
                        for c in range(d):
                            acc[c] += ds * sk[r, c]
            cuda.syncthreads()
        if on:
            for c in range(d):
                dq[bh, i, c] = acc[c]
            delta[bh, i] = dsum

    @cuda.jit
    def grad_kv(q, k, v, dout, lse, delta, kvm, qm, am, flags, causal, heads, scale, seed,
                threshold, inv, dk, dv_out):
        sq = cuda.shared.array((TK, MAXD), ftype)
        sg = cuda.shared.array((TK, MAXD), ftype)
        kr = cuda.local.array(MAXD, ftype)
        vr = cuda.local.array(MAXD, ftype)
        ak = cuda.local.array(MAXD, ftype)
        av = cuda.local.array(MAXD, ftype)
        tx, bh = cuda.threadIdx.x, cuda.blockIdx.y
        j = cuda.blockIdx.x * TQ + tx
        tq, tk, d, dv = q.shape[1], k.shape[1], q.shape[2], v.shape[2]
        w = max(d, dv)
        b = bh // heads
        ab = b if am.shape[0] > 1 else 0
        on = j < tk
        for c in range(d):
            kr[c] = k[bh, j, c] if on else 0.0
            ak[c] = 0.0
        for c in range(dv):
            vr[c] = v[bh, j, c] if on else 0.0
            av[c] = 0.0
        start = (cuda.blockIdx.x * TQ // TK) * TK if causal else 0
        for i0 in range(start, tq, TK):
            for idx in range(tx, TK * w, TQ):
                r, c = idx // w, idx % w
                if i0 + r < tq and c < d:
                    sq[r, c] = q[bh, i0 + r, c]
                if i0 + r < tq and c < dv:
                    sg[r, c] = dout[bh, i0 + r, c]
            cuda.syncthreads()
            if on:
                for r in range(min(TK, tq - i0)):
                    i = i0 + r
                    row_lse = lse[bh, i]
                    if row_lse != math.inf and _visible(kvm, qm, am, flags, b, ab, i, j,
                                                        causal):
                        s, dp = 0.0, 0.0
                        for c in range(d):
                            s += sq[r, c] * kr[c]
                        for c in range(dv):
                            dp += sg[r, c] * vr[c]
                        p = math.exp(s * scale - row_lse)
                        pd = p
                        if threshold > 0:
                            kept = _keep(seed, bh, i, j, threshold)
                            pd = p * inv if kept else 0.0
                            dp = dp * inv if kept else 0.0
                        ds = p * (dp - delta[bh, i]) * scale
                        for c in range(dv):
                            av[c] += pd * sg[r, c]
                        for c in range(d):
                            ak[c] += ds * sq[r, c]
            cuda.syncthreads()
        if on:
            for c in range(d):
                dk[bh, j, c] = ak[c]
            for c in range(dv):
                dv_out[bh, j, c] = av[c]

    return forward, grad_q, grad_kv


def _stream():
    """CuPy's current stream as a Numba stream (the default stream under the simulator)."""
    if SIMULATOR:
        return 0
    import cupy

    return cuda.external_stream(cupy.cuda.get_current_stream().ptr)


def _empty(like, shape):
    if SIMULATOR:
        return np.empty(shape, dtype=like.dtype)
    import cupy

    return cupy.empty(shape, dtype=like.dtype)


def _dropout_args(rate):
    if rate <= 0.0:
        return 0, 1.0
    return int(math.ceil(rate * (1 << 24))), 1.0 / (1.0 - rate)


def attention_forward(q, k, v, kvm, qm, am, flags, causal, scale, seed, dropout):
    """``(out (B, H, Tq, Dv), lse (B*H, Tq))`` for C-contiguous (B, H, T, D) arrays."""
    b, h, tq, d = q.shape
    tk, dv = k.shape[2], v.shape[3]
    q3, k3, v3 = q.reshape(b * h, tq, d), k.reshape(b * h, tk, d), v.reshape(b * h, tk, dv)
    out, lse = _empty(q, (b * h, tq, dv)), _empty(q, (b * h, tq))
    threshold, inv = _dropout_args(dropout)
    forward, _, _ = _kernels(q.dtype)
    forward[((tq + TQ - 1) // TQ, b * h), TQ, _stream()](
        q3, k3, v3, kvm, qm, am, flags, bool(causal), h, scale, seed, threshold, inv, out,
        lse)
    return out.reshape(b, h, tq, dv), lse


def attention_backward(q, k, v, out, dout, lse, kvm, qm, am, flags, causal, scale, seed,
                       dropout):
    """``(dq, dk, dv)``: a pass per query row (``dq`` and ``delta = rowsum(dout * out)``),
    then one per key row (``dk``, ``dv``), both recomputing the weights from ``lse``."""
    b, h, tq, d = q.shape
    tk, dvw = k.shape[2], v.shape[3]
    shapes = ((b * h, tq, d), (b * h, tk, d), (b * h, tk, dvw))
    q3, k3, v3 = (a.reshape(s) for a, s in zip((q, k, v), shapes))
    o3, do3 = out.reshape(b * h, tq, dvw), dout.reshape(b * h, tq, dvw)
    dq, dk, dv = (_empty(q, s) for s in shapes)
    delta = _empty(q, (b * h, tq))
    threshold, inv = _dropout_args(dropout)
    _, grad_q, grad_kv = _kernels(q.dtype)
    stream = _stream()
    grad_q[((tq + TQ - 1) // TQ, b * h), TQ, stream](
        q3, k3, v3, o3, do3, lse, kvm, qm, am, flags, bool(causal), h, scale, seed,
        threshold, inv, dq, delta)
    grad_kv[((tk + TQ - 1) // TQ, b * h), TQ, stream](
        q3, k3, v3, do3, lse, delta, kvm, qm, am, flags, bool(causal), h, scale, seed,
        threshold, inv, dk, dv)
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
