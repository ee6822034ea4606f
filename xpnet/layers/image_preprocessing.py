"""Image preprocessing layers, as Keras 3's: Resizing, CenterCrop, RandomCrop, RandomFlip and
RandomContrast (the random affine ones are in :mod:`xpnet.layers.image_augmentation`).

Inputs are ``(batch, height, width, channels)`` (or channels first, or one unbatched image).
The random layers act only in training (``training=True``); at inference they are the
identity, except RandomCrop, which then center-crops to its size as Keras documents. Their
draws (one or a few numbers per image) come from a host generator seeded from ``seed`` (or
from :func:`xpnet.utils.set_random_seed`), so a seed gives the same images on every backend,
and the generator's state is saved with the model. ``backward`` returns the gradient with
respect to the input for the draw its ``forward`` made.
"""

from xpnet.backend import namespace
from xpnet.kernels import image as kimage
from xpnet.layers.base import Layer
from xpnet.utils import next_seed

__all__ = ["Resizing", "CenterCrop", "RandomCrop", "RandomFlip", "RandomContrast"]


def _data_format(layer, data_format):
    data_format = data_format or "channels_last"
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{layer.name}: data_format must be 'channels_last' or "
                         f"'channels_first'. Received: data_format={data_format!r}")
    return data_format


class _ImageLayer(Layer):
    """Batches of images in either layout, handled channels last and batched inside:
    subclasses implement ``_forward(x, training) -> (y, ctx)`` and ``_backward(ctx, dy)``
    on ``(batch, h, w, c)`` arrays."""

    def __init__(self, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(self, data_format)
        if bounding_box_format is not None:
            raise NotImplementedError(f"{self.name}: bounding boxes are not supported yet "
                                      f"(bounding_box_format={bounding_box_format!r})")

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, dict):
            raise NotImplementedError(f"{self.name}: dict inputs (images with labels, "
                                      "bounding boxes or segmentation masks) are not "
                                      "supported yet; pass the images array")
        return super().__call__(inputs, *args, **kwargs)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) not in (3, 4):
            raise ValueError(f"{self.name}: expects images of rank 4 (batched) or 3, got "
                             f"shape {input_shape}")

    def _hw_axes(self, rank):
        return (rank - 2, rank - 1) if self.data_format == "channels_first" else \
            (rank - 3, rank - 2)

    def _out_hw(self, h, w):
        return h, w

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        a, b = self._hw_axes(len(shape))
        shape[a], shape[b] = self._out_hw(shape[a], shape[b])
        return tuple(shape)

    def _to_last(self, x):
        xp = namespace(x)
        x = x[None, ...] if x.ndim == 3 else x
        return xp.permute_dims(x, (0, 2, 3, 1)) if self.data_format == "channels_first" else x

    def _from_last(self, y, rank):
        xp = namespace(y)
        y = xp.permute_dims(y, (0, 3, 1, 2)) if self.data_format == "channels_first" else y
        return y[0, ...] if rank == 3 else y

    def forward(self, x, training=False):
        x = as_float(x, self.dtype)
        y, ctx = self._forward(self._to_last(x), training)
        return self._from_last(y, x.ndim), (ctx, x.ndim)

    def backward(self, ctx, dy):
        inner, rank = ctx
        return self._from_last(self._backward(inner, self._to_last(dy)), rank)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class _RandomImage(_ImageLayer):
    """An image layer drawing per-batch parameters from a host generator."""

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise TypeError(f"{self.name}: seed must be an int or None, got seed={seed!r}")
        self.seed = seed
        self._seed = next_seed(seed)

    def build(self, input_shape):
        self._rng = self.backend.rng(self._seed, host=True)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def as_float(x, dtype):
    """Integer images (uint8 pixels) as the layer's float ``dtype``, as Keras casts inputs to
    its compute dtype; float arrays pass unchanged."""
    xp = namespace(x)
    return x if xp.isdtype(x.dtype, "real floating") else xp.astype(x, getattr(xp, dtype))


