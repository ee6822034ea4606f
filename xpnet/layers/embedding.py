"""Embedding and Masking: the layers that start a sequence model and make its mask.

A mask (Keras semantics) is a bool array ``(batch, time)``, True where a step holds data.
``Embedding(mask_zero=True)`` and ``Masking`` make one in ``compute_mask``; recurrent layers,
pooling, losses and metrics that accept ``mask=`` skip the steps it marks False.
"""

import math

from xpnet import initializers
from xpnet.backend import namespace
from xpnet.kernels import scatter
from xpnet.layers.base import Layer

__all__ = ["Embedding", "Masking"]


class Embedding(Layer):
    """Turns integer ids into dense vectors: ``y[..., :] = embeddings[x[...]]``.

    The gradient is a scatter-add of ``dy``'s rows into the rows named by ``x``
    (:func:`xpnet.kernels.scatter.scatter_add_rows`; repeated ids add up), never a dense
    one-hot product over the vocabulary.

    Parameters
    ----------
    input_dim : int
        Size of the vocabulary (largest id + 1).
    output_dim : int
        Size of each vector.
    embeddings_initializer : str or Initializer, default="uniform"
        Keras's ``"uniform"``: ``RandomUniform(-0.05, 0.05)``.
    embeddings_regularizer : str or Regularizer, default=None
    mask_zero : bool, default=False
        Whether id 0 is padding: then ``compute_mask`` gives ``x != 0`` and id 0 must not be
        a word (``input_dim`` counts it).
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{self.name}: {arg} must be a positive int. "
                                 f"Received: {arg}={value!r}")
        if embeddings_constraint is not None:
            raise NotImplementedError(f"{self.name}: embeddings_constraint is not supported")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = embeddings_regularizer
        self.mask_zero = bool(mask_zero)
        self._initial_weights = weights

    def build(self, input_shape):
        self.add_weight(name="embeddings", shape=(self.input_dim, self.output_dim),
                        initializer=self.embeddings_initializer,
                        regularizer=self.embeddings_regularizer)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def macs(self, input_shape):
        """One copied value per output entry (a gather, not a product with the table)."""
        return math.prod(n or 1 for n in input_shape[1:]) * self.output_dim

    def compute_mask(self, x, mask=None):
        """``x != 0`` with ``mask_zero``, else None."""
        return (x != 0) if self.mask_zero else None

    def _ids(self, x):
        xp = namespace(x)
        ids = xp.reshape(x, (-1,))
        if not xp.isdtype(ids.dtype, "integral"):
            ids = xp.astype(ids, xp.int64)
        return ids

    def forward(self, x, training=False):
        xp = namespace(x)
        ids = self._ids(x)
        rows = xp.take(self.params["embeddings"], ids, axis=0)
        return xp.reshape(rows, tuple(x.shape) + (self.output_dim,)), ids

    def backward(self, ids, dy, need_dx=True):
        xp = namespace(dy)
        if "embeddings" in self.grads:
            scatter.scatter_add_rows(self.grads["embeddings"], ids,
                                     xp.reshape(dy, (-1, self.output_dim)))
        return None  # integer ids have no gradient

    def get_config(self):
        from xpnet import regularizers

        reg = self.embeddings_regularizer
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": None if reg is None else regularizers.serialize(
                    regularizers.get(reg)),
                "mask_zero": self.mask_zero}


class Masking(Layer):
    """Marks steps whose features all equal ``mask_value`` as padding, and zeroes them.

    ``compute_mask`` gives ``any(x != mask_value, axis=-1)``; the output is ``x`` times that
    mask (Keras's Masking), so the masked steps are 0 for layers that ignore masks.

    Parameters
    ----------
    mask_value : float, default=0.0
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = mask_value
        self.supports_masking = True

    def compute_mask(self, x, mask=None):
        xp = namespace(x)
        return xp.any(x != self.mask_value, axis=-1)

    def forward(self, x, training=False):
        xp = namespace(x)
        keep = xp.astype(xp.any(x != self.mask_value, axis=-1, keepdims=True), x.dtype)
        return x * keep, keep

    def backward(self, keep, dy, need_dx=True):
        return dy * keep

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
