"""Regularisation layers: Dropout and its spatial forms, Gaussian noise and dropout, and
ActivityRegularization.

Each random layer owns a generator on the backend's device, made at ``build`` from its
``seed`` (or, with ``seed=None``, from a seed drawn at construction from
:func:`xpnet.utils.set_random_seed`'s generator, so a seeded program repeats exactly). The
mask a training-mode ``forward`` draws travels to ``backward`` in ``ctx``; the generator's
state is saved with the model (:meth:`Layer.get_rng_state`), so a resumed run draws the same
masks as an uninterrupted one. In inference (``training=False``) these layers are the
identity.
"""

import math

from xpnet import regularizers
from xpnet.layers.base import Layer
from xpnet.utils import next_seed

__all__ = ["Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
           "GaussianNoise", "GaussianDropout", "ActivityRegularization"]


class _Random(Layer):
    """A layer that draws random numbers in training mode from its own generator."""

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"{self.name}: seed must be an int or None, got seed={seed!r}")
        self.seed = seed
        self._seed = next_seed(seed)

    def build(self, input_shape):
        self._rng = self.backend.rng(self._seed)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def _check_rate(layer, rate):
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
        raise ValueError(f"{layer.name}: rate must be a float in [0, 1], got rate={rate!r}")
    return float(rate)


class Dropout(_Random):
    """Inverted dropout: in training, each entry is zeroed with probability ``rate`` and the
    others are scaled by ``1 / (1 - rate)``, so inference needs no rescaling.

    Parameters
    ----------
    rate : float
        Fraction of the entries to drop, in [0, 1].
    noise_shape : tuple, default=None
        Shape of the mask, broadcast against the input; None entries take the input's size
        (``(None, 1, None)`` drops whole time steps' channels together).
    seed : int, default=None
    """

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate(self, rate)
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"{self.name}: expects one input, got shapes {input_shape}")
        if self.noise_shape is not None and len(self.noise_shape) != len(input_shape):
            raise ValueError(f"{self.name}: noise_shape {self.noise_shape} does not match "
                             f"the rank of input shape {tuple(input_shape)}")

    def _mask_shape(self, x):
        if self.noise_shape is None:
            return tuple(x.shape)
        return tuple(n if d is None else d for d, n in zip(self.noise_shape, x.shape))

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            return x, None
        keep = 1.0 - self.rate
        mask = self._rng.bernoulli(keep, self._mask_shape(x), dtype=x.dtype)
        if keep > 0.0:
            mask *= 1.0 / keep
        return x * mask, mask

    def backward(self, mask, dy):
        return dy if mask is None else dy * mask

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "noise_shape": None if self.noise_shape is None else list(self.noise_shape)}


class _SpatialDropout(Dropout):
    """Dropout of whole feature maps: one mask entry per sample and channel."""

    rank = 1

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        kwargs.pop("noise_shape", None)
        super().__init__(rate, seed=seed, **kwargs)
        self.data_format = data_format or "channels_last"
        if self.data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"{self.name}: data_format must be 'channels_last' or "
                             f"'channels_first', got {data_format!r}")

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.name}: expects inputs of rank {self.rank + 2}, "
                             f"got shape {input_shape}")

    def _mask_shape(self, x):
        ones = (1,) * self.rank
        if self.data_format == "channels_first":
            return (x.shape[0], x.shape[1]) + ones
        return (x.shape[0],) + ones + (x.shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.pop("noise_shape")
        return {**config, "data_format": self.data_format}


class SpatialDropout1D(_SpatialDropout):
    """Dropout of whole channels of ``(batch, steps, channels)`` inputs."""

    rank = 1

    def __init__(self, rate, seed=None, **kwargs):
        kwargs.pop("data_format", None)
        super().__init__(rate, seed=seed, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("data_format")
        return config


class SpatialDropout2D(_SpatialDropout):
    """Dropout of whole feature maps of 4-D inputs (channels last or first)."""

    rank = 2


class SpatialDropout3D(_SpatialDropout):
    """Dropout of whole feature volumes of 5-D inputs (channels last or first)."""

    rank = 3


class GaussianNoise(_Random):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev`` in training.

    Parameters
    ----------
    stddev : float
    seed : int, default=None
    """

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(stddev, bool) or not isinstance(stddev, (int, float)) or stddev < 0:
            raise ValueError(f"{self.name}: stddev must be a float >= 0, got stddev={stddev!r}")
        self.stddev = float(stddev)

    def forward(self, x, training=False):
        if not training or self.stddev == 0.0:
            return x, None
        return x + self._rng.normal(tuple(x.shape), dtype=x.dtype, stddev=self.stddev), None

    def backward(self, ctx, dy):
        return dy

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev}


class GaussianDropout(_Random):
    """Multiplies by Gaussian noise of mean 1 and variance ``rate / (1 - rate)`` in training.

    Parameters
    ----------
    rate : float
        In [0, 1).
    seed : int, default=None
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = _check_rate(self, rate)
        if self.rate == 1.0:
            raise ValueError(f"{self.name}: rate must be < 1, got rate={rate!r}")

    def forward(self, x, training=False):
        if not training or self.rate == 0.0:
            return x, None
        std = math.sqrt(self.rate / (1.0 - self.rate))
        noise = self._rng.normal(tuple(x.shape), dtype=x.dtype, mean=1.0, stddev=std)
        return x * noise, noise

    def backward(self, noise, dy):
        return dy if noise is None else dy * noise

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class ActivityRegularization(Layer):
    """The identity, adding ``l1 * sum(|x|) + l2 * sum(x^2)`` of its input to the loss.

    Parameters
    ----------
    l1, l2 : float, default=0.0
    """

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        kwargs.pop("activity_regularizer", None)
        super().__init__(activity_regularizer=regularizers.L1L2(l1=l1, l2=l2), **kwargs)
        self.l1, self.l2 = float(l1), float(l2)

    def forward(self, x, training=False):
        return x, None

    def backward(self, ctx, dy):
        return dy

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        return {**config, "l1": self.l1, "l2": self.l2}
