"""Random affine image augmentations, as Keras 3's: RandomRotation, RandomZoom and
RandomTranslation. In training each image gets its own transform, sampled as Keras's
``affine_transform`` samples (see :mod:`xpnet.kernels.image`); at inference they are the
identity. Draws come from a host generator, so a seed gives the same images on every
backend; ``backward`` is the exact transpose of the sampling for the draw ``forward`` made.
"""

import math

from xpnet.kernels import image as kimage
from xpnet.layers.image_preprocessing import _factor
from xpnet.layers.image_preprocessing import _RandomImage

__all__ = ["RandomRotation", "RandomZoom", "RandomTranslation"]

_FILL_MODES = ("reflect", "wrap", "constant", "nearest")
_INTERPOLATIONS = ("nearest", "bilinear")


class _RandomAffine(_RandomImage):
    """Shared: fill mode, interpolation, and sampling by per-image transforms
    ``[a0, a1, a2, b0, b1, b2]`` (output pixel ``(y, x)`` reads input
    ``(b0 x + b1 y + b2, a0 x + a1 y + a2)``) that subclasses draw in ``_transforms``."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if fill_mode not in _FILL_MODES:
            raise NotImplementedError(f"{self.name}: unknown fill_mode {fill_mode!r}. "
                                      f"Expected one of {_FILL_MODES}.")
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"{self.name}: unknown interpolation "
                                      f"{interpolation!r}. Expected one of "
                                      f"{_INTERPOLATIONS}.")
        self.fill_mode, self.interpolation = fill_mode, interpolation
        self.fill_value = float(fill_value)

    def _transforms(self, n, h, w):
        raise NotImplementedError

    def _forward(self, x, training):
        if not training:
            return x, None
        b, h, w = x.shape[0], x.shape[1], x.shape[2]
        t = self.backend.asarray(self._transforms(b, h, w), dtype=self.backend.xp.float64)
        return kimage.affine(x, t, self.interpolation, self.fill_mode, self.fill_value)

    def _backward(self, ctx, dy):
        return dy if ctx is None else kimage.affine_grad(ctx, dy)

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode,
                "interpolation": self.interpolation, "fill_value": self.fill_value}


class RandomRotation(_RandomAffine):
    """Rotates each image by a random angle about its centre, drawn uniformly from
    ``[lower * 360, upper * 360]`` degrees.

    Parameters
    ----------
    factor : float or tuple of two floats
        A fraction of a full turn: ``0.1`` gives ``(-36, 36)`` degrees, ``(-0.2, 0.3)``
        gives ``(-72, 108)``.
    fill_mode : {"reflect", "wrap", "constant", "nearest"}, default="reflect"
    interpolation : {"bilinear", "nearest"}, default="bilinear"
    seed : int, default=None
    fill_value : float, default=0.0
        The value read outside the image with ``fill_mode="constant"``.
    data_format : str, default=None ("channels_last")
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor(self, factor, (-1.0, 1.0))

    def _transforms(self, n, h, w):
        angles = self._rng.draws(n, self.factor[0] * 360.0, self.factor[1] * 360.0)
        cx, cy = 0.5 * (w - 1), 0.5 * (h - 1)
        out = []
        for deg in angles:
            c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            out.append([c, -s, cx - cx * c + cy * s, s, c, cy - cx * s - cy * c])
        return out

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


def _zoom_factor(layer, factor, name):
    """Keras's RandomZoom/RandomTranslation factors: numbers in (-1, 1]."""
    values = factor if isinstance(factor, (tuple, list)) else [factor]
    if (isinstance(factor, (tuple, list)) and len(factor) != 2) or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or v > 1.0 or v <= -1.0
            for v in values):
        raise ValueError(f"{layer.name}: the {name} argument should be a number (or a list "
                         f"of two numbers) in the range [-1.0, 1.0]. Received: "
                         f"{name}={factor!r}")
    if isinstance(factor, (tuple, list)):
        return tuple(float(v) for v in sorted(factor))
    return (-abs(float(factor)), abs(float(factor)))


class RandomZoom(_RandomAffine):
    """Zooms each image about its centre by random factors: the output's pixel ``x`` reads
    input ``zx * x + (w - 1) / 2 * (1 - zx)`` with ``zx`` drawn from
    ``[1 + lower, 1 + upper]``; a positive factor zooms out, a negative one in.

    Parameters
    ----------
    height_factor : float or tuple of two floats, in (-1, 1]
    width_factor : float or tuple, default=None
        None: the width zooms with the height (the aspect ratio is kept).
    fill_mode, interpolation, seed, fill_value, data_format
        As :class:`RandomRotation`.
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self._h = _zoom_factor(self, height_factor, "height_factor")
        self.width_factor = width_factor
        self._w = None if width_factor is None else _zoom_factor(self, width_factor,
                                                                  "width_factor")

    def _transforms(self, n, h, w):
        zy = self._rng.draws(n, 1.0 + self._h[0], 1.0 + self._h[1])
        zx = zy if self._w is None else self._rng.draws(n, 1.0 + self._w[0], 1.0 + self._w[1])
        return [[x, 0.0, (w - 1) / 2.0 * (1.0 - x), 0.0, y, (h - 1) / 2.0 * (1.0 - y)]
                for x, y in zip(zx, zy)]

    def get_config(self):
        return {**super().get_config(), "height_factor": _plain(self.height_factor),
                "width_factor": _plain(self.width_factor)}


class RandomTranslation(_RandomAffine):
    """Shifts each image by random fractions of its height and width, drawn from
    ``[lower, upper]`` of each factor.

    Parameters
    ----------
    height_factor, width_factor : float or tuple of two floats, in (-1, 1]
        ``0.2`` shifts by up to 20 % either way; ``(-0.2, 0.3)`` up by 20 % to down by 30 %.
    fill_mode, interpolation, seed, fill_value, data_format
        As :class:`RandomRotation`.
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect",
                 interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor, self.width_factor = height_factor, width_factor
        self._h = _zoom_factor(self, height_factor, "height_factor")
        self._w = _zoom_factor(self, width_factor, "width_factor")

    def _transforms(self, n, h, w):
        dy = [v * h for v in self._rng.draws(n, *self._h)]
        dx = [v * w for v in self._rng.draws(n, *self._w)]
        return [[1.0, 0.0, -x, 0.0, 1.0, -y] for x, y in zip(dx, dy)]

    def get_config(self):
        return {**super().get_config(), "height_factor": _plain(self.height_factor),
                "width_factor": _plain(self.width_factor)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
