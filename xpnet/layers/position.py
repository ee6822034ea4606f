"""Position information for Transformers, with KerasHub's arguments: ``PositionEmbedding``
(learned), ``TokenAndPositionEmbedding`` (token ``Embedding`` plus learned positions),
``SinePositionEncoding`` (fixed sinusoids) and ``RotaryEmbedding`` (RoPE)."""

import math

from xpnet import initializers
from xpnet.backend import namespace
from xpnet.layers.base import Layer
from xpnet.layers.embedding import Embedding

__all__ = ["PositionEmbedding", "TokenAndPositionEmbedding", "SinePositionEncoding",
           "RotaryEmbedding"]


def _check_int(layer, arg, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer.name}: {arg} must be a positive int. "
                         f"Received: {arg}={value!r}")


class PositionEmbedding(Layer):
    """Learned position embeddings, as KerasHub: ``y[b, t] = embeddings[start_index + t]``
    for inputs (B, T, F); the output does not depend on the input's values.

    Parameters
    ----------
    sequence_length : int
        Longest sequence (rows of ``embeddings``).
    initializer : default="glorot_uniform"
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        _check_int(self, "sequence_length", sequence_length)
        self.sequence_length = sequence_length
        self.initializer = initializers.get(initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.add_weight(name="embeddings", shape=(self.sequence_length, input_shape[-1]),
                        initializer=self.initializer)

    def check_input_shape(self, input_shape):
        if len(input_shape) < 2 or (input_shape[-2] is not None
                                    and input_shape[-2] > self.sequence_length):
            raise ValueError(f"{self.name}: inputs (batch, time, features) of at most "
                             f"sequence_length={self.sequence_length} steps. Received: "
                             f"input_shape={tuple(input_shape)}")

    def forward(self, inputs, start_index=0, training=False):
        xp = namespace(inputs)
        t = inputs.shape[-2]
        rows = self.params["embeddings"][start_index:start_index + t, :]
        return xp.broadcast_to(rows, inputs.shape), (inputs.shape, start_index)

    def backward(self, ctx, dy, need_dx=True):
        shape, start = ctx
        xp = namespace(dy)
        t, f = shape[-2], shape[-1]
        self.grads["embeddings"][start:start + t, :] += xp.sum(xp.reshape(dy, (-1, t, f)),
                                                               axis=0)
        return xp.zeros(shape, dtype=dy.dtype, device=dy.device) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length,
                "initializer": initializers.serialize(self.initializer)}


class TokenAndPositionEmbedding(Layer):
    """Token embedding plus learned position embedding, as KerasHub:
    ``y = token_embedding(ids) + position_embedding(...)``. A composite of an
    :class:`~xpnet.layers.Embedding` (sparse gradient) and a :class:`PositionEmbedding`.

    Parameters
    ----------
    vocabulary_size, sequence_length, embedding_dim : int
    tie_weights : bool, default=True
        Kept for KerasHub's signature (the reverse projection is not implemented).
    embeddings_initializer : default="uniform"
    mask_zero : bool, default=False
        Id 0 is padding: ``compute_mask`` gives ``ids != 0``.
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim, tie_weights=True,
                 embeddings_initializer="uniform", mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("vocabulary_size", vocabulary_size),
                           ("sequence_length", sequence_length),
                           ("embedding_dim", embedding_dim)):
            _check_int(self, arg, value)
        self.vocabulary_size, self.sequence_length = vocabulary_size, sequence_length
        self.embedding_dim, self.tie_weights = embedding_dim, tie_weights
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.mask_zero = mask_zero
        init = initializers.serialize(self.embeddings_initializer)
        self.token_embedding = Embedding(vocabulary_size, embedding_dim,
                                         embeddings_initializer=init, mask_zero=mask_zero,
                                         name="token_embedding", dtype=self.dtype)
        self.position_embedding = PositionEmbedding(sequence_length, initializer=init,
                                                    name="position_embedding",
                                                    dtype=self.dtype)

    def build(self, input_shape):
        self.token_embedding.build_on(self.backend, input_shape)
        self.position_embedding.build_on(self.backend,
                                         tuple(input_shape) + (self.embedding_dim,))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_dim,)

    def compute_mask(self, inputs, mask=None):
        return self.token_embedding.compute_mask(inputs, mask)

    def forward(self, inputs, start_index=0, training=False):
        tokens, c1 = self.token_embedding.forward(inputs, training=training)
        positions, c2 = self.position_embedding.forward(tokens, start_index=start_index)
        return tokens + positions, (c1, c2)

    def backward(self, ctx, dy, need_dx=True):
        c1, c2 = ctx
        self.position_embedding.backward(c2, dy, need_dx=False)
        self.token_embedding.backward(c1, dy, need_dx=False)
        return None  # integer ids have no gradient

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length, "embedding_dim": self.embedding_dim,
                "tie_weights": self.tie_weights,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "mask_zero": self.mask_zero}


