"""Depthwise and separable convolutions: a grouped convolution with one group per input
channel, and that followed by a 1x1 convolution. Same engine, weights as Keras 3."""

import math

from xpnet import initializers
from xpnet import regularizers
from xpnet.backend import namespace
from xpnet.kernels import conv as kconv
from xpnet.layers.conv import _BaseConv
from xpnet.layers.conv_utils import channels

__all__ = ["DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"]


class _DepthwiseConv(_BaseConv):
    """Depthwise convolution: each input channel convolved with its own
    ``depth_multiplier`` filters (a grouped convolution with one group per channel).

    The kernel is ``(*kernel_size, in_channels, depth_multiplier)``, the bias
    ``(in_channels * depth_multiplier,)``; output channel ``c * depth_multiplier + j`` comes
    from input channel ``c``.

    Parameters
    ----------
    kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias :
        as for Conv2D.
    depth_multiplier : int, default=1
    depthwise_initializer, bias_initializer : default="glorot_uniform", "zeros"
    depthwise_regularizer, bias_regularizer : default=None
    """

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", bias_initializer="zeros",
                 depthwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, bias_initializer, bias_regularizer, **kwargs)
        self.depth_multiplier = self._positive(depth_multiplier, "depth_multiplier",
                                               self.name)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)

    def _in_channels(self):
        return self.params["kernel"].shape[-2]

    def _out_channels(self, in_channels):
        return None if in_channels is None else in_channels * self.depth_multiplier

    def _pixel_macs(self, c):
        return math.prod(self.kernel_size) * c * self.depth_multiplier

    def build(self, input_shape):
        c = channels(input_shape, self.data_format)
        self.add_weight(name="kernel", shape=self.kernel_size + (c, self.depth_multiplier),
                        initializer=self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer)
        self._add_bias(c * self.depth_multiplier)

    def _linear(self, x):
        win = self._window(tuple(x.shape[1:-1]))
        z, cols = _depthwise_forward(x, self.params["kernel"], win)
        return z, (cols, win)

    def _linear_backward(self, inner, dz, need_dx):
        cols, win = inner
        dk, dx = _depthwise_backward(dz, cols, self.params["kernel"], win, need_dx)
        self.grads["kernel"] += dk
        return dx

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer)}


def _grouped_kernel(kernel):
    """A depthwise kernel (*k, C, m) as the grouped kernel (*k, 1, C*m), groups=C."""
    xp = namespace(kernel)
    shape = tuple(kernel.shape)
    return xp.reshape(kernel, shape[:-2] + (1, shape[-2] * shape[-1]))


def _depthwise_forward(x, kernel, win):
    return kconv.conv_forward(x, _grouped_kernel(kernel), win, kernel.shape[-2])


def _depthwise_backward(dz, cols, kernel, win, need_dx):
    xp = namespace(kernel)
    dk, dx = kconv.conv_backward(dz, cols, _grouped_kernel(kernel), win, kernel.shape[-2],
                                 need_dx)
    return xp.reshape(dk, tuple(kernel.shape)), dx


class DepthwiseConv1D(_DepthwiseConv):
    __doc__ = "1-D d" + _DepthwiseConv.__doc__[1:]
    rank = 1


class DepthwiseConv2D(_DepthwiseConv):
    __doc__ = "2-D d" + _DepthwiseConv.__doc__[1:]
    rank = 2


class _SeparableConv(_BaseConv):
    """Separable convolution: a depthwise convolution, then a 1x1 (pointwise) convolution
    to ``filters`` channels, then the bias and the activation.

    Weights, as Keras: ``depthwise_kernel`` (*kernel_size, in, depth_multiplier),
    ``pointwise_kernel`` (1, ..., in * depth_multiplier, filters), ``bias`` (filters,).

    Parameters
    ----------
    filters, kernel_size, strides, padding, data_format, dilation_rate, depth_multiplier,
    activation, use_bias :
        as for Conv2D and DepthwiseConv2D.
    depthwise_initializer, pointwise_initializer, bias_initializer :
        default="glorot_uniform", "glorot_uniform", "zeros"
    depthwise_regularizer, pointwise_regularizer, bias_regularizer : default=None
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, depth_multiplier=1, activation=None, use_bias=True,
                 depthwise_initializer="glorot_uniform", pointwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, bias_initializer, bias_regularizer, **kwargs)
        self.filters = self._positive(filters, "filters", self.name)
        self.depth_multiplier = self._positive(depth_multiplier, "depth_multiplier",
                                               self.name)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)

    def _in_channels(self):
        return self.params["depthwise_kernel"].shape[-2]

    def _out_channels(self, in_channels):
        return self.filters

    def _pixel_macs(self, c):
        m = self.depth_multiplier
        return math.prod(self.kernel_size) * c * m + c * m * self.filters

    def build(self, input_shape):
        c = channels(input_shape, self.data_format)
        m = self.depth_multiplier
        self.add_weight(name="depthwise_kernel", shape=self.kernel_size + (c, m),
                        initializer=self.depthwise_initializer,
                        regularizer=self.depthwise_regularizer)
        self.add_weight(name="pointwise_kernel", shape=(1,) * self.rank + (c * m, self.filters),
                        initializer=self.pointwise_initializer,
                        regularizer=self.pointwise_regularizer)
        self._add_bias(self.filters)

    def _linear(self, x):
        win = self._window(tuple(x.shape[1:-1]))
        h, cols = _depthwise_forward(x, self.params["depthwise_kernel"], win)
        point = kconv.window(win.out_sizes, (1,) * self.rank, (1,) * self.rank,
                             (1,) * self.rank, "valid")
        z, hcols = kconv.conv_forward(h, self.params["pointwise_kernel"], point)
        return z, (cols, hcols, win, point)

    def _linear_backward(self, inner, dz, need_dx):
        cols, hcols, win, point = inner
        dpk, dh = kconv.conv_backward(dz, hcols, self.params["pointwise_kernel"], point)
        ddk, dx = _depthwise_backward(dh, cols, self.params["depthwise_kernel"], win, need_dx)
        self.grads["pointwise_kernel"] += dpk
        self.grads["depthwise_kernel"] += ddk
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "depth_multiplier": self.depth_multiplier,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer)}


class SeparableConv1D(_SeparableConv):
    __doc__ = "1-D s" + _SeparableConv.__doc__[1:]
    rank = 1


class SeparableConv2D(_SeparableConv):
    __doc__ = "2-D s" + _SeparableConv.__doc__[1:]
    rank = 2
