"""Pooling layers: max and average over windows (1-D, 2-D, 3-D) and over all positions.

Windows are the strided slices of the convolution engine (:mod:`xpnet.kernels.conv`).
Max pooling sends each window's gradient to the input that won it (the first one on ties,
as TensorFlow); average pooling with "same" padding divides by the number of real inputs
in each window, not counting the padding (as Keras).
"""

import math

from xpnet.backend import namespace
from xpnet.kernels import conv as kconv
from xpnet.layers.base import Layer
from xpnet.layers.conv_utils import channels
from xpnet.layers.conv_utils import normalize_data_format
from xpnet.layers.conv_utils import normalize_padding
from xpnet.layers.conv_utils import normalize_tuple
from xpnet.layers.conv_utils import spatial
from xpnet.layers.conv_utils import to_first
from xpnet.layers.conv_utils import to_last
from xpnet.layers.conv_utils import with_spatial

__all__ = ["MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
           "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
           "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
           "GlobalMaxPooling2D", "GlobalMaxPooling3D"]


def _check_rank(layer, input_shape):
    if isinstance(input_shape, list) or len(input_shape) != layer.rank + 2:
        raise ValueError(f"{layer.name}: expects inputs of rank {layer.rank + 2} (batch, "
                         f"{'spatial, ' * layer.rank}channels in {layer.data_format} order), "
                         f"got shape {input_shape}")


class _Pooling(Layer):
    """Pooling over windows of ``pool_size``.

    Parameters
    ----------
    pool_size : int or tuple of int, default=2
    strides : int or tuple of int, default=None
        Defaults to ``pool_size``.
    padding : {"valid", "same"}, default="valid"
    data_format : {"channels_last", "channels_first"}, default="channels_last"
    """

    rank, mode = 2, "max"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.pool_size = normalize_tuple(pool_size, self.rank, "pool_size", self.name)
        self.strides = self.pool_size if strides is None else \
            normalize_tuple(strides, self.rank, "strides", self.name)
        self.padding = normalize_padding(padding, self.name)
        self.data_format = normalize_data_format(data_format, self.name)
        self._windows = {}

    def _out_sizes(self, sizes):
        return tuple(kconv.output_length(n, k, s, 1, self.padding)
                     for n, k, s in zip(sizes, self.pool_size, self.strides))

    def check_input_shape(self, input_shape):
        _check_rank(self, input_shape)
        if any(o is not None and o <= 0 for o in
               self._out_sizes(spatial(input_shape, self.data_format))):
            raise ValueError(f"{self.name}: input shape {input_shape} is smaller than "
                             f"pool_size={self.pool_size}")

    def compute_output_shape(self, input_shape):
        out = self._out_sizes(spatial(input_shape, self.data_format))
        return with_spatial(input_shape[0], out, channels(input_shape, self.data_format),
                            self.data_format)

    def _window(self, sizes):
        win = self._windows.get(sizes)
        if win is None:
            win = self._windows[sizes] = kconv.window(sizes, self.pool_size, self.strides,
                                                      (1,) * self.rank, self.padding)
        return win

    def forward(self, x, training=False):
        x = to_last(x, self.data_format)
        win = self._window(tuple(x.shape[1:-1]))
        if self.mode == "max":
            y, arg = kconv.max_pool(x, win)
        else:
            y, arg = kconv.avg_pool(x, win), None
        return to_first(y, self.data_format), (arg, win)

    def backward(self, ctx, dy):
        arg, win = ctx
        dy = to_last(dy, self.data_format)
        if self.mode == "max":
            dx = kconv.max_pool_grad(dy, arg, win)
        else:
            dx = kconv.avg_pool_grad(dy, win)
        return to_first(dx, self.data_format)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "strides": self.strides,
                "padding": self.padding, "data_format": self.data_format}


class MaxPooling1D(_Pooling):
    __doc__ = _Pooling.__doc__.replace("Pooling over windows", "Maximum over 1-D windows")
    rank, mode = 1, "max"


class MaxPooling2D(_Pooling):
    __doc__ = _Pooling.__doc__.replace("Pooling over windows", "Maximum over 2-D windows")
    rank, mode = 2, "max"


class MaxPooling3D(_Pooling):
    __doc__ = _Pooling.__doc__.replace("Pooling over windows", "Maximum over 3-D windows")
    rank, mode = 3, "max"


class AveragePooling1D(_Pooling):
    __doc__ = _Pooling.__doc__.replace("Pooling over windows", "Average over 1-D windows")
    rank, mode = 1, "avg"


