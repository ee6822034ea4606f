"""Convolution layers: Conv1D/2D/3D and their transposes (depthwise and separable ones are
in :mod:`xpnet.layers.conv_depthwise`).

All of them run on one engine (:mod:`xpnet.kernels.conv`): im2col from strided slices of
the padded input and one matrix product, its backward adding back into the padded
gradient through the same slices. Weights have Keras 3's names, shapes and order: a
convolution's kernel is ``(*kernel_size, in_channels / groups, filters)``, a transposed
convolution's ``(*kernel_size, filters, in_channels)``.
"""

import math

from xpnet import initializers
from xpnet import regularizers
from xpnet.kernels import conv as kconv
from xpnet.layers.base import ActivatedLayer
from xpnet.layers.conv_utils import channels
from xpnet.layers.conv_utils import normalize_data_format
from xpnet.layers.conv_utils import normalize_padding
from xpnet.layers.conv_utils import normalize_tuple
from xpnet.layers.conv_utils import spatial
from xpnet.layers.conv_utils import to_first
from xpnet.layers.conv_utils import to_last
from xpnet.layers.conv_utils import with_spatial

__all__ = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
           "Conv3DTranspose"]


class _BaseConv(ActivatedLayer):
    """What every convolution shares: the window arguments, the data format, the bias, the
    input checks and a cache of windows per input size."""

    rank = 2

    def __init__(self, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, bias_initializer="zeros",
                 bias_regularizer=None, **kwargs):
        super().__init__(activation=activation, **kwargs)
        r = self.rank
        self.kernel_size = normalize_tuple(kernel_size, r, "kernel_size", self.name)
        self.strides = normalize_tuple(strides, r, "strides", self.name)
        self.dilation_rate = normalize_tuple(dilation_rate, r, "dilation_rate", self.name)
        self.padding = normalize_padding(padding, self.name, self._allow_causal())
        self.data_format = normalize_data_format(data_format, self.name)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{self.name}: `strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1` (as Keras); received strides="
                             f"{self.strides} and dilation_rate={self.dilation_rate}")
        self.use_bias = use_bias
        self.bias_initializer = initializers.get(bias_initializer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._windows = {}

    def _allow_causal(self):
        return False

    @staticmethod
    def _positive(value, what, owner):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{owner}: {what} must be a positive int; received "
                             f"{what}={value!r}")
        return value

    # -- shapes --------------------------------------------------------------------------
    def _in_channels(self):
        """Input channels the built weights expect."""
        raise NotImplementedError

    def _out_channels(self, in_channels):
        raise NotImplementedError

    def _out_sizes(self, sizes):
        return tuple(kconv.output_length(n, k, s, d, self.padding) for n, k, s, d in
                     zip(sizes, self.kernel_size, self.strides, self.dilation_rate))

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != self.rank + 2:
            raise ValueError(f"{self.name}: expects inputs of rank {self.rank + 2} (batch, "
                             f"{'spatial, ' * self.rank}channels in {self.data_format} order)"
                             f", got shape {input_shape}")
        c = channels(input_shape, self.data_format)
        if c is None:
            raise ValueError(f"{self.name}: the channel axis must be known, got shape "
                             f"{input_shape}")
        self._check_channels(c, input_shape)
        if self.built and c != self._in_channels():
            raise ValueError(f"{self.name}: expected {self._in_channels()} input channels, got "
                             f"input shape {input_shape}")
        out = self._out_sizes(spatial(input_shape, self.data_format))
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f"{self.name}: input shape {input_shape} is too small for "
                             f"kernel_size={self.kernel_size}, dilation_rate="
                             f"{self.dilation_rate} with padding={self.padding!r}")

    def _check_channels(self, c, input_shape):
        pass

    def compute_output_shape(self, input_shape):
        c = self._out_channels(channels(input_shape, self.data_format))
        out = self._out_sizes(spatial(input_shape, self.data_format))
        return with_spatial(input_shape[0], out, c, self.data_format)

    def _window(self, sizes):
        win = self._windows.get(sizes)
        if win is None:
            win = self._windows[sizes] = kconv.window(sizes, self.kernel_size, self.strides,
                                                      self.dilation_rate, self.padding)
        return win

    def macs(self, input_shape):
        """Multiply-adds per sample of the forward pass: each output pixel costs one window
        of every filter (``_pixel_macs``); unknown sizes count as one pixel."""
        sizes = self._out_sizes(spatial(input_shape, self.data_format))
        pixels = math.prod(1 if n is None else n for n in sizes)
        return pixels * self._pixel_macs(channels(input_shape, self.data_format))

    # -- computation: subclasses give the linear part, this adds bias and activation -------
    def _linear(self, x):
        """``(z, inner)``: the channels-last pre-bias output for channels-last ``x``, and
        what :meth:`_linear_backward` needs."""
        raise NotImplementedError

    def _linear_backward(self, inner, dz, need_dx):
        """Add the kernel gradients for channels-last ``dz``; return channels-last ``dx``
        (None without ``need_dx``)."""
        raise NotImplementedError

    def _add_bias(self, n):
        if self.use_bias:
            self.add_weight(name="bias", shape=(n,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    def _bias(self):
        return self.params["bias"] if self.use_bias else None

    def _rowwise_first(self):
        """Softmax over the last axis of a channels-first output (as Keras applies it) is
        not over the engine's channels-last last axis: it runs after the permutation."""
        return self.data_format == "channels_first" and \
            self.activation in ("softmax", "log_softmax")

    def _fused_forward(self, x, kind):
        """``kconv.conv_fused_forward`` for this layer, or None (the composed path)."""
        return None

    def forward(self, x, training=False):
        x = to_last(x, self.data_format)
        if not self._rowwise_first():
            fused = self._fused_forward(x, self.activation)
            if fused is not None:
                return to_first(fused[0], self.data_format), fused[1]
        # The bias and the activation are one fused pass over the engine's fresh output.
        z, inner = self._linear(x)
        if self._rowwise_first():
            z, _ = kconv.bias_activation(z, self._bias(), None)
            y, saved = kconv.bias_activation(to_first(z, self.data_format), None,
                                             self.activation, self.alpha)
            return y, (inner, saved)
        y, saved = kconv.bias_activation(z, self._bias(), self.activation, self.alpha)
        return to_first(y, self.data_format), (inner, saved)

    def forward_z(self, x, training=False):
        x = to_last(x, self.data_format)
        fused = self._fused_forward(x, None)
        if fused is not None:
            return to_first(fused[0], self.data_format), fused[1]
        z, inner = self._linear(x)
        z, _ = kconv.bias_activation(z, self._bias(), None)
        return to_first(z, self.data_format), inner

    def _fused_backward(self, ctx, dy, need_dx):
        dk, db, dx = kconv.conv_fused_backward(ctx, to_last(dy, self.data_format),
                                               self.params["kernel"], need_dx)
        self.grads["kernel"] += dk
        if self.use_bias:
            self.grads["bias"] += db
        return None if dx is None else to_first(dx, self.data_format)

    def _backward(self, inner, dy, kind, saved, need_dx):
        dz, db = kconv.activation_bias_grad(kind, to_last(dy, self.data_format), saved,
                                            self.alpha, self.use_bias)
        if db is not None:
            self.grads["bias"] += db
        return to_first(self._linear_backward(inner, dz, need_dx), self.data_format)

    def _backward_activated(self, ctx, dy, need_dx):
        if isinstance(ctx, kconv.FusedContext):
            return self._fused_backward(ctx, dy, need_dx)
        if self._rowwise_first():  # differentiate the activation in the output's layout
            dz = kconv.activation_bias_grad(self.activation, dy, ctx[1], self.alpha, False)[0]
            return self._backward(ctx[0], dz, None, None, need_dx)
        return self._backward(ctx[0], dy, self.activation, ctx[1], need_dx)

    def backward(self, ctx, dy, need_dx=True):
        return self._backward_activated(ctx, dy, need_dx)

    def backward_z(self, ctx, dz, need_dx=True):
        if isinstance(ctx, kconv.FusedContext):
            return self._fused_backward(ctx, dz, need_dx)
        return self._backward(ctx, dz, None, None, need_dx)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding,
                "data_format": self.data_format, "dilation_rate": self.dilation_rate,
                "use_bias": self.use_bias,
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}


class _Conv(_BaseConv):
    """N-D convolution (cross-correlation, as every framework computes it),
    ``y = activation(conv(x, kernel) + bias)``.

    Parameters
    ----------
    filters : int
        Output channels.
    kernel_size : int or tuple of int
    strides : int or tuple of int, default=1
    padding : {"valid", "same"} ("causal" too for Conv1D), default="valid"
        "same" pads so that the output has ``ceil(size / stride)`` pixels; the odd extra
        pixel of padding goes at the end, as Keras.
    data_format : {"channels_last", "channels_first"}, default="channels_last"
    dilation_rate : int or tuple of int, default=1
    groups : int, default=1
        Input channels and filters split into ``groups`` independent convolutions.
    activation : str, default=None
        A fused activation, differentiated from its saved output as in Dense.
    use_bias : bool, default=True
    kernel_initializer, bias_initializer : default="glorot_uniform", "zeros"
    kernel_regularizer, bias_regularizer : default=None
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, groups=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, bias_initializer, bias_regularizer, **kwargs)
        self.filters = self._positive(filters, "filters", self.name)
        self.groups = self._positive(groups, "groups", self.name)
        if filters % groups:
            raise ValueError(f"{self.name}: the number of filters must be divisible by the "
                             f"number of groups; received groups={groups}, filters={filters}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def _allow_causal(self):
        return self.rank == 1

    def _check_channels(self, c, input_shape):
        if c % self.groups:
            raise ValueError(f"{self.name}: input channels must be divisible by groups="
                             f"{self.groups}; got input shape {input_shape}")

    def _in_channels(self):
        return self.params["kernel"].shape[-2] * self.groups

    def _out_channels(self, in_channels):
        return self.filters

    def _pixel_macs(self, c):
        return math.prod(self.kernel_size) * (c // self.groups) * self.filters

    def build(self, input_shape):
        c = channels(input_shape, self.data_format)
        self.add_weight(name="kernel", shape=self.kernel_size + (c // self.groups, self.filters),
                        initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self._add_bias(self.filters)

    def _fused_forward(self, x, kind):
        return kconv.conv_fused_forward(x, self.params["kernel"], self._bias(),
                                        self._window(tuple(x.shape[1:-1])), self.groups, kind)

    def _linear(self, x):
        win = self._window(tuple(x.shape[1:-1]))
        z, cols = kconv.conv_forward(x, self.params["kernel"], win, self.groups)
        return z, (cols, win)

    def _linear_backward(self, inner, dz, need_dx):
        cols, win = inner
        dk, dx = kconv.conv_backward(dz, cols, self.params["kernel"], win, self.groups,
                                     need_dx)
        self.grads["kernel"] += dk
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer)}


class Conv1D(_Conv):
    __doc__ = _Conv.__doc__.replace("N-D convolution", "1-D convolution", 1)
    rank = 1


class Conv2D(_Conv):
    __doc__ = _Conv.__doc__.replace("N-D convolution", "2-D convolution", 1)
    rank = 2


class Conv3D(_Conv):
    __doc__ = _Conv.__doc__.replace("N-D convolution", "3-D convolution", 1)
    rank = 3


class _ConvTranspose(_BaseConv):
    """N-D transposed convolution: the input gradient of a convolution, used to upsample.

    The output has ``size * stride`` pixels with "same" padding and
    ``(size - 1) * stride + max(kernel, stride)`` with "valid", unless ``output_padding``
    says otherwise (as Keras). The kernel is ``(*kernel_size, filters, in_channels)``.

    Parameters
    ----------
    filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
    use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer :
        as for Conv2D.
    output_padding : int or tuple of int, default=None
        Extra pixels at the end of each axis; must be smaller than the stride.
    """

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None,
                 data_format=None, dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(kernel_size, strides, padding, data_format, dilation_rate,
                         activation, use_bias, bias_initializer, bias_regularizer, **kwargs)
        self.filters = self._positive(filters, "filters", self.name)
        self.output_padding = None if output_padding is None else normalize_tuple(
            output_padding, self.rank, "output_padding", self.name, minimum=0)
        if self.output_padding is not None and any(
                p >= s for p, s in zip(self.output_padding, self.strides)):
            raise ValueError(f"{self.name}: strides {self.strides} must be greater than "
                             f"output padding {self.output_padding}")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)

    def _in_channels(self):
        return self.params["kernel"].shape[-1]

    def _out_channels(self, in_channels):
        return self.filters

    def _out_sizes(self, sizes):
        ops = self.output_padding or (None,) * self.rank
        return tuple(kconv.transpose_output_length(n, k, s, d, self.padding, p)
                     for n, k, s, d, p in zip(sizes, self.kernel_size, self.strides,
                                              self.dilation_rate, ops))

    def macs(self, input_shape):
        """Each input pixel scatters one kernel: ``K * filters * in_channels`` per pixel."""
        sizes = spatial(input_shape, self.data_format)
        pixels = math.prod(1 if n is None else n for n in sizes)
        c = channels(input_shape, self.data_format)
        return pixels * math.prod(self.kernel_size) * self.filters * c

    def _window(self, sizes):
        win = self._windows.get(sizes)
        if win is None:
            win = self._windows[sizes] = kconv.transpose_window(
                sizes, self.kernel_size, self.strides, self.dilation_rate, self.padding,
                self.output_padding)
        return win

    def build(self, input_shape):
        c = channels(input_shape, self.data_format)
        self.add_weight(name="kernel", shape=self.kernel_size + (self.filters, c),
                        initializer=self.kernel_initializer, regularizer=self.kernel_regularizer)
        self._add_bias(self.filters)

    def _linear(self, x):
        win = self._window(tuple(x.shape[1:-1]))
        return kconv.conv_transpose_forward(x, self.params["kernel"], win), (x, win)

    def _linear_backward(self, inner, dz, need_dx):
        x, win = inner
        dk, dx = kconv.conv_transpose_backward(dz, x, self.params["kernel"], win, need_dx)
        self.grads["kernel"] += dk
        return dx

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "output_padding": self.output_padding,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer)}


class Conv1DTranspose(_ConvTranspose):
    __doc__ = _ConvTranspose.__doc__.replace("N-D", "1-D", 1)
    rank = 1


class Conv2DTranspose(_ConvTranspose):
    __doc__ = _ConvTranspose.__doc__.replace("N-D", "2-D", 1)
    rank = 2


class Conv3DTranspose(_ConvTranspose):
    __doc__ = _ConvTranspose.__doc__.replace("N-D", "3-D", 1)
    rank = 3
