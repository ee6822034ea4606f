"""``keras.ops`` neural-network functions: activations, softmax and the cross-entropies,
each differentiated by the fused kernels of :mod:`xpnet.kernels` (one pass for the
gradient, the same code the built-in layers use)."""

from xpnet import kernels
from xpnet.ops.core import _xp
from xpnet.ops.core import moveaxis
from xpnet.ops.core import op
from xpnet.ops.core import tanh

__all__ = ["relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid",
           "hard_sigmoid", "softplus", "softsign", "exponential", "softmax", "log_softmax",
           "tanh", "activation", "binary_crossentropy", "categorical_crossentropy",
           "sparse_categorical_crossentropy"]


def activation(kind, x, alpha=None):
    """A named activation (``kernels.SAVES`` lists the names) with its fused gradient."""
    saves_input = kernels.SAVES[kind] == "z"

    def vjp(dys, outs, v):
        return (kernels.activation_grad(kind, dys[0], v if saves_input else outs[0], alpha),)
    return op(kind, lambda v: kernels.activation(kind, v, alpha), vjp, (x,))


def relu(x):
    return activation("relu", x)


def relu6(x):
    return activation("relu6", x)


def leaky_relu(x, negative_slope=0.2):
    return activation("leaky_relu", x, negative_slope)


def elu(x, alpha=1.0):
    return activation("elu", x, alpha)


def selu(x):
    return activation("selu", x)


def gelu(x, approximate=True):
    """GELU; ``keras.ops.gelu`` defaults to the tanh approximation (the activation
    ``"gelu"`` does not)."""
    return activation("gelu_tanh" if approximate else "gelu", x)


def silu(x):
    return activation("silu", x)


swish = silu


def sigmoid(x):
    return activation("sigmoid", x)


def hard_sigmoid(x):
    return activation("hard_sigmoid", x)


def softplus(x):
    return activation("softplus", x)


def softsign(x):
    return activation("softsign", x)


def exponential(x):
    return activation("exponential", x)


def _along(kind, x, axis):
    nd = len(getattr(x, "shape", ()))
    if axis in (-1, nd - 1):
        return activation(kind, x)
    return moveaxis(activation(kind, moveaxis(x, axis, -1)), -1, axis)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``."""
    return _along("softmax", x, axis)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``."""
    return _along("log_softmax", x, axis)


def _loss_op(name, loss, target, output):
    """Per-sample values of a built-in loss (reduction "none"), differentiated by its own
    ``grad``."""
    def fn(t, o):
        return loss.call(loss.prepare(t, o), o)

    def vjp(dys, outs, t, o):
        xp = _xp(o)
        t = loss.prepare(t, o)
        if getattr(loss, "from_logits", False) and hasattr(loss, "_targets"):
            t = loss._targets(t, o)  # softmax cross-entropy: d/dz = softmax(z) sum(t) - t
            g = kernels.activation("softmax", o) * xp.sum(t, axis=-1, keepdims=True) - t
        else:
            g = loss.grad(t, o)
        return (None, g * xp.expand_dims(dys[0], axis=-1))
    return op(name, fn, vjp, (target, output))


def binary_crossentropy(target, output, from_logits=False):
    """Per-element binary cross-entropy (``keras.ops.binary_crossentropy``: no mean over
    the last axis, probabilities clipped to ``[1e-7, 1 - 1e-7]``)."""
    from xpnet import losses
    from xpnet.ops.core import expand_dims

    loss = losses.BinaryCrossentropy(from_logits=from_logits)
    return _loss_op("binary_crossentropy", loss, expand_dims(target, -1),
                    expand_dims(output, -1))


def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    from xpnet import losses

    if axis not in (-1, len(getattr(output, "shape", ())) - 1):
        raise NotImplementedError("ops.categorical_crossentropy: only axis=-1")
    return _loss_op("categorical_crossentropy",
                    losses.CategoricalCrossentropy(from_logits=from_logits), target, output)


def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    from xpnet import losses

    if axis not in (-1, len(getattr(output, "shape", ())) - 1):
        raise NotImplementedError("ops.sparse_categorical_crossentropy: only axis=-1")
    return _loss_op("sparse_categorical_crossentropy",
                    losses.SparseCategoricalCrossentropy(from_logits=from_logits), target,
                    output)