def aspect_crop_box(h, w, height, width):
    """Keras's centred crop of an ``h x w`` image to the aspect ratio of ``height x width``:
    ``(top, left, crop_h, crop_w)``."""
    crop_h = max(min(h, int(float(w * height) / width)), 1)
    crop_w = max(min(w, int(float(h * width) / height)), 1)
    return int(float(h - crop_h) / 2), int(float(w - crop_w) / 2), crop_h, crop_w


def crop(x, box):
    top, left, ch, cw = box
    return x[:, top:top + ch, left:left + cw, :]


def uncrop(d, box, h, w):
    """The gradient of :func:`crop`: ``d`` placed back into zeros of ``h x w``."""
    xp = namespace(d)
    top, left, ch, cw = box
    b, c = d.shape[0], d.shape[-1]

    def zeros(n_h, n_w):
        return xp.zeros((b, n_h, n_w, c), dtype=d.dtype, device=getattr(d, "device", None))

    parts = [p for p in (zeros(ch, left), d, zeros(ch, w - left - cw)) if p.shape[2]]
    d = xp.concat(parts, axis=2) if len(parts) > 1 else d
    parts = [p for p in (zeros(top, w), d, zeros(h - top - ch, w)) if p.shape[1]]
    return xp.concat(parts, axis=1) if len(parts) > 1 else d


def _resize_weights(x, height, width, interpolation, antialias):
    xp = namespace(x)
    dev = getattr(x, "device", None)
    h, w = x.shape[1], x.shape[2]
    return (None if h == height else
            kimage.resize_weights(h, height, interpolation, antialias, xp, dev, x.dtype),
            None if w == width else
            kimage.resize_weights(w, width, interpolation, antialias, xp, dev, x.dtype))


class Resizing(_ImageLayer):
    """Resizes images to ``height x width``, as Keras's NumPy and JAX backends resize
    (half-pixel centres; see :mod:`xpnet.kernels.image`).

    Parameters
    ----------
    height, width : int
    interpolation : str, default="bilinear"
        "bilinear", "nearest", "bicubic", "lanczos3" or "lanczos5".
    crop_to_aspect_ratio : bool, default=False
        First crop the largest centred window of the target aspect ratio.
    pad_to_aspect_ratio : bool, default=False
        First pad (with ``fill_value``) to the target aspect ratio, evenly on both sides.
    fill_mode : str, default="constant"
        Only "constant" (as Keras).
    fill_value : float, default=0.0
    antialias : bool, default=False
        Widen the kernel when downsampling.
    data_format : str, default=None ("channels_last")
    """

    def __init__(self, height, width, interpolation="bilinear", crop_to_aspect_ratio=False,
                 pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0,
                 antialias=False, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        if interpolation not in kimage.INTERPOLATIONS:
            raise ValueError(f"{self.name}: invalid value for argument interpolation. "
                             f"Expected one of {kimage.INTERPOLATIONS}. Received: "
                             f"interpolation={interpolation!r}")
        if fill_mode != "constant":
            raise ValueError(f"{self.name}: only fill_mode='constant' is supported. "
                             f"Received: fill_mode={fill_mode!r}")
        if crop_to_aspect_ratio and pad_to_aspect_ratio:
            raise ValueError(f"{self.name}: only one of pad_to_aspect_ratio & "
                             "crop_to_aspect_ratio can be True.")
        self.height, self.width = int(height), int(width)
        self.interpolation, self.antialias = interpolation, bool(antialias)
        self.crop_to_aspect_ratio = bool(crop_to_aspect_ratio)
        self.pad_to_aspect_ratio = bool(pad_to_aspect_ratio)
        self.fill_mode, self.fill_value = fill_mode, float(fill_value)

    def _out_hw(self, h, w):
        return self.height, self.width

    def _pad_box(self, h, w):
        """Keras's padding: ``(top, left)`` rows/columns added on each side of one axis."""
        pad_h = max(h, int(float(w * self.height) / self.width))
        pad_w = max(w, int(float(h * self.width) / self.height))
        top, left = int(float(pad_h - h) / 2), int(float(pad_w - w) / 2)
        return (top, 0) if top > 0 else (0, left)

    def _pad(self, x, top, left):
        xp = namespace(x)
        b, h, w, c = x.shape
        if top:
            edge = xp.full((b, top, w, c), self.fill_value, dtype=x.dtype,
                           device=getattr(x, "device", None))
            return xp.concat([edge, x, edge], axis=1)
        if left:
            edge = xp.full((b, h, left, c), self.fill_value, dtype=x.dtype,
                           device=getattr(x, "device", None))
            return xp.concat([edge, x, edge], axis=2)
        return x

    def _forward(self, x, training):
        h, w = x.shape[1], x.shape[2]
        box = pad = None
        if self.crop_to_aspect_ratio:
            box = aspect_crop_box(h, w, self.height, self.width)
            x = crop(x, box)
        elif self.pad_to_aspect_ratio:
            pad = self._pad_box(h, w)
            x = self._pad(x, *pad)
        weights = _resize_weights(x, self.height, self.width, self.interpolation,
                                  self.antialias)
        return kimage.resize(x, weights), (weights, box, pad, h, w)

    def _backward(self, ctx, dy):
        weights, box, pad, h, w = ctx
        dx = kimage.resize_grad(dy, weights)
        if box is not None:
            return uncrop(dx, box, h, w)
        if pad is not None:
            top, left = pad
            return dx[:, top:top + h, left:left + w, :]
        return dx

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "antialias": self.antialias}


