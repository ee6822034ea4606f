"""Reshaping layers: UpSampling, ZeroPadding and Cropping in 1-D, 2-D and 3-D; Permute and
RepeatVector."""

import math

from xpnet.backend import namespace
from xpnet.kernels import conv as kconv
from xpnet.layers.base import Layer
from xpnet.layers.conv_utils import channels
from xpnet.layers.conv_utils import normalize_data_format
from xpnet.layers.conv_utils import normalize_tuple
from xpnet.layers.conv_utils import spatial
from xpnet.layers.conv_utils import to_first
from xpnet.layers.conv_utils import to_last
from xpnet.layers.conv_utils import with_spatial

__all__ = ["UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D",
           "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D", "Permute",
           "RepeatVector"]


class _Spatial(Layer):
    """A layer on (batch, *spatial, channels) or (batch, channels, *spatial) inputs."""

    rank = 2

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, self.name)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.name}: expects inputs of rank {self.rank + 2} (batch, "
                             f"{'spatial, ' * self.rank}channels in {self.data_format} order)"
                             f", got shape {input_shape}")
        if any(n is not None and n <= 0 for n in
               self._out_sizes(spatial(input_shape, self.data_format))):
            raise ValueError(f"{self.name}: input shape {input_shape} leaves nothing")

    def compute_output_shape(self, input_shape):
        return with_spatial(input_shape[0],
                            self._out_sizes(spatial(input_shape, self.data_format)),
                            channels(input_shape, self.data_format), self.data_format)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


# -- upsampling ----------------------------------------------------------------------------
class _UpSampling(_Spatial):
    """Repeats each pixel ``size`` times along each spatial axis (nearest neighbour).

    Parameters
    ----------
    size : int or tuple of int, default=2
    data_format : {"channels_last", "channels_first"}, default="channels_last"
    """

    def __init__(self, size=2, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.size = normalize_tuple(size, self.rank, "size", self.name)

    def _out_sizes(self, sizes):
        return tuple(None if n is None else n * s for n, s in zip(sizes, self.size))

    def forward(self, x, training=False):
        xp = namespace(x)
        x = to_last(x, self.data_format)
        n, sizes, c = x.shape[0], tuple(x.shape[1:-1]), x.shape[-1]
        inter = sum(((d, 1) for d in sizes), ())
        big = sum(((d, s) for d, s in zip(sizes, self.size)), ())
        y = xp.broadcast_to(xp.reshape(x, (n,) + inter + (c,)), (n,) + big + (c,))
        return to_first(xp.reshape(y, (n,) + self._out_sizes(sizes) + (c,)),
                        self.data_format), sizes

    def backward(self, sizes, dy):
        xp = namespace(dy)
        dy = to_last(dy, self.data_format)
        n, c = dy.shape[0], dy.shape[-1]
        big = sum(((d, s) for d, s in zip(sizes, self.size)), ())
        axes = tuple(2 + 2 * i for i in range(self.rank))
        dx = xp.sum(xp.reshape(dy, (n,) + big + (c,)), axis=axes)
        return to_first(dx, self.data_format)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


class UpSampling1D(_UpSampling):
    """Repeats each step ``size`` times: (batch, steps, C) -> (batch, steps * size, C).

    Parameters
    ----------
    size : int, default=2
    """

    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size[0]
        config.pop("data_format")
        return config


class UpSampling2D(_UpSampling):
    """Upsamples rows and columns by ``size``: nearest neighbour (repetition) or bilinear.

    Parameters
    ----------
    size : int or tuple of 2 int, default=(2, 2)
    data_format : {"channels_last", "channels_first"}, default="channels_last"
    interpolation : {"nearest", "bilinear"}, default="nearest"
        "bilinear" samples at half-pixel centres and clamps at the edges, as Keras's
        ``ops.image.resize``.
    """

    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size, data_format, **kwargs)
        self.interpolation = str(interpolation).lower()
        if self.interpolation not in ("nearest", "bilinear"):
            raise ValueError(f"{self.name}: interpolation must be 'nearest' or 'bilinear'; "
                             f"received interpolation={interpolation!r}")
        self._matrices = {}

    def _matrix(self, n, s, like):
        """The (n*s, n) bilinear interpolation matrix of one axis, cached per size."""
        key = (n, s, str(like.dtype))
        a = self._matrices.get(key)
        if a is None:
            xp = namespace(like)
            rows = []
            for o in range(n * s):
                src = min(max((o + 0.5) / s - 0.5, 0.0), n - 1.0)
                i0 = int(math.floor(src))
                i1, f = min(i0 + 1, n - 1), src - i0
                row = [0.0] * n
                row[i0] += 1.0 - f
                row[i1] += f
                rows.append(row)
            a = self._matrices[key] = xp.asarray(rows, dtype=like.dtype,
                                                 device=getattr(like, "device", None))
        return a

    def forward(self, x, training=False):
        if self.interpolation == "nearest":
            return super().forward(x, training)
        xp = namespace(x)
        x = to_last(x, self.data_format)
        n, h, w, c = x.shape
        ah, aw = self._matrix(h, self.size[0], x), self._matrix(w, self.size[1], x)
        y = ah @ xp.reshape(x, (n, h, w * c))                      # rows
        y = aw @ xp.reshape(y, (n * h * self.size[0], w, c))       # columns
        y = xp.reshape(y, (n, h * self.size[0], w * self.size[1], c))
        return to_first(y, self.data_format), (h, w)

    def backward(self, ctx, dy):
        if self.interpolation == "nearest":
            return super().backward(ctx, dy)
        xp = namespace(dy)
        dy = to_last(dy, self.data_format)
        h, w = ctx
        n, ho, wo, c = dy.shape
        ah, aw = self._matrix(h, self.size[0], dy), self._matrix(w, self.size[1], dy)
        d = aw.mT @ xp.reshape(dy, (n * ho, wo, c))
        d = ah.mT @ xp.reshape(d, (n, ho, w * c))
        return to_first(xp.reshape(d, (n, h, w, c)), self.data_format)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