class SinePositionEncoding(Layer):
    """Fixed sinusoidal position encoding, as KerasHub: for position ``p`` and feature ``i``,
    ``sin(p / w**(2 floor(i/2) / F))`` on even ``i`` and ``cos(...)`` on odd ``i``, ``w`` =
    ``max_wavelength``; shaped like the inputs, independent of their values."""

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.supports_masking = True

    def forward(self, inputs, start_index=0, training=False):
        xp = namespace(inputs)
        t, f = inputs.shape[-2], inputs.shape[-1]
        dev, dt = inputs.device, inputs.dtype
        positions = xp.astype(xp.arange(t, device=dev), dt) + float(start_index)
        i = xp.arange(f, device=dev)
        timescales = xp.exp(xp.astype(2 * (i // 2), dt) * (-math.log(self.max_wavelength) / f))
        angles = xp.reshape(positions, (t, 1)) * xp.reshape(timescales, (1, f))
        odd = xp.reshape(i % 2 == 1, (1, f))
        enc = xp.where(odd, xp.cos(angles), xp.sin(angles))
        return xp.broadcast_to(enc, inputs.shape), inputs.shape

    def backward(self, shape, dy, need_dx=True):
        xp = namespace(dy)
        return xp.zeros(shape, dtype=dy.dtype, device=dy.device) if need_dx else None

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


class RotaryEmbedding(Layer):
    """Rotary position embedding (RoPE), as KerasHub:
    ``y = x * cos(p f) + rotate_half(x) * sin(p f)`` with ``rotate_half(x) = [-x2, x1]``
    (the two halves of the features), ``f_k = max_wavelength ** (-2k / F)`` repeated over
    both halves, ``p = (start_index + t) / scaling_factor``.

    Parameters
    ----------
    max_wavelength : int, default=10000
    scaling_factor : float, default=1.0
    sequence_axis : int, default=1
    feature_axis : int, default=-1
    """

    def __init__(self, max_wavelength=10000, scaling_factor=1.0, sequence_axis=1,
                 feature_axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength, self.scaling_factor = max_wavelength, scaling_factor
        self.sequence_axis, self.feature_axis = sequence_axis, feature_axis
        self.supports_masking = True

    def _cos_sin(self, shape, xp, dev, dt, start_index):
        """cos and sin embeddings shaped to broadcast against the inputs."""
        rank = len(shape)
        seq, feat = self.sequence_axis % rank, self.feature_axis % rank
        t, f = shape[seq], shape[feat]
        positions = (xp.astype(xp.arange(t, device=dev), dt) + float(start_index)) \
            / float(self.scaling_factor)
        k = xp.astype(xp.arange(0, f, 2, device=dev), dt)
        inverse = xp.exp(k * (-math.log(self.max_wavelength) / f))
        freq = xp.reshape(positions, (t, 1)) * xp.reshape(inverse, (1, -1))
        emb = xp.concat([freq, freq], axis=1)  # (t, f)
        if seq > feat:
            emb = emb.mT
        view = [1] * rank
        view[seq], view[feat] = t, f
        emb = xp.reshape(emb, tuple(view))
        return xp.cos(emb), xp.sin(emb)

    def _rotate(self, x, xp, sign):
        """``[-x2, x1]`` (sign=1) or its transpose ``[x2, -x1]`` (sign=-1) on the feature
        axis."""
        feat = self.feature_axis % x.ndim
        half = x.shape[feat] // 2
        idx1 = [slice(None)] * x.ndim
        idx2 = [slice(None)] * x.ndim
        idx1[feat], idx2[feat] = slice(0, half), slice(half, None)
        x1, x2 = x[tuple(idx1)], x[tuple(idx2)]
        return xp.concat([-x2, x1] if sign > 0 else [x2, -x1], axis=feat)

    def forward(self, inputs, start_index=0, training=False):
        xp = namespace(inputs)
        cos, sin = self._cos_sin(inputs.shape, xp, inputs.device, inputs.dtype, start_index)
        return inputs * cos + self._rotate(inputs, xp, 1) * sin, (cos, sin)

    def backward(self, ctx, dy, need_dx=True):
        cos, sin = ctx
        xp = namespace(dy)
        return dy * cos + self._rotate(dy * sin, xp, -1)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength,
                "scaling_factor": self.scaling_factor, "sequence_axis": self.sequence_axis,
                "feature_axis": self.feature_axis}