def _crop_or_resize(x, box, height, width):
    """Crop ``box``, then resize bilinearly to ``height x width`` if the crop differs."""
    x = crop(x, box)
    weights = _resize_weights(x, height, width, "bilinear", False)
    return kimage.resize(x, weights), weights


def _crop_or_resize_grad(dy, ctx):
    weights, box, h, w = ctx
    return uncrop(kimage.resize_grad(dy, weights), box, h, w)


class CenterCrop(_ImageLayer):
    """Crops the central ``height x width`` window; an image smaller than that on either side
    is instead cropped to the target aspect ratio and resized bilinearly (Keras's
    ``smart_resize``).

    Parameters
    ----------
    height, width : int
    data_format : str, default=None ("channels_last")
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.height, self.width = int(height), int(width)

    def _out_hw(self, h, w):
        return self.height, self.width

    def _forward(self, x, training):
        h, w = x.shape[1], x.shape[2]
        if h >= self.height and w >= self.width:
            box = ((h - self.height) // 2, (w - self.width) // 2, self.height, self.width)
        else:
            box = aspect_crop_box(h, w, self.height, self.width)
        y, weights = _crop_or_resize(x, box, self.height, self.width)
        return y, (weights, box, h, w)

    def _backward(self, ctx, dy):
        return _crop_or_resize_grad(dy, ctx)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


class RandomCrop(_RandomImage):
    """In training, crops a random ``height x width`` window, at one place for the whole
    batch (as Keras). At inference, and in training when the image is not larger than the
    target on both sides, crops the largest centred window of the target aspect ratio and
    resizes it bilinearly (Keras's documented behaviour).

    Parameters
    ----------
    height, width : int
    seed : int, default=None
    data_format : str, default=None ("channels_last")
    """

    def __init__(self, height, width, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.height, self.width = int(height), int(width)

    def _out_hw(self, h, w):
        return self.height, self.width

    def _forward(self, x, training):
        h, w = x.shape[1], x.shape[2]
        if training and h > self.height and w > self.width:
            top = int(self._rng.draws(1, 0.0, float(h - self.height + 1))[0])
            left = int(self._rng.draws(1, 0.0, float(w - self.width + 1))[0])
            box = (top, left, self.height, self.width)
        else:
            box = aspect_crop_box(h, w, self.height, self.width)
        y, weights = _crop_or_resize(x, box, self.height, self.width)
        return y, (weights, box, h, w)

    def _backward(self, ctx, dy):
        return _crop_or_resize_grad(dy, ctx)

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


_FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


class RandomFlip(_RandomImage):
    """In training, flips each image with probability 1/2: left-right ("horizontal"),
    upside down ("vertical"), or both at once ("horizontal_and_vertical", one draw per
    image for both flips, as Keras).

    Parameters
    ----------
    mode : str, default="horizontal_and_vertical"
    seed : int, default=None
    data_format : str, default=None ("channels_last")
    """

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _FLIP_MODES:
            raise ValueError(f"{self.name}: RandomFlip layer {self.name} received an unknown "
                             f"mode argument {mode!r}; expected one of {_FLIP_MODES}")
        self.mode = mode

    def _flip(self, x, flips):
        xp = namespace(x)
        if flips is None:
            return x
        if self.mode != "vertical":
            x = xp.where(flips, xp.flip(x, axis=2), x)
        if self.mode != "horizontal":
            x = xp.where(flips, xp.flip(x, axis=1), x)
        return x

    def _forward(self, x, training):
        if not training:
            return x, None
        xp = namespace(x)
        flips = [u <= 0.5 for u in self._rng.draws(x.shape[0])]
        flips = xp.reshape(xp.asarray(flips, device=getattr(x, "device", None)),
                           (-1, 1, 1, 1))
        return self._flip(x, flips), flips

    def _backward(self, flips, dy):
        return self._flip(dy, flips)  # a flip is its own inverse

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class RandomContrast(_RandomImage):
    """In training, scales each image's deviation from its per-channel mean by a random
    factor: ``y = clip((x - mean) * f + mean, *value_range)``, mean over height and width.

    ``f`` is drawn per image from ``[1 - lower, 1 + upper]``, where a number ``factor`` gives
    ``(lower, upper) = (max(-factor, 0), factor)`` -- that is ``[1, 1 + factor]``, which is
    what Keras 3's code draws (its documentation says ``[1 - factor, 1 + factor]``) -- and
    a pair ``(lower, upper)`` gives ``[1 - lower, 1 + upper]``.

    Parameters
    ----------
    factor : float or tuple of two floats, in [0, 1]
    value_range : tuple, default=(0, 255)
    seed : int, default=None
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _factor(self, factor, (0.0, 1.0))
        self.value_range = tuple(value_range)

    def _forward(self, x, training):
        if not training:
            return x, None
        xp = namespace(x)
        f = self._rng.draws(x.shape[0], 1.0 - self.factor[0], 1.0 + self.factor[1])
        f = xp.reshape(xp.asarray(f, dtype=x.dtype, device=getattr(x, "device", None)),
                       (-1, 1, 1, 1))
        mean = xp.mean(x, axis=(1, 2), keepdims=True)
        z = (x - mean) * f + mean
        lo, hi = self.value_range
        inside = (z >= lo) & (z <= hi)
        return xp.clip(z, float(lo), float(hi)), (f, inside)

    def _backward(self, ctx, dy):
        if ctx is None:
            return dy
        f, inside = ctx
        xp = namespace(dy)
        dz = xp.where(inside, dy, xp.zeros_like(dy))
        return dz * f + xp.mean(dz * (1.0 - f), axis=(1, 2), keepdims=True)

    def get_config(self):
        config = super().get_config()
        config.pop("data_format")
        return {**config, "factor": list(self.factor), "value_range": list(self.value_range)}


def _factor(layer, factor, bounds):
    """Keras's ``_set_factor``: a number ``f`` -> ``(max(-f, lower bound), f)``; a pair ->
    sorted. Values outside ``bounds`` are an error."""
    message = (f"{layer.name}: the factor argument should be a number (or a list of two "
               f"numbers) in the range [{bounds[0]}, {bounds[1]}]. Received: factor="
               f"{factor!r}")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or factor[0] > bounds[1] or factor[1] < bounds[0]:
            raise ValueError(message)
        return tuple(float(v) for v in sorted(factor))
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (
            bounds[0] <= factor <= bounds[1]):
        raise ValueError(message)
    return (max(-abs(factor), bounds[0]), float(abs(factor)))
