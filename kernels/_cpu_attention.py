"""``numba.njit`` FlashAttention for NumPy arrays: one call handles a range of (batch, head)
pairs, blocks of ``BQ`` queries against blocks of ``BK`` keys, with a running row maximum
and sum, so no (Tq, Tk) array is ever held; the forward keeps only the output and each
row's log-sum-exp, and the backward recomputes each block's weights from them.

The block products go through ``np.dot`` (BLAS) on contiguous copies of each block (the
arrays may be views of any strides); the masks, exponentials and dropout are scalar loops
over one block. All kernels are serial and release the GIL:
:mod:`xpnet.kernels.attention` runs chunks of the (batch, head) pairs side by side on
:mod:`xpnet.kernels.threads`.
"""

import math

import numba
import numpy as np

from xpnet.kernels._attention_math import HAS_FULL
from xpnet.kernels._attention_math import HAS_KV
from xpnet.kernels._attention_math import HAS_Q
from xpnet.kernels._attention_math import make_keep

_OPTIONS = {"cache": True, "error_model": "numpy", "nogil": True, "boundscheck": False}
_njit = numba.njit(**_OPTIONS)
_keep = make_keep(numba.njit(inline="always", **_OPTIONS))

# Query and key block sizes: a 128 x 512 score block (256 KB in float32) stays in L2; on a
# shared 2-core machine 64 x 128 blocks ran 2-4x slower at length 1024 (BLAS on small
# blocks), 128 x 512 and 256 x 256 about alike.
BQ = 128
BK = 512


@numba.njit(inline="always", **_OPTIONS)
def _fast_exp(x):
    """``exp(x)`` for ``x <= 0`` without a library call, so the loops over a block vectorise
    (Numba's ``math.exp`` is a scalar call: 1.9 ns an element against 0.66 here, 128 x 512
    block): ``exp(x / 256) ** 256`` with ``exp(y)`` by its degree-9 Taylor polynomial on
    ``[-0.341, 0]``, in float64 (relative error < 2e-9, below float32's rounding); 0 below
    -87.34, where float32 underflows. Used for float32 blocks; float64 keeps ``math.exp``."""
    y = max(x, -87.34) * (1.0 / 256.0)
    p = 1.0 + y * (1.0 + y * (0.5 + y * (1.0 / 6 + y * (1.0 / 24 + y * (1.0 / 120 + y * (
        1.0 / 720 + y * (1.0 / 5040 + y * (1.0 / 40320 + y * (1.0 / 362880)))))))))
    for _ in range(8):
        p = p * p
    return p if x >= -87.34 else 0.0


@_njit
def _exp_rows(s, shift, fast):
    """``s[r, c] = exp(s[r, c] - shift[r])`` in place (``fast``: :func:`_fast_exp`)."""
    nq, nk = s.shape
    if fast:
        for r in range(nq):
            top = shift[r]
            for c in range(nk):
                s[r, c] = _fast_exp(s[r, c] - top)
    else:
        for r in range(nq):
            top = shift[r]
            for c in range(nk):
                s[r, c] = math.exp(s[r, c] - top)


@numba.njit(fastmath=True, cache=True, nogil=True)
def _row_sum(s, r):
    """``sum(s[r])`` with reassociation allowed (vectorised; the terms are >= 0)."""
    total = 0.0
    for c in range(s.shape[1]):
        total += s[r, c]
    return total


@_njit
def _mask_block(s, i0, j0, b, ab, kvm, qm, am, flags, causal, scale):
    """Scale raw scores block ``s`` in place and set the scores of hidden keys to -inf
    (row by row, so the unmasked inner loops stay simple enough to vectorise)."""
    nq, nk = s.shape
    for r in range(nq):
        i = i0 + r
        stop = min(nk, max(0, i - j0 + 1)) if causal else nk
        if (flags & HAS_Q) and qm[b, i] == 0:
            stop = 0
        for c in range(stop):
            s[r, c] *= scale
        for c in range(stop, nk):
            s[r, c] = -np.inf
        if flags & HAS_KV:
            for c in range(stop):
                if kvm[b, j0 + c] == 0:
                    s[r, c] = -np.inf
        if flags & HAS_FULL:
            for c in range(stop):
                if am[ab, i, j0 + c] == 0:
                    s[r, c] = -np.inf


@_njit
def _drop(s, i0, j0, bh, seed, threshold, inv_keep):
    """Dropout on block ``s`` in place: zero where the hash drops, else scale by
    ``inv_keep``."""
    nq, nk = s.shape
    for r in range(nq):
        for c in range(nk):
            if _keep(seed, bh, i0 + r, j0 + c, threshold):
                s[r, c] *= inv_keep
            else:
                s[r, c] = 0.0


