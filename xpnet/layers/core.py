"""Core layers: InputLayer, Dense, Flatten, Reshape, Identity."""

import math

from xpnet import initializers
from xpnet import kernels
from xpnet import regularizers
from xpnet.backend import namespace
from xpnet.layers.base import ActivatedLayer
from xpnet.layers.base import KerasTensor
from xpnet.layers.base import Layer
from xpnet.layers.base import Node

__all__ = ["InputLayer", "Input", "Dense", "Flatten", "Reshape", "Identity"]


class InputLayer(Layer):
    """The source of a functional graph; ``Input(shape)`` returns its output tensor."""

    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, **kwargs):
        if "input_shape" in kwargs and shape is None:
            shape = kwargs.pop("input_shape")
        super().__init__(name=name, dtype=dtype, **kwargs)
        if shape is None:
            raise ValueError(f"{self.name}: Input needs a shape, e.g. Input(shape=(784,))")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
            raise ValueError(f"{self.name}: shape must hold positive ints or None, got {shape}")
        self.shape, self.batch_size = shape, batch_size
        node = Node(self)
        node.outputs = KerasTensor((batch_size,) + shape, self.dtype_policy.compute_dtype, node,
                                   0, name=self.name)
        self._inbound_nodes.append(node)

    def forward(self, x, training=False):
        return x, None

    def backward(self, ctx, dy):
        return dy

    def compute_output_shape(self, input_shape):
        return (self.batch_size,) + self.shape

    def get_config(self):
        config = super().get_config()
        return {**config, "shape": self.shape, "batch_size": self.batch_size}


def Input(shape=None, batch_size=None, dtype=None, name=None):
    """A symbolic input of per-sample ``shape``: the start of a functional model."""
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name).output


class Dense(ActivatedLayer):
    """Densely connected layer, ``y = activation(x @ kernel + bias)`` on the last axis.

    Parameters
    ----------
    units : int
        Size of the output's last axis.
    activation : str or None, default=None
        A fused activation: "relu", "sigmoid", "tanh", "gelu", "softmax", ...
    use_bias : bool, default=True
    kernel_initializer : str or Initializer, default="glorot_uniform"
    bias_initializer : str or Initializer, default="zeros"
    kernel_regularizer, bias_regularizer : str or Regularizer, default=None
        Penalties on the weights, added to the loss (``"l2"``, ``regularizers.L2(1e-4)``).
    """

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, units, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_regularizer=None, bias_regularizer=None, **kwargs):
        super().__init__(activation=activation, **kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(f"{self.name}: units must be a positive int, got units={units!r}")
        self.units, self.use_bias = units, use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(
                f"{self.name}: expects inputs of rank >= 2 (batch, ..., features), "
                f"got shape {input_shape}"
            )
        if input_shape[-1] is None:
            raise ValueError(f"{self.name}: the last axis of the input must be known, "
                             f"got shape {input_shape}")
        if self.built and input_shape[-1] != self.params["kernel"].shape[0]:
            raise ValueError(
                f"{self.name}: expected input width {self.params['kernel'].shape[0]} "
                f"(kernel {tuple(self.params['kernel'].shape)}), got input shape {input_shape}"
            )

    def build(self, input_shape):
        self.add_weight(name="kernel", shape=(input_shape[-1], self.units),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer,
                            regularizer=self.bias_regularizer)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward_z(self, x, training=False):
        kernel = self.params["kernel"]
        if x.ndim == 2:
            z = kernels.matmul(x, kernel)
        else:  # one 2-D product over every leading axis (split over xpnet's threads in fit)
            xp = namespace(x)
            z = xp.reshape(kernels.matmul(xp.reshape(x, (-1, kernel.shape[0])), kernel),
                           tuple(x.shape[:-1]) + (self.units,))
        if self.use_bias:
            bias = self.params["bias"]
            if bias.dtype == z.dtype:
                z += bias  # z is the product's fresh array: no second one
            else:
                z = z + bias
        return z, x

    def backward_z(self, x, dz, need_dx=True):
        xp = namespace(x, dz)
        kernel = self.params["kernel"]
        if x.ndim != 2:
            x, dz2 = xp.reshape(x, (-1, kernel.shape[0])), xp.reshape(dz, (-1, self.units))
        else:
            dz2 = dz
        if self.use_bias:
            self.grads["bias"] += xp.sum(dz2, axis=0)
        if not need_dx:
            self.grads["kernel"] += kernels.matmul(x.mT, dz2)
            return None
        dkernel, dx = kernels.matmuls((x.mT, dz2), (dz2, kernel.mT))
        self.grads["kernel"] += dkernel
        return dx if dz.ndim == 2 else xp.reshape(dx, tuple(dz.shape[:-1]) + (kernel.shape[0],))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer)}


class Flatten(Layer):
    """``(batch, d1, d2, ...) -> (batch, d1 * d2 * ...)``.

    With ``data_format="channels_first"`` the channel axis is moved last first, so the
    flattened order is the same as for channels-last inputs (as Keras).
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = data_format or "channels_last"

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        n = math.prod(rest) if all(d is not None for d in rest) else None
        return (input_shape[0], n)

    def forward(self, x, training=False):
        xp = namespace(x)
        if self.data_format == "channels_first" and x.ndim > 2:
            x = xp.moveaxis(x, 1, -1)
        return xp.reshape(x, (x.shape[0], -1)), tuple(x.shape)

    def backward(self, shape, dy):
        xp = namespace(dy)
        dx = xp.reshape(dy, shape)
        if self.data_format == "channels_first" and len(shape) > 2:
            dx = xp.moveaxis(dx, -1, 1)
        return dx

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format}


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one entry may be -1)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)
        if sum(d == -1 for d in self.target_shape) > 1:
            raise ValueError(f"{self.name}: at most one -1 in target_shape, "
                             f"got {self.target_shape}")

    def _resolve(self, input_shape):
        known = math.prod(d for d in self.target_shape if d != -1)
        rest = input_shape[1:]
        if any(d is None for d in rest):
            return tuple(None if d == -1 else d for d in self.target_shape)
        n = math.prod(rest)
        if -1 in self.target_shape:
            if n % known:
                raise ValueError(f"{self.name}: cannot reshape {input_shape} "
                                 f"to {self.target_shape}")
            return tuple(n // known if d == -1 else d for d in self.target_shape)
        if n != known:
            raise ValueError(f"{self.name}: cannot reshape samples of {rest} ({n} values) "
                             f"to {self.target_shape} ({known} values)")
        return self.target_shape

    def check_input_shape(self, input_shape):
        self._resolve(input_shape)

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self._resolve(input_shape)

    def forward(self, x, training=False):
        xp = namespace(x)
        return xp.reshape(x, (x.shape[0],) + self.target_shape), tuple(x.shape)

    def backward(self, shape, dy):
        return namespace(dy).reshape(dy, shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Identity(Layer):
    """Returns its input unchanged."""

    supports_masking = True  # an incoming mask passes through (Keras)

    def forward(self, x, training=False):
        return x, None

    def backward(self, ctx, dy):
        return dy
