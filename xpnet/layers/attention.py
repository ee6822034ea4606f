"""Multi-head attention (Keras 3's ``MultiHeadAttention`` and ``GroupedQueryAttention``).

The projections are products with weights laid out as Keras lays them (query/key/value
kernels ``(dim, num_heads, key_dim)``, biases ``(num_heads, key_dim)``, output kernel
``(num_heads, value_dim, dim)``, bias ``(dim,)``); the attention itself is one call of the
fused kernel (:func:`xpnet.kernels.attention.attention`), which never holds the score
matrix unless ``return_attention_scores`` asks for it.
"""

import math
from typing import NamedTuple

from xpnet import initializers
from xpnet import kernels
from xpnet import regularizers
from xpnet.backend import namespace
from xpnet.kernels import attention as fused
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer
from xpnet.utils import next_seed

__all__ = ["MultiHeadAttention", "GroupedQueryAttention", "combine_masks"]


def combine_masks(xp, query_mask=None, value_mask=None, key_mask=None):
    """Keras's ``_compute_attention_mask`` split for the kernel: the query's padding mask,
    and one key padding mask ``value_mask & key_mask`` (B, S); None where absent."""
    kv = value_mask
    if key_mask is not None:
        kv = key_mask if kv is None else xp.astype(kv, xp.bool) & xp.astype(key_mask, xp.bool)
    return query_mask, kv


class _Ctx(NamedTuple):
    xq: object
    xk: object
    xv: object
    heads_out: object  # (B, T, H * value_dim): the output projection's input
    attn: object  # the kernel's context
    key_given: bool
    scores: bool