class UpSampling3D(_UpSampling):
    __doc__ = _UpSampling.__doc__.replace("default=2", "default=(2, 2, 2)")
    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size, data_format, **kwargs)


# -- padding and cropping ----------------------------------------------------------------
def _pairs(value, rank, name, owner):
    """Keras's padding/cropping spec as ((before, after), ...) per spatial axis: an int, a
    tuple of ``rank`` ints (symmetric per axis), or ``rank`` pairs. In 1-D a pair is
    (before, after)."""
    if rank == 1:
        return (normalize_tuple(value, 2, name, owner, minimum=0),)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * rank
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if len(items) == rank and all(isinstance(v, int) for v in items):
        items = tuple((v, v) for v in items)
    if len(items) != rank:
        raise ValueError(f"{owner}: {name} must be an int, a tuple of {rank} ints or a tuple "
                         f"of {rank} pairs of ints; received {name}={value!r}")
    return tuple(normalize_tuple(p, 2, name, owner, minimum=0) for p in items)


class _Edges(_Spatial):
    """ZeroPadding and Cropping: add or remove ``(before, after)`` pixels per axis."""

    arg = "padding"

    def __init__(self, value, data_format=None, **kwargs):
        super().__init__(data_format, **kwargs)
        self.pairs = _pairs(value, self.rank, self.arg, self.name)

    def _config_value(self):
        return self.pairs[0] if self.rank == 1 else self.pairs

    def get_config(self):
        return {**super().get_config(), self.arg: self._config_value()}


class _ZeroPadding(_Edges):
    def _out_sizes(self, sizes):
        return tuple(None if n is None else n + b + a for n, (b, a) in zip(sizes, self.pairs))

    def forward(self, x, training=False):
        y = kconv.pad(to_last(x, self.data_format), self.pairs)
        return to_first(y, self.data_format), None

    def backward(self, ctx, dy):
        return to_first(kconv.crop(to_last(dy, self.data_format), self.pairs),
                        self.data_format)


