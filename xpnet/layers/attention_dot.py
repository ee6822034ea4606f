"""Keras 3's single-head ``Attention`` (Luong: dot or concat scores) and
``AdditiveAttention`` (Bahdanau), called with ``[query, value]`` or ``[query, value, key]``
and a list of masks ``[query_mask, value_mask]``.

Both follow Keras's ``_apply_scores``: masked scores get ``-1e9`` before the softmax (so a
row whose keys are all masked is the plain softmax of its scores, as in Keras), dropout on
the weights in training, and the output rows of masked queries are zeroed.
"""

from typing import NamedTuple

from xpnet.backend import namespace
from xpnet.layers.base import Layer
from xpnet.utils import next_seed

__all__ = ["Attention", "AdditiveAttention"]

_LARGE = 1.0e9  # Keras's masking constant (65504 for float16)


class _Ctx(NamedTuple):
    q: object
    k: object
    v: object
    raw: object  # dot: q k^T; concat/additive: tanh(...) (B, Tq, Tv, dim)
    weights: object  # softmax output, before dropout
    kept: object  # weights after dropout
    keep: object  # dropout mask or None
    q_mask: object
    key_given: bool
    scores: bool


class _BaseAttention(Layer):
    _probe_shapes = True  # symbolic calls run the layer on zeros (scores are optional)

    def __init__(self, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.name}: dropout must be in [0, 1). "
                             f"Received: dropout={dropout!r}")
        self.dropout, self.seed = float(dropout), seed
        self._seed = next_seed(seed)
        self.supports_masking = True

    def check_input_shape(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or not input_shape or \
                not isinstance(input_shape[0], (list, tuple)) or len(input_shape) not in (2, 3):
            raise ValueError(f"{self.name}: call it on a list [query, value] or [query, value, "
                             f"key]. Received: input_shape={input_shape!r}")
        q, v = input_shape[0], input_shape[1]
        k = input_shape[2] if len(input_shape) > 2 else v
        if q[-1] != k[-1] or v[1] != k[1]:
            raise ValueError(f"{self.name}: query and key need the same width and value and "
                             f"key the same length. Received: query={tuple(q)}, "
                             f"value={tuple(v)}, key={tuple(k)}")

    def build(self, input_shape):
        self._rng = self.backend.rng(self._seed)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (input_shape[1][-1],)

    def compute_mask(self, inputs, mask=None):
        return None if mask is None else mask[0]

    def forward(self, inputs, mask=None, training=False, return_attention_scores=False,
                use_causal_mask=False):
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        xp = namespace(q)
        q_mask = mask[0] if mask else None
        v_mask = mask[1] if mask and len(mask) > 1 else None
        scores, raw = self._scores(q, k, xp)
        allow = _score_mask(xp, scores, v_mask, use_causal_mask)
        if allow is not None:
            scores = scores - xp.astype(~allow, scores.dtype) * _LARGE
        e = xp.exp(scores - xp.max(scores, axis=-1, keepdims=True))
        weights = e / xp.sum(e, axis=-1, keepdims=True)
        kept, keep = weights, None
        if training and self.dropout > 0:
            keep = self._rng.bernoulli(1.0 - self.dropout, weights.shape, dtype=weights.dtype)
            kept = weights * keep * (1.0 / (1.0 - self.dropout))
        out = kept @ v
        if q_mask is not None:
            q_mask = xp.astype(xp.reshape(q_mask, (*q_mask.shape, 1)), out.dtype)
            out = out * q_mask
        ctx = _Ctx(q, k, v, raw, weights, kept, keep, q_mask, len(inputs) > 2,
                   return_attention_scores)
        return ((out, weights) if return_attention_scores else out), ctx

    def backward(self, ctx, dy, need_dx=True):
        dw_extra = None
        if ctx.scores:
            dy, dw_extra = dy
        xp = namespace(ctx.q)
        if dy is None:
            dy = xp.zeros((*ctx.q.shape[:-1], ctx.v.shape[-1]), dtype=ctx.q.dtype,
                          device=ctx.q.device)
        if ctx.q_mask is not None:
            dy = dy * ctx.q_mask
        dv = ctx.kept.mT @ dy
        dw = dy @ ctx.v.mT
        if ctx.keep is not None:
            dw = dw * ctx.keep * (1.0 / (1.0 - self.dropout))
        if dw_extra is not None:
            dw = dw + dw_extra
        w = ctx.weights
        ds = w * (dw - xp.sum(dw * w, axis=-1, keepdims=True))
        dq, dk = self._scores_grad(ctx, ds, xp)
        if ctx.key_given:
            return dq, dv, dk
        return dq, dv + dk

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout, "seed": self.seed}


