"""Activation layers: ``Activation(name)``, the parameterised ReLU, LeakyReLU, ELU, Softmax,
and PReLU with its learned slopes."""

from xpnet import initializers
from xpnet import regularizers
from xpnet.backend import namespace
from xpnet.layers.base import ActivatedLayer
from xpnet.layers.base import Layer

__all__ = ["Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "PReLU"]


class Activation(ActivatedLayer):
    """Applies a named activation: ``Activation("relu")``, ``Activation("softmax")``."""

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, activation, **kwargs):
        super().__init__(activation=activation, **kwargs)

    def forward_z(self, x, training=False):
        return x, None

    def backward_z(self, ctx, dz, need_dx=True):
        return dz


class ReLU(Activation):
    """``max(x, 0)``, or ``negative_slope * x`` below zero when ``negative_slope > 0``."""

    def __init__(self, negative_slope=0.0, **kwargs):
        kwargs.pop("activation", None)
        if negative_slope < 0:
            raise ValueError(f"ReLU: negative_slope must be >= 0, got {negative_slope!r}")
        super().__init__("leaky_relu" if negative_slope else "relu", **kwargs)
        self.negative_slope = float(negative_slope)
        if negative_slope:
            self.alpha = self.negative_slope

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "negative_slope": self.negative_slope}


class LeakyReLU(Activation):
    """``x`` above zero, ``negative_slope * x`` below; the layer's default slope is 0.3
    (Keras 3), the ``"leaky_relu"`` string's is 0.2."""

    def __init__(self, negative_slope=0.3, **kwargs):
        kwargs.pop("activation", None)
        if negative_slope < 0:
            raise ValueError(f"LeakyReLU: negative_slope must be >= 0, got {negative_slope!r}")
        super().__init__("leaky_relu", **kwargs)
        self.negative_slope = self.alpha = float(negative_slope)

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "negative_slope": self.negative_slope}


class ELU(Activation):
    """``x`` above zero, ``alpha * (exp(x) - 1)`` below."""

    def __init__(self, alpha=1.0, **kwargs):
        kwargs.pop("activation", None)
        if alpha <= 0:
            raise ValueError(f"ELU: alpha must be > 0, got {alpha!r}")
        super().__init__("elu", **kwargs)
        self.alpha = float(alpha)

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "alpha": self.alpha}


class Softmax(Activation):
    """Softmax over the last axis."""

    def __init__(self, axis=-1, **kwargs):
        kwargs.pop("activation", None)
        if axis != -1:
            raise ValueError(f"Softmax: only axis=-1 is supported, got axis={axis!r}")
        super().__init__("softmax", **kwargs)

    def get_config(self):
        config = super().get_config()
        config.pop("activation")
        return {**config, "axis": -1}


# Issue 10: PReLU.
class PReLU(Layer):
    """Parametric ReLU: ``y = max(x, 0) + alpha * min(x, 0)`` with a learned ``alpha`` per
    input entry, or shared along ``shared_axes``.

    Parameters
    ----------
    alpha_initializer : str or Initializer, default="Zeros"
    alpha_regularizer : str or Regularizer, default=None
    alpha_constraint : default=None
        Not supported yet (NotImplementedError).
    shared_axes : int or list of int, default=None
        Axes (1 = the first non-batch axis) along which ``alpha`` is shared, e.g. ``[1, 2]``
        for one slope per channel of a ``(batch, h, w, c)`` input.
    """

    supports_masking = True  # an incoming mask passes through (Keras)

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None,
                 alpha_constraint=None, shared_axes=None, **kwargs):
        super().__init__(**kwargs)
        if alpha_constraint is not None:
            raise NotImplementedError(f"{self.name}: alpha_constraint is not supported yet")
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.alpha_regularizer = regularizers.get(alpha_regularizer)
        if shared_axes is None:
            self.shared_axes = None
        else:
            self.shared_axes = list(shared_axes) if isinstance(shared_axes, (list, tuple)) \
                else [shared_axes]
        self.supports_masking = True

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2 or any(
                not 1 <= a < len(input_shape) for a in self.shared_axes or []):
            raise ValueError(f"{self.name}: shared_axes={self.shared_axes} do not fit "
                             f"input shape {input_shape}")
        if self.built and any(d is not None and a != 1 and d != a for d, a in
                              zip(input_shape[1:], self.params["alpha"].shape)):
            raise ValueError(f"{self.name}: built for alpha of shape "
                             f"{tuple(self.params['alpha'].shape)}, got input shape "
                             f"{input_shape}")

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for a in self.shared_axes or []:
            shape[a - 1] = 1
        if any(d is None for d in shape):
            raise ValueError(f"{self.name}: alpha needs known sizes on unshared axes, got "
                             f"input shape {input_shape}")
        self.add_weight(name="alpha", shape=tuple(shape), initializer=self.alpha_initializer,
                        regularizer=self.alpha_regularizer)

    def forward(self, x, training=False):
        xp = namespace(x)
        neg = xp.minimum(x, xp.zeros_like(x))
        return x - neg + self.params["alpha"] * neg, neg

    def backward(self, neg, dy):
        xp = namespace(dy)
        g = dy * neg
        axes = tuple(i for i in range(dy.ndim)
                     if i == 0 or self.params["alpha"].shape[i - 1] == 1 != dy.shape[i])
        self.grads["alpha"] += xp.reshape(xp.sum(g, axis=axes, keepdims=True),
                                          tuple(self.params["alpha"].shape))
        return xp.where(neg < 0, dy * self.params["alpha"], dy)

    def get_config(self):
        return {**super().get_config(),
                "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": regularizers.serialize(self.alpha_regularizer),
                "alpha_constraint": None, "shared_axes": self.shared_axes}