@_njit
def _scores(s, i0, j0, b, ab, bh, kvm, qm, am, flags, causal, scale, seed, threshold,
            inv_keep, m, row_sum):
    """Turn raw ``q k^T`` block ``s`` into dropped-out exponentials in place, updating the
    running maxima ``m`` and sums ``row_sum``; returns each row's rescale factor."""
    _mask_block(s, i0, j0, b, ab, kvm, qm, am, flags, causal, scale)
    nq, nk = s.shape
    alpha = np.ones(nq, dtype=s.dtype)
    shift = np.zeros(nq, dtype=s.dtype)
    for r in range(nq):
        top = m[r]
        for c in range(nk):
            top = max(top, s[r, c])
        if top == -np.inf:
            s[r, :] = -np.inf  # nothing visible yet: exp gives 0
            continue
        alpha[r] = math.exp(m[r] - top)
        m[r] = shift[r] = top
    _exp_rows(s, shift, s.itemsize == 4)  # float32
    for r in range(nq):
        row_sum[r] = row_sum[r] * alpha[r] + _row_sum(s, r)
    if threshold > 0:
        _drop(s, i0, j0, bh, seed, threshold, inv_keep)
    return alpha


@_njit
def forward(q, k, v, kvm, qm, am, flags, causal, heads, scale, seed, threshold, inv_keep,
            out, lse, lo, hi):
    """``out[bh]`` and ``lse[bh]`` for ``bh`` in ``[lo, hi)``; a row that sees no key gets
    ``out = 0`` and ``lse = +inf`` (so the backward's recomputed weights are 0)."""
    tq, tk = q.shape[2], k.shape[2]
    for bh in range(lo, hi):
        b, h = bh // heads, bh % heads
        ab = b if am.shape[0] > 1 else 0
        for i0 in range(0, tq, BQ):
            i1 = min(i0 + BQ, tq)
            qb = np.ascontiguousarray(q[b, h, i0:i1])
            m = np.full(i1 - i0, -np.inf, dtype=q.dtype)
            row_sum = np.zeros(i1 - i0, dtype=q.dtype)
            acc = np.zeros((i1 - i0, v.shape[3]), dtype=q.dtype)
            stop = min(tk, i1) if causal else tk
            for j0 in range(0, stop, BK):
                j1 = min(j0 + BK, stop)
                s = np.dot(qb, np.ascontiguousarray(k[b, h, j0:j1].T))
                alpha = _scores(s, i0, j0, b, ab, bh, kvm, qm, am, flags, causal, scale,
                                seed, threshold, inv_keep, m, row_sum)
                for r in range(i1 - i0):
                    if alpha[r] != 1.0:
                        acc[r] *= alpha[r]
                acc += np.dot(s, np.ascontiguousarray(v[b, h, j0:j1]))
            for r in range(i1 - i0):
                if row_sum[r] > 0.0:
                    out[b, h, i0 + r] = acc[r] / row_sum[r]
                    lse[bh, i0 + r] = m[r] + math.log(row_sum[r])
                else:
                    out[b, h, i0 + r] = 0.0
                    lse[bh, i0 + r] = np.inf


@_njit
def _grad_block(s, dp, i0, j0, b, ab, bh, kvm, qm, am, flags, causal, scale, seed,
                threshold, inv_keep, lse, delta):
    """From raw scores ``s`` and ``dp = dout v^T``: ``s`` becomes the dropped-out weights
    (for dv) and ``dp`` becomes ``ds = p * (dp_kept - delta)`` (for dq and dk)."""
    _mask_block(s, i0, j0, b, ab, kvm, qm, am, flags, causal, scale)
    nq, nk = s.shape
    # hidden: exp(-inf) = 0; an empty row has lse = inf
    _exp_rows(s, lse[i0:i0 + nq], s.itemsize == 4)  # float32
    if threshold > 0:
        _drop(dp, i0, j0, bh, seed, threshold, inv_keep)
        for r in range(nq):
            d = delta[i0 + r]
            for c in range(nk):
                dp[r, c] = s[r, c] * (dp[r, c] - d)
        _drop(s, i0, j0, bh, seed, threshold, inv_keep)
        return
    for r in range(nq):
        d = delta[i0 + r]
        for c in range(nk):
            dp[r, c] = s[r, c] * (dp[r, c] - d)