class MultiHeadAttention(Layer):
    """Multi-head attention, as Keras 3:
    ``out = concat_h(softmax(Q_h K_h^T / sqrt(key_dim) + mask) V_h) W_o + b_o`` with
    ``Q_h = query W_q[:, h] + b_q[h]`` (and likewise ``K``, ``V``).

    Parameters
    ----------
    num_heads, key_dim : int
    value_dim : int, default=None
        Head size of the values; ``key_dim`` when None.
    dropout : float, default=0.0
        Dropout on the attention weights (training only), drawn inside the fused kernel.
    use_bias : bool, default=True
    output_shape : int or tuple of one int, default=None
        Width of the output; the query's width when None.
    attention_axes : int or tuple, default=None
        Attention over every axis between the batch and the features (jointly, as one
        flattened sequence); an explicit tuple must name all of them (subsets are not
        supported yet).
    kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer, seed
        As Keras.

    Call: ``forward(query, value, key=None, query_mask=None, value_mask=None,
    key_mask=None, attention_mask=None, return_attention_scores=False, training=False,
    use_causal_mask=False)``.
    """

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True,
                 output_shape=None, attention_axes=None, flash_attention=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, kernel_constraint=None,
                 bias_constraint=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("num_heads", num_heads), ("key_dim", key_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{self.name}: {arg} must be a positive int. "
                                 f"Received: {arg}={value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{self.name}: dropout must be in [0, 1). "
                             f"Received: dropout={dropout!r}")
        if isinstance(output_shape, int):
            output_shape = (output_shape,)
        if output_shape is not None and len(tuple(output_shape)) != 1:
            raise ValueError(f"{self.name}: output_shape must be an int or a tuple of one "
                             f"int. Received: output_shape={output_shape!r}")
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes is not None and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(f"{self.name}: attention_axes must be an int, list, or tuple. "
                             f"Received: attention_axes={attention_axes!r}")
        if kernel_constraint is not None or bias_constraint is not None:
            raise NotImplementedError(f"{self.name}: weight constraints are not supported")
        self.num_heads, self.key_dim = num_heads, key_dim
        self.value_dim = value_dim or key_dim
        self.dropout, self.use_bias = float(dropout), use_bias
        self._output_shape = None if output_shape is None else tuple(output_shape)
        self.attention_axes = None if attention_axes is None else tuple(attention_axes)
        self.flash_attention = flash_attention
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.seed = seed
        self._seed = next_seed(seed)
        self.supports_masking = True

    # Symbolic calls find the output shapes by running the layer on zeros (the attention
    # scores' shape depends on a call argument).
    _probe_shapes = True

    # -- shapes and weights ------------------------------------------------------------
    @staticmethod
    def _split_shapes(input_shape):
        """(query, value, key) shapes from a list ``[query, value(, key)]``."""
        shapes = list(input_shape) if isinstance(input_shape, list) else [input_shape]
        query = tuple(shapes[0])
        value = tuple(shapes[1]) if len(shapes) > 1 else query
        key = tuple(shapes[2]) if len(shapes) > 2 and shapes[2] is not None else value
        return query, value, key

    def check_input_shape(self, input_shape):
        query, value, key = self._split_shapes(input_shape)
        if value[1:-1] != key[1:-1]:
            raise ValueError(f"{self.name}: all dimensions of `value` and `key`, except the "
                             f"last one, must be equal. Received: value_shape={value} and "
                             f"key_shape={key}")
        if len(query) < 3 or len(value) != len(query):
            raise ValueError(f"{self.name}: query and value need the same rank >= 3 "
                             f"(batch, ..., features). Received: query_shape={query}, "
                             f"value_shape={value}")
        rank = len(query)
        if self.attention_axes is not None and sorted(
                a % rank for a in self.attention_axes) != list(range(1, rank - 1)):
            raise NotImplementedError(
                f"{self.name}: attention over a subset of the axes between batch and "
                f"features is not supported yet; attention_axes must be None or all of "
                f"{tuple(range(1, rank - 1))}. Received: attention_axes="
                f"{self.attention_axes}")

    def _kv_heads(self):
        return self.num_heads

    def build(self, query_shape, value_shape=None, key_shape=None):
        """Keras's ``build(query_shape, value_shape, key_shape=None)``; also takes one list
        ``[query, value(, key)]`` of shapes."""
        if value_shape is not None:
            query_shape = [query_shape, value_shape, key_shape]
        query, value, key = self._split_shapes(query_shape)
        hk = self._kv_heads()
        out = self._output_shape[0] if self._output_shape else query[-1]
        for name, dim, heads, size in (("query", query[-1], self.num_heads, self.key_dim),
                                       ("key", key[-1], hk, self.key_dim),
                                       ("value", value[-1], hk, self.value_dim)):
            self._dense(name, (dim, heads, size), (heads, size))
        self._dense("attention_output", (self.num_heads, self.value_dim, out), (out,))
        self._rng = self.backend.rng(self._seed, host=True)  # host ints: the kernel's seeds

    def _dense(self, name, kernel_shape, bias_shape):
        self.add_weight(name=f"{name}/kernel", shape=kernel_shape,
                        initializer=self.kernel_initializer,  # Keras's fans of a 3-D shape
                        regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight(name=f"{name}/bias", shape=bias_shape,
                            initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query = query_shape[0] if isinstance(query_shape, list) else query_shape
        out = self._output_shape[0] if self._output_shape else query[-1]
        return tuple(query[:-1]) + (out,)

    # -- computation -------------------------------------------------------------------
    def _project(self, x, name, heads, size):
        """``x @ kernel + bias`` as (B, heads, T, size), T the flattened middle axes."""
        xp = namespace(x)
        b, width = x.shape[0], x.shape[-1]
        y = kernels.matmul(xp.reshape(x, (-1, width)),
                           xp.reshape(self.params[f"{name}/kernel"], (width, heads * size)))
        if self.use_bias:
            y = y + xp.reshape(self.params[f"{name}/bias"], (heads * size,))
        return xp.permute_dims(xp.reshape(y, (b, -1, heads, size)), (0, 2, 1, 3))

    def _flat_mask(self, xp, mask, b):
        return None if mask is None else xp.reshape(mask, (b, -1))

    def __call__(self, *args, **kwargs):
        """Keras's call; a ``key`` given positionally travels as the keyword (its gradient
        comes back through ``InputGrads``)."""
        if len(args) > 2 and "key" not in kwargs:
            args, kwargs = args[:2] + args[3:], {**kwargs, "key": args[2]}
        return super().__call__(*args, **kwargs)

    def forward(self, query, value=None, key=None, query_mask=None, value_mask=None,
                key_mask=None, attention_mask=None, return_attention_scores=False,
                training=False, use_causal_mask=False, **kwargs):
        if isinstance(query, (list, tuple)):  # the list form [query, value(, key)]
            query, value, key = (list(query) + [None, None])[:3]
        if value is None:
            raise ValueError(f"{self.name}: call needs `value` (and a query)")
        xp = namespace(query)
        key_given = key is not None and key is not value
        key = key if key is not None else value
        b = query.shape[0]
        hk = self._kv_heads()
        q = self._project(query, "query", self.num_heads, self.key_dim)
        k = self._project(key, "key", hk, self.key_dim)
        v = self._project(value, "value", hk, self.value_dim)
        k, v = self._expand_heads(k), self._expand_heads(v)
        qm, kvm = combine_masks(xp, query_mask, value_mask, key_mask if key_given else None)
        full = None
        if attention_mask is not None:
            t, s = math.prod(query.shape[1:-1]), math.prod(value.shape[1:-1])
            full = xp.reshape(xp.astype(attention_mask, xp.bool), (-1, t, s))
        drop = self.dropout if training else 0.0
        seed = self._rng.host_int(1 << 62) if drop > 0 else 0
        o, weights, actx = fused.attention(
            q, k, v, scale=1.0 / math.sqrt(self.key_dim), kv_mask=self._flat_mask(xp, kvm, b),
            q_mask=self._flat_mask(xp, qm, b), mask=full, causal=use_causal_mask,
            dropout=drop, seed=seed, return_weights=return_attention_scores)
        heads_out = xp.reshape(xp.permute_dims(o, (0, 2, 1, 3)),
                               (b, -1, self.num_heads * self.value_dim))
        out_kernel = self.params["attention_output/kernel"]
        y = kernels.matmul(xp.reshape(heads_out, (-1, heads_out.shape[-1])),
                           xp.reshape(out_kernel, (-1, out_kernel.shape[-1])))
        if self.use_bias:
            y = y + self.params["attention_output/bias"]
        y = xp.reshape(y, tuple(query.shape[:-1]) + (out_kernel.shape[-1],))
        ctx = _Ctx(query, key, value, heads_out, actx, key_given, return_attention_scores)
        if return_attention_scores:
            scores = xp.reshape(weights, (b, self.num_heads) + tuple(query.shape[1:-1])
                                + tuple(value.shape[1:-1]))
            return (y, scores), ctx
        return y, ctx

    def compute_mask(self, query, mask=None):
        """The output keeps the query's mask (Keras sets it on the output)."""
        if isinstance(mask, (list, tuple)):
            return mask[0] if mask else None
        return mask

    def _expand_heads(self, t):
        return t

    def _reduce_heads(self, t):
        return t

    def backward(self, ctx, dy, need_dx=True):
        dscores = None
        if ctx.scores:
            dy, dscores = dy
        xq = ctx.xq
        xp = namespace(xq)
        b = xq.shape[0]
        out_kernel = self.params["attention_output/kernel"]
        width = out_kernel.shape[-1]
        if dy is None:
            dy = xp.zeros(tuple(xq.shape[:-1]) + (width,), dtype=xq.dtype, device=xq.device)
        dy2 = xp.reshape(dy, (-1, width))
        h2 = xp.reshape(ctx.heads_out, (-1, ctx.heads_out.shape[-1]))
        dkernel, dheads = kernels.matmuls((h2.mT, dy2),
                                          (dy2, xp.reshape(out_kernel, (-1, width)).mT))
        self.grads["attention_output/kernel"] += xp.reshape(dkernel, out_kernel.shape)
        if self.use_bias:
            self.grads["attention_output/bias"] += xp.sum(dy2, axis=0)
        dheads = xp.reshape(dheads, (b, -1, self.num_heads, self.value_dim))
        if dscores is not None:
            t = ctx.attn.q.shape[2]
            dscores = xp.reshape(dscores, (b, self.num_heads, t, -1))
        dq, dk, dv = fused.attention_grad(ctx.attn, xp.permute_dims(dheads, (0, 2, 1, 3)),
                                          dscores)
        dk, dv = self._reduce_heads(dk), self._reduce_heads(dv)
        dxq = self._project_grad(xq, dq, "query")
        dxk = self._project_grad(ctx.xk, dk, "key")
        dxv = self._project_grad(ctx.xv, dv, "value")
        if ctx.key_given:
            return InputGrads(args=(dxq, dxv), kwargs={"key": dxk})
        return dxq, dxv + dxk

    def _project_grad(self, x, dh, name):
        """Weight gradients of :meth:`_project` from ``dh`` (B, heads, T, size); returns dx."""
        xp = namespace(x)
        b, heads, _, size = dh.shape
        width = x.shape[-1]
        d2 = xp.reshape(xp.permute_dims(dh, (0, 2, 1, 3)), (-1, heads * size))
        x2 = xp.reshape(x, (-1, width))
        kernel = self.params[f"{name}/kernel"]
        dkernel, dx = kernels.matmuls((x2.mT, d2),
                                      (d2, xp.reshape(kernel, (width, heads * size)).mT))
        self.grads[f"{name}/kernel"] += xp.reshape(dkernel, kernel.shape)
        if self.use_bias:
            self.grads[f"{name}/bias"] += xp.reshape(xp.sum(d2, axis=0), (heads, size))
        return xp.reshape(dx, x.shape)

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads, "key_dim": self.key_dim,
            "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
            "output_shape": self._output_shape, "attention_axes": self.attention_axes,
            "flash_attention": self.flash_attention,
            "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "seed": self.seed,
        }


class GroupedQueryAttention(MultiHeadAttention):
    """Grouped-query attention, as Keras 3: ``num_query_heads`` query heads share
    ``num_key_value_heads`` key/value heads (query head ``h`` reads key/value head
    ``h // (num_query_heads // num_key_value_heads)``).

    Weights: query kernel ``(dim, num_query_heads, head_dim)``, key and value kernels
    ``(dim, num_key_value_heads, head_dim)``, output kernel ``(num_query_heads, head_dim,
    dim)``, with biases, in Keras's order.
    """

    def __init__(self, head_dim, num_query_heads, num_key_value_heads, dropout=0.0,
                 use_bias=True, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, seed=None, **kwargs):
        super().__init__(num_query_heads, head_dim, dropout=dropout, use_bias=use_bias,
                         flash_attention=flash_attention,
                         kernel_initializer=kernel_initializer,
                         bias_initializer=bias_initializer,
                         kernel_regularizer=kernel_regularizer,
                         bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
                         bias_constraint=bias_constraint, seed=seed, **kwargs)
        if (isinstance(num_key_value_heads, bool) or not isinstance(num_key_value_heads, int)
                or num_key_value_heads <= 0 or num_query_heads % num_key_value_heads):
            raise ValueError(f"{self.name}: num_query_heads must be divisible by "
                             f"num_key_value_heads. Received: num_query_heads="
                             f"{num_query_heads}, num_key_value_heads={num_key_value_heads}")
        self.head_dim, self.num_query_heads = head_dim, num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_repeats = num_query_heads // num_key_value_heads

    def _kv_heads(self):
        return self.num_key_value_heads

    def _expand_heads(self, t):
        if self.num_repeats == 1:
            return t
        xp = namespace(t)
        b, hk, n, d = t.shape
        wide = xp.broadcast_to(xp.reshape(t, (b, hk, 1, n, d)), (b, hk, self.num_repeats, n, d))
        return xp.reshape(wide, (b, hk * self.num_repeats, n, d))

    def _reduce_heads(self, t):
        if self.num_repeats == 1:
            return t
        xp = namespace(t)
        b, h, n, d = t.shape
        return xp.sum(xp.reshape(t, (b, h // self.num_repeats, self.num_repeats, n, d)),
                      axis=2)

    def get_config(self):
        config = super().get_config()
        for key in ("num_heads", "key_dim", "value_dim", "output_shape", "attention_axes"):
            config.pop(key)
        return {**config, "head_dim": self.head_dim, "num_query_heads": self.num_query_heads,
                "num_key_value_heads": self.num_key_value_heads}