class AveragePooling2D(_Pooling):
    __doc__ = _Pooling.__doc__.replace("Pooling over windows", "Average over 2-D windows")
    rank, mode = 2, "avg"


class AveragePooling3D(_Pooling):
    __doc__ = _Pooling.__doc__.replace("Pooling over windows", "Average over 3-D windows")
    rank, mode = 3, "avg"


class _GlobalPooling(Layer):
    """Pooling over all spatial positions.

    Parameters
    ----------
    data_format : {"channels_last", "channels_first"}, default="channels_last"
    keepdims : bool, default=False
        Keep the spatial axes, with size 1.
    """

    rank, mode = 2, "avg"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = normalize_data_format(data_format, self.name)
        self.keepdims = bool(keepdims)

    def check_input_shape(self, input_shape):
        _check_rank(self, input_shape)

    def compute_output_shape(self, input_shape):
        c = channels(input_shape, self.data_format)
        if self.keepdims:
            return with_spatial(input_shape[0], (1,) * self.rank, c, self.data_format)
        return (input_shape[0], c)

    def _shape_out(self, y):
        """(batch, C) -> the output shape."""
        if not self.keepdims:
            return y
        xp = namespace(y)
        shape = with_spatial(y.shape[0], (1,) * self.rank, y.shape[1], self.data_format)
        return xp.reshape(y, shape)

    def forward(self, x, training=False):
        xp = namespace(x)
        x = to_last(x, self.data_format)
        shape = tuple(x.shape)
        x3 = xp.reshape(x, (shape[0], -1, shape[-1]))
        if self.mode == "avg":
            return self._shape_out(xp.mean(x3, axis=1)), (shape, None)
        arg = xp.argmax(x3, axis=1)  # the first maximum: the one the gradient goes to
        return self._shape_out(xp.max(x3, axis=1)), (shape, arg)

    def backward(self, ctx, dy):
        shape, arg = ctx
        xp = namespace(dy)
        n, c = shape[0], shape[-1]
        positions = math.prod(shape[1:-1])
        dy = xp.reshape(dy, (n, 1, c))
        if self.mode == "avg":
            dx = xp.broadcast_to(dy / positions, (n, positions, c))
        else:
            where = xp.arange(positions, dtype=arg.dtype, device=getattr(dy, "device", None))
            hit = xp.reshape(where, (1, positions, 1)) == xp.reshape(arg, (n, 1, c))
            dx = xp.where(hit, dy, 0.0)
        return to_first(xp.reshape(dx, shape), self.data_format)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format,
                "keepdims": self.keepdims}


def _global_doc(what, rank):
    return _GlobalPooling.__doc__.replace("Pooling over all spatial positions",
                                          f"{what} over all positions of a {rank}-D input")


class GlobalAveragePooling1D(_GlobalPooling):
    __doc__ = _global_doc("Mean", 1) + """
    With a ``mask`` (batch, steps) the mean runs over the unmasked steps only (Keras:
    ``sum(x * mask) / sum(mask)``); the output has no mask.
    """
    rank, mode = 1, "avg"

    def compute_mask(self, x, mask=None):
        return None

    def forward(self, x, training=False, mask=None):
        if mask is None:
            return super().forward(x, training)
        xp = namespace(x)
        steps = 1 if self.data_format == "channels_last" else 2
        w = xp.expand_dims(xp.astype(mask, x.dtype), axis=3 - steps)  # issue 12
        total = xp.sum(w, axis=steps)
        return self._shape_out(xp.sum(x * w, axis=steps) / total), ("masked", w, total)

    def backward(self, ctx, dy, need_dx=True):
        if ctx[0] != "masked":
            return super().backward(ctx, dy)
        _, w, total = ctx
        xp = namespace(dy)
        g = xp.reshape(dy, (dy.shape[0], -1)) / total  # (batch, channels)
        steps = 1 if self.data_format == "channels_last" else 2
        return xp.expand_dims(g, axis=steps) * w


class GlobalAveragePooling2D(_GlobalPooling):
    __doc__ = _global_doc("Mean", 2)
    rank, mode = 2, "avg"


class GlobalAveragePooling3D(_GlobalPooling):
    __doc__ = _global_doc("Mean", 3)
    rank, mode = 3, "avg"


class GlobalMaxPooling1D(_GlobalPooling):
    __doc__ = _global_doc("Maximum", 1)
    rank, mode = 1, "max"


class GlobalMaxPooling2D(_GlobalPooling):
    __doc__ = _global_doc("Maximum", 2)
    rank, mode = 2, "max"


class GlobalMaxPooling3D(_GlobalPooling):
    __doc__ = _global_doc("Maximum", 3)
    rank, mode = 3, "max"
