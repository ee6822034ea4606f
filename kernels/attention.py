"""Scaled dot-product attention, one dispatch point for the forward and one for the
backward pass:

``out = dropout(softmax(scale * q k^T + masks)) @ v``, per (batch, head).

- NumPy: the ``numba.njit`` FlashAttention of ``_cpu_attention.py`` (blocked, running max
  and sum; forward keeps the output and each row's log-sum-exp; backward recomputes scores
  block by block), chunks of (batch, head) pairs side by side on
  :mod:`xpnet.kernels.threads`.
- CuPy: the ``numba.cuda`` kernels of ``_cuda_attention.py`` (shared-memory tiles of keys
  and values), on CuPy's current stream.
- Any other namespace, or when the weights themselves are asked for
  (``return_weights=True``, which needs the full matrix anyway): the array-API composition
  of :mod:`xpnet.kernels.reference_attention`, also the oracle of the tests.

Masks: ``kv_mask`` (B, Tk) and ``q_mask`` (B, Tq) padding masks, ``mask`` (B or 1, Tq, Tk),
``causal`` (query ``i`` sees keys ``j <= i``). A query row that sees no key gives zeros
(Keras 3's masked softmax). Dropout on the weights draws from a hash of
``(seed, b * H + h, i, j)``, so the backward pass replays it without storing a mask.
"""

import importlib
import math
from typing import NamedTuple

from array_api_compat import is_cupy_namespace
from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import enabled
from xpnet.kernels import reference_attention as ref
from xpnet.kernels._attention_math import MAXD

__all__ = ["attention", "attention_grad", "AttentionContext"]

_MODULES = {}


def _load(name):
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = importlib.import_module(f"xpnet.kernels._{name}_attention")
    return mod


class AttentionContext(NamedTuple):
    """What :func:`attention_grad` needs; opaque to callers."""

    route: str  # "cpu", "cuda" or "ref"
    q: object
    k: object
    v: object
    out: object
    saved: object  # per-row log-sum-exp (fused) or the weights (composition)
    keep: object  # the composition's dropout mask (None otherwise)
    masks: tuple  # (kv_mask, q_mask, mask) as given
    causal: bool
    scale: float
    dropout: float
    seed: int


def _route(xp, q, v, return_weights):
    if return_weights or not enabled() or str(q.dtype) not in ("float32", "float64"):
        return "ref"
    if is_numpy_namespace(xp):
        return "cpu"
    if is_cupy_namespace(xp) and max(q.shape[-1], v.shape[-1]) <= MAXD:
        return "cuda"
    return "ref"


def attention(q, k, v, scale=None, kv_mask=None, q_mask=None, mask=None, causal=False,
              dropout=0.0, seed=0, return_weights=False):
    """``(out, weights, ctx)`` for ``q`` (B, H, Tq, D), ``k`` (B, H, Tk, D), ``v``
    (B, H, Tk, Dv); ``weights`` (B, H, Tq, Tk, before dropout) only with
    ``return_weights``, else None.

    Parameters
    ----------
    scale : float, default=None
        Multiplies the scores; ``1 / sqrt(D)`` when None.
    dropout : float, default=0.0
        Rate of dropout on the weights (training); ``seed`` (an int in [0, 2**63)) picks
        the mask, and the same seed gives the same mask on every route.
    """
    xp = namespace(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    seed = int(seed) & ((1 << 63) - 1)
    route = _route(xp, q, v, return_weights)
    masks = (kv_mask, q_mask, mask)
    if route == "ref":
        out, p, keep = ref.forward(q, k, v, xp, scale, kv_mask, q_mask, mask, causal,
                                   dropout, seed)
        ctx = AttentionContext("ref", q, k, v, out, p, keep, masks, causal, scale, dropout,
                               seed)
        return out, (p if return_weights else None), ctx
    if route == "cuda":  # the CUDA kernels walk flat memory; njit copies blocks itself
        q, k, v = (_c(a) for a in (q, k, v))
    out, lse = _load(route).attention_forward(q, k, v, *_kernel_masks(xp, q, k, masks),
                                              causal, scale, seed, dropout)
    ctx = AttentionContext(route, q, k, v, out, lse, None, masks, causal, scale, dropout,
                           seed)
    return out, None, ctx


def attention_grad(ctx, dout, dweights=None):
    """``(dq, dk, dv)`` of the call that made ``ctx``, from ``dout = dL/dout`` and (with
    ``return_weights``) ``dweights = dL/dweights``."""
    if ctx.route == "ref":
        xp = namespace(ctx.q, dout)
        return ref.backward(ctx.q, ctx.k, ctx.v, ctx.saved, ctx.keep, dout, xp, ctx.scale,
                            ctx.dropout, dweights)
    xp = namespace(ctx.q, dout)
    dout = xp.astype(dout, ctx.q.dtype, copy=False)
    return _load(ctx.route).attention_backward(
        ctx.q, ctx.k, ctx.v, ctx.out, _c(dout) if ctx.route == "cuda" else dout, ctx.saved,
        *_kernel_masks(xp, ctx.q, ctx.k, ctx.masks), ctx.causal, ctx.scale, ctx.seed,
        ctx.dropout)


def _c(a):
    # The kernels walk flat memory; a strided view (a transpose) is copied once.
    return a if a.flags.c_contiguous else a.copy(order="C")


def _kernel_masks(xp, q, k, masks):
    """``(kvm, qm, am, flags)``: uint8 masks (a one-element stand-in where absent) and the
    bits saying which were given (``_attention_math.HAS_*``)."""
    b, _, tq, _ = q.shape
    tk = k.shape[2]
    one = xp.ones((1, 1), dtype=xp.uint8, device=q.device)
    stand_ins = (one, one, xp.reshape(one, (1, 1, 1)))
    # The kernels index kv_mask[b, j], q_mask[b, i], mask[b or 0, i, j] unchecked.
    shapes = ((b, tk), (b, tq), (b if masks[2] is not None and masks[2].shape[0] == b else 1,
                                 tq, tk))
    flags, out = 0, []
    for bit, m, stand_in, shape in zip((1, 2, 4), masks, stand_ins, shapes):
        if m is None:
            out.append(stand_in)
        else:
            flags |= bit
            m = xp.broadcast_to(xp.reshape(m, (-1,) + shape[1:]), shape)
            out.append(_c(xp.astype(m, xp.uint8)))
    return (*out, flags)
