"""Activation functions, by name and as functions, with Keras 3's names and defaults.

Layers that own an activation (``Dense(64, activation="relu")``) resolve it with :func:`get`
to a kernel name plus its parameter, and differentiate it with the fused
``xpnet.kernels.activation_grad``; the functions here are for calling directly.
"""

from xpnet import kernels
from xpnet.ops.nn import activation as _op

__all__ = [
    "get",
    "serialize",
    "linear",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "hard_sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "silu",
    "swish",
    "exponential",
    "softmax",
    "log_softmax",
]

# Keras 3: leaky_relu's slope is 0.2 as a function or a string; elu's alpha is 1.0.
_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}
_ALIASES = {"swish": "silu", "linear": None}


def linear(x):
    """Identity, ``f(x) = x``."""
    return x


def relu(x):
    """Rectified linear unit, ``max(x, 0)``."""
    return _op("relu", x)


def relu6(x):
    """``min(max(x, 0), 6)``."""
    return _op("relu6", x)


def leaky_relu(x, negative_slope=0.2):
    """``x`` for positive inputs, ``negative_slope * x`` otherwise."""
    return _op("leaky_relu", x, negative_slope)


def elu(x, alpha=1.0):
    """Exponential linear unit, ``x`` for ``x > 0`` else ``alpha * (exp(x) - 1)``."""
    return _op("elu", x, alpha)


def selu(x):
    """Scaled ELU with the self-normalising constants of Klambauer et al. (2017)."""
    return _op("selu", x)


def gelu(x, approximate=False):
    """Gaussian error linear unit, ``x * Phi(x)``; the tanh approximation if ``approximate``."""
    return _op("gelu_tanh" if approximate else "gelu", x)


def sigmoid(x):
    """Logistic function, ``1 / (1 + exp(-x))``."""
    return _op("sigmoid", x)


def hard_sigmoid(x):
    """Piecewise-linear sigmoid, ``clip(x / 6 + 1 / 2, 0, 1)`` (Keras 3)."""
    return _op("hard_sigmoid", x)


def tanh(x):
    """Hyperbolic tangent."""
    return _op("tanh", x)


def softplus(x):
    """``log(1 + exp(x))``."""
    return _op("softplus", x)


def softsign(x):
    """``x / (1 + |x|)``."""
    return _op("softsign", x)


def silu(x):
    """Sigmoid linear unit (swish), ``x * sigmoid(x)``."""
    return _op("silu", x)


swish = silu


def exponential(x):
    """``exp(x)``."""
    return _op("exponential", x)


def _along_last(kind, x, axis):
    from xpnet.ops.nn import _along

    return _along(kind, x, axis)


def softmax(x, axis=-1):
    """``exp(x) / sum(exp(x))`` along ``axis``, computed from ``x - max(x)``."""
    return _along_last("softmax", x, axis)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)`` along ``axis``."""
    return _along_last("log_softmax", x, axis)


_FUNCTIONS = {
    f.__name__: f
    for f in (linear, relu, relu6, leaky_relu, elu, selu, gelu, sigmoid, hard_sigmoid,
              tanh, softplus, softsign, silu, exponential, softmax, log_softmax)
}


# Keras 3 activations xpnet lacks: asking for one raises NotImplementedError naming it
_KERAS_MISSING = {"mish", "glu", "hard_silu", "hard_swish", "hard_tanh", "log_sigmoid",
                  "celu", "sparsemax", "squareplus", "soft_shrink", "hard_shrink",
                  "tanh_shrink", "threshold", "sparse_plus", "sparse_sigmoid"}


def get(identifier):
    """Resolve an activation to ``(kernel name, parameter)``.

    ``identifier`` is None, a name (``"relu"``, ``"leaky_relu"``, ``"gelu"``, ``"swish"``,
    ...) or one of this module's functions. Returns ``(None, None)`` for the identity.
    """
    if identifier is None:
        return None, None
    if callable(identifier):
        name = getattr(identifier, "__name__", None)
        if _FUNCTIONS.get(name) is not identifier:
            raise ValueError(
                f"activation {identifier!r} is not one of xpnet.activations: a custom "
                "function needs its gradient too; write a Layer with forward and backward"
            )
        identifier = name
    if not isinstance(identifier, str):
        raise TypeError(f"activation must be a name or function, got {identifier!r}")
    kind = _ALIASES.get(identifier, identifier)
    if kind is not None and kind not in kernels.SAVES:
        if identifier in _KERAS_MISSING:
            raise NotImplementedError(f"activation {identifier!r} (keras.activations."
                                      f"{identifier}) is not implemented in xpnet yet")
        known = sorted(set(_FUNCTIONS) | set(_ALIASES))
        raise ValueError(f"unknown activation {identifier!r}; known: {', '.join(known)}")
    return kind, _DEFAULT_ALPHA.get(kind)


def serialize(kind):
    """The name ``get_config`` records for a kernel name: the Keras spelling."""
    return "linear" if kind is None else kind