@_njit
def backward(q, k, v, out, dout, lse, kvm, qm, am, flags, causal, heads, scale, seed,
             threshold, inv_keep, dq, dk, dv, lo, hi):
    """``dq``, ``dk``, ``dv`` for ``bh`` in ``[lo, hi)``, recomputing the weights block by
    block from ``lse``; ``delta_i = sum(dout_i * out_i)`` (FlashAttention-2)."""
    tq, tk = q.shape[2], k.shape[2]
    for bh in range(lo, hi):
        b, h = bh // heads, bh % heads
        ab = b if am.shape[0] > 1 else 0
        delta = np.empty(tq, dtype=q.dtype)
        for i in range(tq):
            total = 0.0
            for c in range(out.shape[3]):
                total += dout[b, h, i, c] * out[b, h, i, c]
            delta[i] = total
        dq[b, h] = 0.0
        for j0 in range(0, tk, BK):
            j1 = min(j0 + BK, tk)
            kb = np.ascontiguousarray(k[b, h, j0:j1])
            dkb = np.zeros((j1 - j0, k.shape[3]), dtype=q.dtype)
            dvb = np.zeros((j1 - j0, v.shape[3]), dtype=q.dtype)
            ktb = np.ascontiguousarray(kb.T)
            vtb = np.ascontiguousarray(v[b, h, j0:j1].T)
            start = (j0 // BQ) * BQ if causal else 0
            for i0 in range(start, tq, BQ):
                i1 = min(i0 + BQ, tq)
                qb = np.ascontiguousarray(q[b, h, i0:i1])
                db = np.ascontiguousarray(dout[b, h, i0:i1])
                s = np.dot(qb, ktb)
                dp = np.dot(db, vtb)
                _grad_block(s, dp, i0, j0, b, ab, bh, kvm, qm, am, flags, causal, scale,
                            seed, threshold, inv_keep, lse[bh], delta)
                dvb += np.dot(s.T, db)
                dq[b, h, i0:i1] += np.dot(dp, kb) * scale
                dkb += np.dot(dp.T, qb) * scale
            dk[b, h, j0:j1] = dkb
            dv[b, h, j0:j1] = dvb


def dropout_args(rate):
    """``(threshold, 1 / (1 - rate))`` for :func:`_attention_math.keep` (0, 1 without)."""
    if rate <= 0.0:
        return 0, 1.0
    return int(math.ceil(rate * (1 << 24))), 1.0 / (1.0 - rate)


def _heads_major(b, h, t, d, dtype):
    """A (B, H, T, D) view of a new (B, T, H, D) array: the kernels write heads where the
    layer's output projection reads them, so no copy goes between."""
    return np.empty((b, t, h, d), dtype=dtype).transpose(0, 2, 1, 3)


def attention_forward(q, k, v, kvm, qm, am, flags, causal, scale, seed, dropout):
    """``(out (B, H, Tq, Dv), lse (B*H, Tq))`` for (B, H, T, D) arrays of any strides (a
    block is copied where it is read: the (B, T, H, D) views the projections give need no
    copy of the whole); ``out`` is a (B, H, Tq, Dv) view of a (B, Tq, H, Dv) array."""
    from xpnet.kernels import threads

    b, h, tq, _ = q.shape
    out = _heads_major(b, h, tq, v.shape[3], q.dtype)
    lse = np.empty((b * h, tq), dtype=q.dtype)
    threshold, inv = dropout_args(dropout)
    threads.run(lambda lo, hi: forward(q, k, v, kvm, qm, am, flags, bool(causal), h, scale,
                                       seed, threshold, inv, out, lse, lo, hi), b * h)
    return out, lse


def attention_backward(q, k, v, out, dout, lse, kvm, qm, am, flags, causal, scale, seed,
                       dropout):
    """``(dq, dk, dv)`` for the call whose output and log-sum-exp are ``out`` and ``lse``."""
    from xpnet.kernels import threads

    b, h, tq, d = q.shape
    tk, dvw = k.shape[2], v.shape[3]
    dq = _heads_major(b, h, tq, d, q.dtype)
    dk, dv = _heads_major(b, h, tk, d, q.dtype), _heads_major(b, h, tk, dvw, q.dtype)
    threshold, inv = dropout_args(dropout)
    threads.run(lambda lo, hi: backward(q, k, v, out, dout, lse, kvm, qm, am, flags,
                                        bool(causal), h, scale, seed, threshold, inv, dq, dk,
                                        dv, lo, hi), b * h)
    return dq, dk, dv
