"""Fused hot paths, one public function each, one dispatch point each.

Every function looks at its arrays' namespace: CuPy goes to the ``numba.cuda`` kernel,
NumPy to the ``numba.njit`` kernel where that is faster than the composition, and anything
else to the array-API composition in :mod:`xpnet.kernels.reference`, which is also the
oracle the kernels are tested against.
"""

from xpnet.backend import namespace
from xpnet.kernels import reference

__all__ = [
    "SAVES",
    "activation",
    "activation_grad",
    "softmax_cross_entropy",
    "adam",
    "rmsprop",
    "sgd",
    "adagrad",
]

SAVES = reference.SAVES


def activation(kind, z, alpha=None):
    """``f(z)`` for a named activation (see ``SAVES`` for the names)."""
    if kind is None or kind == "linear":
        return z
    return reference.activation(kind, z, namespace(z), alpha)


def activation_grad(kind, dy, saved, alpha=None):
    """Gradient through an activation, ``dL/dz``, from ``dy = dL/dy`` and ``saved``.

    ``saved`` is the activation's output ``y``, or its input ``z`` for the activations whose
    derivative needs it (``SAVES[kind] == "z"``: gelu, gelu_tanh, silu).
    """
    if kind is None or kind == "linear":
        return dy
    return reference.activation_grad(kind, dy, saved, namespace(dy, saved), alpha)


def softmax_cross_entropy(logits, target, sample_weight=None, label_smoothing=0.0):
    """Per-row loss ``-sum(t * log_softmax(logits))`` and ``dlogits`` of its weighted mean.

    ``logits`` is (N, C); ``target`` int labels (N,) or float targets (N, C). Returns
    ``(loss (N,), dlogits (N, C))``, ``dlogits = w * (softmax(logits) * sum(t) - t) / N``.
    """
    xp = namespace(logits)
    return reference.softmax_cross_entropy(logits, target, xp, sample_weight, label_smoothing)


def adam(param, grad, m, v, *, lr, beta_1, beta_2, epsilon, step, vhat=None):
    """One Adam step, in place on ``param``, ``m``, ``v`` (and ``vhat``)."""
    xp = namespace(param)
    reference.adam(param, grad, m, v, xp, lr=lr, beta_1=beta_1, beta_2=beta_2,
                   epsilon=epsilon, step=step, vhat=vhat)


def rmsprop(param, grad, v, *, lr, rho, epsilon, momentum_buf=None, momentum=0.0, mg=None):
    """One RMSprop step, in place."""
    xp = namespace(param)
    reference.rmsprop(param, grad, v, xp, lr=lr, rho=rho, epsilon=epsilon,
                      momentum_buf=momentum_buf, momentum=momentum, mg=mg)


def sgd(param, grad, *, lr, momentum=0.0, nesterov=False, velocity=None):
    """One SGD (momentum, Nesterov) step, in place."""
    reference.sgd(param, grad, namespace(param), lr=lr, momentum=momentum,
                  nesterov=nesterov, velocity=velocity)


def adagrad(param, grad, acc, *, lr, epsilon):
    """One Adagrad step, in place."""
    reference.adagrad(param, grad, acc, namespace(param), lr=lr, epsilon=epsilon)