class _Cropping(_Edges):
    arg = "cropping"

    def _out_sizes(self, sizes):
        return tuple(None if n is None else n - b - a for n, (b, a) in zip(sizes, self.pairs))

    def forward(self, x, training=False):
        y = kconv.crop(to_last(x, self.data_format), self.pairs)
        return to_first(y, self.data_format), None

    def backward(self, ctx, dy):
        return to_first(kconv.pad(to_last(dy, self.data_format), self.pairs),
                        self.data_format)


_PAD_DOC = """Zero-padding of a {r}-D input: ``padding`` zeros before and after each spatial axis.

    Parameters
    ----------
    padding : int, tuple of {r} ints, or tuple of {r} (before, after) pairs, default={d}
    data_format : {{"channels_last", "channels_first"}}, default="channels_last"
    """

_CROP_DOC = """Cropping of a {r}-D input: removes ``cropping`` pixels before and after each axis.

    Parameters
    ----------
    cropping : int, tuple of {r} ints, or tuple of {r} (before, after) pairs, default={d}
    data_format : {{"channels_last", "channels_first"}}, default="channels_last"
    """


class ZeroPadding1D(_ZeroPadding):
    __doc__ = _PAD_DOC.format(r=1, d=1).replace("tuple of 1 ints, or tuple of 1 (before, "
                                                "after) pairs", "or (before, after)")
    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding2D(_ZeroPadding):
    __doc__ = _PAD_DOC.format(r=2, d="(1, 1)")
    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class ZeroPadding3D(_ZeroPadding):
    __doc__ = _PAD_DOC.format(r=3, d="((1, 1), (1, 1), (1, 1))")
    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(padding, data_format, **kwargs)


class Cropping1D(_Cropping):
    __doc__ = _CROP_DOC.format(r=1, d="(1, 1)").replace(
        "tuple of 1 ints, or tuple of 1 (before, after) pairs", "or (before, after)")
    rank = 1

    def __init__(self, cropping=(1, 1), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping2D(_Cropping):
    __doc__ = _CROP_DOC.format(r=2, d="((0, 0), (0, 0))")
    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


class Cropping3D(_Cropping):
    __doc__ = _CROP_DOC.format(r=3, d="((1, 1), (1, 1), (1, 1))")
    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(cropping, data_format, **kwargs)


# Issue 10: Permute and RepeatVector.
class Permute(Layer):
    """Permutes the non-batch axes: ``dims`` lists them from 1, e.g. ``(2, 1)`` swaps the
    two axes of ``(batch, a, b)`` inputs.

    Parameters
    ----------
    dims : tuple of int
        A permutation of ``1 .. rank - 1``.
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"{self.name}: invalid permutation argument dims for Permute "
                             f"layer. The set of indices in dims must be consecutive and "
                             f"start from 1. Received: dims={dims}")
        self.supports_masking = True

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != len(self.dims) + 1:
            raise ValueError(f"{self.name}: dims={self.dims} need inputs of rank "
                             f"{len(self.dims) + 1}, got shape {input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + tuple(input_shape[d] for d in self.dims)

    def forward(self, x, training=False):
        return namespace(x).permute_dims(x, (0,) + self.dims), None

    def backward(self, ctx, dy):
        inverse = [0] * (len(self.dims) + 1)
        for i, d in enumerate((0,) + self.dims):
            inverse[d] = i
        return namespace(dy).permute_dims(dy, tuple(inverse))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


class RepeatVector(Layer):
    """Repeats a ``(batch, features)`` input ``n`` times: ``(batch, n, features)``.

    Parameters
    ----------
    n : int
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise TypeError(f"{self.name}: expected an integer value for n >= 1. "
                            f"Received: n={n!r}")
        self.n = n

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{self.name}: expects inputs of shape (batch, features), got "
                             f"{input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def forward(self, x, training=False):
        xp = namespace(x)
        return xp.broadcast_to(x[:, None, :], (x.shape[0], self.n, x.shape[1])), None

    def backward(self, ctx, dy):
        return namespace(dy).sum(dy, axis=1)

    def get_config(self):
        return {**super().get_config(), "n": self.n}