def _score_mask(xp, scores, v_mask, causal):
    """Keras's ``_calculate_score_mask``: value mask (B, 1, Tv) and the causal mask."""
    out = None
    if v_mask is not None:
        out = xp.reshape(xp.astype(v_mask, xp.bool), (v_mask.shape[0], 1, v_mask.shape[1]))
    if causal:
        tq, tv = scores.shape[-2], scores.shape[-1]
        dev = scores.device
        tri = xp.reshape(xp.arange(tq, device=dev), (tq, 1)) >= \
            xp.reshape(xp.arange(tv, device=dev), (1, tv))
        out = tri[None, ...] if out is None else out & tri[None, ...]
    return out


class Attention(_BaseAttention):
    """Dot-product attention, as Keras 3: ``scores = q k^T`` (``* scale`` with
    ``use_scale``) or, with ``score_mode="concat"``, ``concat_score_weight *
    sum(tanh(scale * (q + k)))``; ``out = softmax(scores) v``.

    Parameters
    ----------
    use_scale : bool, default=False
        Learn a scalar ``scale`` (initialised to 1).
    score_mode : {"dot", "concat"}, default="dot"
    dropout : float, default=0.0
    seed : int, default=None
    """

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        if score_mode not in ("dot", "concat"):
            raise ValueError(f"{self.name}: score_mode must be 'dot' or 'concat'. "
                             f"Received: score_mode={score_mode!r}")
        self.use_scale, self.score_mode = use_scale, score_mode

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_scale:
            self.add_weight(name="scale", shape=(), initializer="ones")
        if self.score_mode == "concat":
            self.add_weight(name="concat_score_weight", shape=(), initializer="ones")

    def _scores(self, q, k, xp):
        if self.score_mode == "dot":
            raw = q @ k.mT
            return (raw * self.params["scale"] if self.use_scale else raw), raw
        pre = q[:, :, None, :] + k[:, None, :, :]
        if self.use_scale:
            pre = pre * self.params["scale"]
        raw = xp.tanh(pre)
        return self.params["concat_score_weight"] * xp.sum(raw, axis=-1), raw

    def _scores_grad(self, ctx, ds, xp):
        if self.score_mode == "dot":
            if self.use_scale:
                self.grads["scale"] += xp.sum(ds * ctx.raw)
                ds = ds * self.params["scale"]
            return ds @ ctx.k, ds.mT @ ctx.q
        t = ctx.raw
        self.grads["concat_score_weight"] += xp.sum(ds * xp.sum(t, axis=-1))
        dpre = (ds * self.params["concat_score_weight"])[..., None] * (1.0 - t * t)
        if self.use_scale:
            pre_unscaled = ctx.q[:, :, None, :] + ctx.k[:, None, :, :]
            self.grads["scale"] += xp.sum(dpre * pre_unscaled)
            dpre = dpre * self.params["scale"]
        return xp.sum(dpre, axis=2), xp.sum(dpre, axis=1)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale,
                "score_mode": self.score_mode}


class AdditiveAttention(_BaseAttention):
    """Additive (Bahdanau) attention, as Keras 3:
    ``scores = sum(scale * tanh(q + k), axis=-1)``, ``out = softmax(scores) v``.

    Parameters
    ----------
    use_scale : bool, default=True
        Learn a per-feature ``scale`` of shape (dim,) (glorot-uniform, as Keras).
    dropout : float, default=0.0
    seed : int, default=None
    """

    def __init__(self, use_scale=True, dropout=0.0, seed=None, **kwargs):
        super().__init__(dropout=dropout, seed=seed, **kwargs)
        self.use_scale = use_scale

    def build(self, input_shape):
        super().build(input_shape)
        if self.use_scale:
            self.add_weight(name="scale", shape=(input_shape[0][-1],),
                            initializer="glorot_uniform")

    def _scores(self, q, k, xp):
        raw = xp.tanh(q[:, :, None, :] + k[:, None, :, :])
        if self.use_scale:
            return xp.sum(raw * self.params["scale"], axis=-1), raw
        return xp.sum(raw, axis=-1), raw

    def _scores_grad(self, ctx, ds, xp):
        t, ds4 = ctx.raw, ds[..., None]
        if self.use_scale:
            self.grads["scale"] += xp.sum(xp.reshape(ds4 * t, (-1, t.shape[-1])), axis=0)
            ds4 = ds4 * self.params["scale"]
        dpre = ds4 * (1.0 - t * t)
        return xp.sum(dpre, axis=2), xp.sum(dpre, axis=1)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale}
