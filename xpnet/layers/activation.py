"""Activation layers: ``Activation(name)`` and the parameterised ReLU, LeakyReLU, ELU, Softmax."""

from xpnet.layers.base import ActivatedLayer

__all__ = ["Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"]


class Activation(ActivatedLayer):
    """Applies a named activation: ``Activation("relu")``, ``Activation("softmax")``."""

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
