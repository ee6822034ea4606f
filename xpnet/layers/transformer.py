"""Transformer blocks with KerasHub's arguments: ``TransformerEncoder`` and
``TransformerDecoder``.

Both are composites: their sublayers (``MultiHeadAttention``, ``LayerNormalization``,
``Dense``, ``Dropout``) are attributes, built in :meth:`build` on the block's backend, and
the block's forward/backward call theirs in order (the residual branches add gradients).
Padding masks mask keys, as KerasHub's ``merge_padding_and_attention_mask`` does (a
``(B, 1, S)`` mask), combined with any ``attention_mask`` and, in the decoder, the causal
mask.
"""

from xpnet import initializers
from xpnet import regularizers
from xpnet.layers.attention import MultiHeadAttention
from xpnet.layers.base import Layer
from xpnet.layers.core import Dense
from xpnet.layers.normalization import LayerNormalization
from xpnet.layers.regularization import Dropout

__all__ = ["TransformerEncoder", "TransformerDecoder"]


class _Block(Layer):
    """What the encoder and decoder share: arguments, sub-blocks, the feed-forward part."""

    def __init__(self, intermediate_dim, num_heads, dropout=0, activation="relu",
                 layer_norm_epsilon=1e-05, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 normalize_first=False, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("intermediate_dim", intermediate_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{self.name}: {arg} must be a positive int. "
                                 f"Received: {arg}={value!r}")
        self.intermediate_dim, self.num_heads = intermediate_dim, num_heads
        self.dropout, self.activation = float(dropout), activation
        self.layer_norm_epsilon, self.normalize_first = layer_norm_epsilon, normalize_first
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.supports_masking = True

    def _init(self):
        return {"kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": self.kernel_regularizer,
                "bias_regularizer": self.bias_regularizer, "dtype": self.dtype}

    def _attention_part(self, prefix, width, key_width=None):
        """(attention, layer norm, dropout) sublayers named as KerasHub names them."""
        if width % self.num_heads:
            raise ValueError(f"{self.name}: the input width must be divisible by num_heads. "
                             f"Received: width={width}, num_heads={self.num_heads}")
        attention = MultiHeadAttention(self.num_heads, width // self.num_heads,
                                       dropout=self.dropout, name=f"{prefix}_layer",
                                       **self._init())
        shape = (None, None, width)
        attention.build_on(self.backend, [shape, (None, None, key_width or width)])
        norm = LayerNormalization(epsilon=self.layer_norm_epsilon,
                                  name=f"{prefix}_layer_norm", dtype=self.dtype)
        norm.build_on(self.backend, shape)
        drop = Dropout(self.dropout, name=f"{prefix}_dropout", dtype=self.dtype)
        drop.build_on(self.backend, shape)
        return attention, norm, drop

    def _build_feedforward(self, width):
        shape = (None, None, width)
        self._feedforward_layer_norm = LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="feedforward_layer_norm", dtype=self.dtype)
        self._feedforward_layer_norm.build_on(self.backend, shape)
        self._feedforward_intermediate_dense = Dense(
            self.intermediate_dim, activation=self.activation,
            name="feedforward_intermediate_dense", **self._init())
        self._feedforward_intermediate_dense.build_on(self.backend, shape)
        self._feedforward_output_dense = Dense(width, name="feedforward_output_dense",
                                               **self._init())
        self._feedforward_output_dense.build_on(self.backend,
                                                (None, None, self.intermediate_dim))
        self._feedforward_dropout = Dropout(self.dropout, name="feedforward_dropout",
                                            dtype=self.dtype)
        self._feedforward_dropout.build_on(self.backend, shape)

    def _residual(self, x, norm, body, training):
        """``x + body(norm(x))`` (normalize_first) or ``norm(x + body(x))``; returns the
        output and the contexts."""
        if self.normalize_first:
            h, cn = norm.forward(x, training=training)
            y, cb = body(h)
            return x + y, (cn, cb)
        y, cb = body(x)
        out, cn = norm.forward(x + y, training=training)
        return out, (cn, cb)

    def _residual_grad(self, ctx, dy, norm, body_grad):
        """Gradient of :meth:`_residual`: ``body_grad(cb, d) -> d input of body``."""
        cn, cb = ctx
        if self.normalize_first:
            return dy + norm.backward(cn, body_grad(cb, dy))
        ds = norm.backward(cn, dy)
        return ds + body_grad(cb, ds)

    def _feedforward(self, x, training):
        def body(h):
            h, c1 = self._feedforward_intermediate_dense.forward(h, training=training)
            h, c2 = self._feedforward_output_dense.forward(h, training=training)
            h, c3 = self._feedforward_dropout.forward(h, training=training)
            return h, (c1, c2, c3)
        return self._residual(x, self._feedforward_layer_norm, body, training)

    def _feedforward_grad(self, ctx, dy):
        def body_grad(cb, d):
            c1, c2, c3 = cb
            d = self._feedforward_dropout.backward(c3, d)
            d = self._feedforward_output_dense.backward(c2, d)
            return self._feedforward_intermediate_dense.backward(c1, d)
        return self._residual_grad(ctx, dy, self._feedforward_layer_norm, body_grad)

    def _attend(self, x, parts, training, value=None, **masks):
        attention, norm, drop = parts

        def body(h):
            v = h if value is None else value
            a, ca = attention.forward(h, v, training=training, **masks)
            a, cd = drop.forward(a, training=training)
            return a, (ca, cd)
        return self._residual(x, norm, body, training)

    def _attend_grad(self, ctx, dy, parts, cross=False):
        """Gradient of :meth:`_attend`; with ``cross`` also returns d(value)."""
        attention, norm, drop = parts
        dvalue = []

        def body_grad(cb, d):
            ca, cd = cb
            dq, dv = attention.backward(ca, drop.backward(cd, d))
            if cross:
                dvalue.append(dv)
                return dq
            return dq + dv
        dx = self._residual_grad(ctx, dy, norm, body_grad)
        return (dx, dvalue[0]) if cross else dx

    def compute_mask(self, inputs, mask=None):
        return mask[0] if isinstance(mask, (list, tuple)) else mask

    def compute_output_shape(self, input_shape, *more):
        return tuple(input_shape[0] if isinstance(input_shape, list) else input_shape)

    def get_config(self):
        return {**super().get_config(), "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads, "dropout": self.dropout,
                "activation": self.activation, "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "normalize_first": self.normalize_first}


class TransformerEncoder(_Block):
    """KerasHub's Transformer encoder block: self-attention then a feed-forward network, each
    with a residual connection and layer normalisation (after, or before with
    ``normalize_first``).

    Parameters
    ----------
    intermediate_dim : int
        Width of the feed-forward network's hidden layer.
    num_heads : int
        Attention heads (``key_dim = width // num_heads``).
    dropout : float, default=0
    activation : str, default="relu"
    layer_norm_epsilon : float, default=1e-05
    kernel_initializer, bias_initializer : default="glorot_uniform", "zeros"
    kernel_regularizer, bias_regularizer : default=None
        Passed to the attention and feed-forward layers (as KerasHub).
    normalize_first : bool, default=False

    Call: ``forward(inputs, padding_mask=None, attention_mask=None, training=False)``; the
    padding mask (B, T) (or the incoming mask) hides padded keys.
    """

    def build(self, input_shape):
        width = input_shape[-1]
        (self._self_attention_layer, self._self_attention_layer_norm,
         self._self_attention_dropout) = self._attention_part("self_attention", width)
        self._build_feedforward(width)

    def _self_parts(self):
        return (self._self_attention_layer, self._self_attention_layer_norm,
                self._self_attention_dropout)

    def forward(self, inputs, padding_mask=None, attention_mask=None, training=False,
                mask=None):
        padding_mask = mask if padding_mask is None else padding_mask
        x, c1 = self._attend(inputs, self._self_parts(), training, value_mask=padding_mask,
                             attention_mask=attention_mask)
        y, c2 = self._feedforward(x, training)
        return y, (c1, c2)

    def backward(self, ctx, dy, need_dx=True):
        c1, c2 = ctx
        return self._attend_grad(c1, self._feedforward_grad(c2, dy), self._self_parts())


class TransformerDecoder(_Block):
    """KerasHub's Transformer decoder block: causal self-attention, cross-attention over an
    encoder's output when one is given (built when ``build`` sees its shape), and a
    feed-forward network; residuals and layer normalisation as in the encoder.

    Call: ``forward(decoder_sequence, encoder_sequence=None, decoder_padding_mask=None,
    decoder_attention_mask=None, encoder_padding_mask=None, encoder_attention_mask=None,
    use_causal_mask=True, training=False)``. ``backward`` returns ``(d decoder_sequence,
    d encoder_sequence)`` with an encoder sequence, else ``d decoder_sequence``.
    """

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        """KerasHub's ``build(decoder_sequence_shape, encoder_sequence_shape=None)``; also
        takes one list of the two shapes."""
        shapes = decoder_sequence_shape if isinstance(decoder_sequence_shape, list) else \
            [decoder_sequence_shape, encoder_sequence_shape]
        width = shapes[0][-1]
        (self._self_attention_layer, self._self_attention_layer_norm,
         self._self_attention_dropout) = self._attention_part("self_attention", width)
        self._cross = None
        if len(shapes) > 1 and shapes[1] is not None:
            self._cross = self._attention_part("cross_attention", width, shapes[1][-1])
            (self._cross_attention_layer, self._cross_attention_layer_norm,
             self._cross_attention_dropout) = self._cross
        self._build_feedforward(width)

    def forward(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None,
                decoder_attention_mask=None, encoder_padding_mask=None,
                encoder_attention_mask=None, use_causal_mask=True, training=False,
                decoder_sequence_mask=None, encoder_sequence_mask=None, mask=None, **kwargs):
        if isinstance(mask, (list, tuple)):
            mask = mask[0] if mask else None
        if decoder_padding_mask is None:
            decoder_padding_mask = decoder_sequence_mask if decoder_sequence_mask is not None \
                else mask
        if encoder_padding_mask is None:
            encoder_padding_mask = encoder_sequence_mask
        if encoder_sequence is not None and self._cross is None:
            raise ValueError(f"{self.name}: built without an encoder sequence (no "
                             f"cross-attention), but called with one")
        parts = (self._self_attention_layer, self._self_attention_layer_norm,
                 self._self_attention_dropout)
        x, c1 = self._attend(decoder_sequence, parts, training,
                             value_mask=decoder_padding_mask,
                             attention_mask=decoder_attention_mask,
                             use_causal_mask=use_causal_mask)
        c2 = None
        if encoder_sequence is not None:
            x, c2 = self._attend(x, self._cross, training, value=encoder_sequence,
                                 value_mask=encoder_padding_mask,
                                 attention_mask=encoder_attention_mask)
        y, c3 = self._feedforward(x, training)
        return y, (c1, c2, c3)

    def backward(self, ctx, dy, need_dx=True):
        c1, c2, c3 = ctx
        d = self._feedforward_grad(c3, dy)
        denc = None
        if c2 is not None:
            d, denc = self._attend_grad(c2, d, self._cross, cross=True)
        parts = (self._self_attention_layer, self._self_attention_layer_norm,
                 self._self_attention_dropout)
        d = self._attend_grad(c1, d, parts)
        return d if denc is None else (d, denc)

