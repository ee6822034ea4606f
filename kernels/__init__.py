"""Fused hot paths, one public function each, one dispatch point each.

Every function looks at its arrays' namespace: CuPy goes to the ``numba.cuda`` kernel
(``_cuda.py``), NumPy to the ``numba.njit`` kernel (``_cpu.py``) where that is faster than
the composition, and anything else to the array-API composition in
:mod:`xpnet.kernels.reference`, which is also the oracle the kernels are tested against.
``XPNET_KERNELS=0`` forces the composition everywhere (for comparisons and debugging).

Numba is imported on first use, so ``import xpnet`` stays fast and works without it.
"""

import importlib
import math
import os

import numpy as np
from array_api_compat import is_cupy_namespace
from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import reference
from xpnet.kernels import threads

__all__ = [
    "SAVES",
    "activation",
    "activation_grad",
    "softmax_cross_entropy",
    "adam",
    "rmsprop",
    "sgd",
    "adagrad",
    "matmul",
    "matmuls",
    "enabled",
]

SAVES = reference.SAVES

# softmax-CE rows wider than this go to NumPy's SIMD exp instead of Numba's scalar exp:
# at 256 rows, njit 74 us vs NumPy 98 us at 32 classes, 142 vs 119 us at 64 (RESULTS.md).
_WIDE_ROWS = 48
# Below this many elements a cheap activation's composition beats the njit call, whose
# dispatch costs ~5 us: relu/sigmoid/tanh at (32, 64) ran 7.5 us fused, 5-7 us composed.
_NJIT_MIN_SIZE = 4096
_CHEAP = frozenset({"relu", "relu6", "leaky_relu", "sigmoid", "hard_sigmoid", "tanh",
                    "exponential", "softsign", "elu", "selu", "softmax", "log_softmax"})

_MODULES = {}


_ENABLED = [os.environ.get("XPNET_KERNELS", "1") != "0"]


def enabled(value=None):
    """Whether the Numba kernels are used; ``enabled(False)`` turns them off (as does
    ``XPNET_KERNELS=0`` at import), ``enabled(True)`` back on."""
    if value is not None:
        _ENABLED[0] = bool(value)
    return _ENABLED[0]


def _load(name):
    """The ``_cpu`` or ``_cuda`` kernel module, imported (and Numba with it) on first use."""
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = importlib.import_module(f"xpnet.kernels._{name}")
    return mod


# The dtypes the Numba kernels are compiled for. float16 (Numba's CPU target has no
# float16 arithmetic: "NotImplementedError: float16") and bfloat16 (ml_dtypes) take the
# array-API composition, which NumPy and CuPy run in those dtypes.
# (dtype objects compared, not names: ``str(dtype)`` costs ~25 us a call in NumPy 2)
_KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _route(xp, dtype):
    """"cuda", "cpu" or None (the composition) for arrays of namespace ``xp`` and
    ``dtype``."""
    if not _ENABLED[0]:
        return None
    if is_numpy_namespace(xp):
        route = "cpu"
    elif is_cupy_namespace(xp):
        route = "cuda"
    else:
        return None
    return route if dtype in _KERNEL_DTYPES else None


def matmul(a, b):
    """``a @ b``; inside ``threads.using(n)`` a large 2-D NumPy product is split over the
    ``n`` threads (:func:`xpnet.kernels.threads.matmul`)."""
    if threads.count() > 1 and a.ndim == 2 and b.ndim == 2 and is_numpy_namespace(
            namespace(a, b)):
        return threads.matmul(a, b)
    return a @ b


def matmuls(*pairs):
    """``[a @ b for a, b in pairs]``; inside ``threads.using(n)`` independent 2-D NumPy
    products run side by side (:func:`xpnet.kernels.threads.matmuls`)."""
    if threads.count() > 1 and all(a.ndim == 2 and b.ndim == 2 for a, b in pairs) and \
            is_numpy_namespace(namespace(*pairs[0])):
        return threads.matmuls(list(pairs))
    return [a @ b for a, b in pairs]


def _c(a):
    # The kernels walk flat memory; a strided view (a slice, a transpose) is copied once.
    return a if a.flags.c_contiguous else a.copy(order="C")


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
    xp = namespace(dy, saved)
    route = _route(xp, dy.dtype)
    if route is None or dy.dtype != saved.dtype or dy.shape != saved.shape or (
            route == "cpu" and kind in _CHEAP and dy.size < _NJIT_MIN_SIZE):
        return reference.activation_grad(kind, dy, saved, xp, alpha)
    a = 0.0 if alpha is None else float(alpha)
    if route == "cuda":
        return _load("cuda").activation_grad(kind, _c(dy), _c(saved), a)
    cpu = _load("cpu")
    dy, saved = _c(dy), _c(saved)
    out = xp.empty_like(dy)
    if kind in ("softmax", "log_softmax"):
        shape2 = (-1, dy.shape[-1])
        grad = cpu.softmax_grad if kind == "softmax" else cpu.log_softmax_grad
        grad(dy.reshape(shape2), saved.reshape(shape2), out.reshape(shape2))
    else:
        cpu.ACTIVATION_GRAD[kind](dy.reshape(-1), saved.reshape(-1), dy.dtype.type(a),
                                  out.reshape(-1))
    return out


def softmax_cross_entropy(logits, target, sample_weight=None, label_smoothing=0.0):
    """Per-row loss ``-sum(t * log_softmax(logits))`` and ``dlogits`` of its weighted mean.

    ``logits`` is (N, C); ``target`` int labels (N,) or float targets (N, C). Returns
    ``(loss (N,), dlogits (N, C))``, ``dlogits = w * (softmax(logits) * sum(t) - t) / N``.
    """
    xp = namespace(logits)
    route = _route(xp, logits.dtype)
    if route is None or logits.shape[0] == 0:
        return reference.softmax_cross_entropy(logits, target, xp, sample_weight,
                                               label_smoothing)
    n = logits.shape[0]
    w = sample_weight if sample_weight is not None else xp.ones(1, dtype=logits.dtype)
    w, z = _c(xp.astype(w, logits.dtype)), _c(logits)
    t = _c(target) if target.ndim == 1 else _c(xp.astype(target, logits.dtype))
    if route == "cuda":
        return _load("cuda").softmax_cross_entropy(z, t, w, float(label_smoothing))
    cpu = _load("cpu")
    if logits.shape[1] > _WIDE_ROWS:
        return cpu.softmax_ce_wide(z, t, w, float(label_smoothing))
    loss = xp.empty((n,), dtype=logits.dtype)
    out = xp.empty_like(z)
    kernel = cpu.softmax_ce_sparse if t.ndim == 1 else cpu.softmax_ce_dense
    kernel(z, t, w, float(label_smoothing), loss, out)
    return loss, out


def _flat(*arrays):
    """1-D views of C-contiguous arrays, or None if any is strided (then: the composition)."""
    if not all(a.flags.c_contiguous for a in arrays if a is not None):
        return None
    return [None if a is None else a.reshape(-1) for a in arrays]


def _optimizer_route(param, *others):
    xp = namespace(param)
    route = _route(xp, param.dtype)
    if route is None:
        return None, xp, None
    arrays = _flat(param, *others)
    if arrays is None or any(a is not None and a.dtype != param.dtype for a in others):
        return None, xp, None
    return route, xp, arrays


def adam(param, grad, m, v, *, lr, beta_1, beta_2, epsilon, step, vhat=None, decay=0.0):
    """One Adam step (Keras's form), in place on ``param``, ``m``, ``v`` (and ``vhat``);
    ``decay`` is AdamW's ``lr * weight_decay``, applied in the same pass."""
    route, xp, arrays = _optimizer_route(param, grad, m, v, vhat)
    if route is None:
        return reference.adam(param, grad, m, v, xp, lr=lr, beta_1=beta_1, beta_2=beta_2,
                              epsilon=epsilon, step=step, vhat=vhat, decay=decay)
    alpha = lr * math.sqrt(1.0 - beta_2**step) / (1.0 - beta_1**step)
    if route == "cuda":
        return _load("cuda").adam(*arrays, alpha, 1.0 - beta_1, 1.0 - beta_2, epsilon, decay)
    f = param.dtype.type
    p, g, m1, v1, vh = arrays
    scalars = (f(alpha), f(1.0 - beta_1), f(1.0 - beta_2), f(epsilon), f(decay))
    cpu = _load("cpu")
    if vh is None:
        _split(lambda i, j: cpu.adam(p[i:j], g[i:j], m1[i:j], v1[i:j], *scalars), p.shape[0])
    else:
        _split(lambda i, j: cpu.adam_amsgrad(p[i:j], g[i:j], m1[i:j], v1[i:j], vh[i:j],
                                             *scalars), p.shape[0])


# Flat optimizer buffers split over the threads from this many parameters a chunk.
_SPLIT_MIN = 1 << 16


def _split(fn, n):
    """``fn(start, stop)`` over chunks of an optimizer's flat buffers of ``n`` values (the
    updates are elementwise), side by side inside
    ``threads.using`` (the MNIST CNN's 225,000 parameters: Adam 0.50 -> 0.39-0.45 ms a
    step)."""
    threads.run(fn, n, min_chunk=_SPLIT_MIN)


def rmsprop(param, grad, v, *, lr, rho, epsilon, momentum_buf=None, momentum=0.0, mg=None):
    """One RMSprop step (Keras's form), in place."""
    route, xp, arrays = _optimizer_route(param, grad, v, momentum_buf, mg)
    if route is None:
        return reference.rmsprop(param, grad, v, xp, lr=lr, rho=rho, epsilon=epsilon,
                                 momentum_buf=momentum_buf, momentum=momentum, mg=mg)
    p, g, v1, mom, mg1 = arrays
    if route == "cuda":
        return _load("cuda").rmsprop(p, g, v1, mom, mg1, rho, lr, epsilon, momentum)
    f, cpu = param.dtype.type, _load("cpu")
    scalars = (f(rho), f(1.0 - rho), f(lr), f(epsilon))
    if mom is None and mg1 is None:
        return _split(lambda i, j: cpu.rmsprop(p[i:j], g[i:j], v1[i:j], *scalars), p.shape[0])
    mom, mg1 = (v1 if a is None else a for a in (mom, mg1))  # placeholders: never read
    flags = (f(momentum), arrays[3] is not None, arrays[4] is not None)
    _split(lambda i, j: cpu.rmsprop_full(p[i:j], g[i:j], v1[i:j], mom[i:j], mg1[i:j],
                                         *scalars, *flags), p.shape[0])


def sgd(param, grad, *, lr, momentum=0.0, nesterov=False, velocity=None):
    """One SGD (momentum, Nesterov) step, in place."""
    route, xp, arrays = _optimizer_route(param, grad, velocity)
    if route is None:
        return reference.sgd(param, grad, xp, lr=lr, momentum=momentum, nesterov=nesterov,
                             velocity=velocity)
    p, g, vel = arrays
    if route == "cuda":
        return _load("cuda").sgd(p, g, vel, lr, momentum, nesterov)
    f, cpu = param.dtype.type, _load("cpu")
    if vel is None:
        return _split(lambda i, j: cpu.sgd(p[i:j], g[i:j], f(lr)), p.shape[0])
    _split(lambda i, j: cpu.sgd_momentum(p[i:j], g[i:j], vel[i:j], f(lr), f(momentum),
                                         bool(nesterov)), p.shape[0])


def adagrad(param, grad, acc, *, lr, epsilon):
    """One Adagrad step, in place."""
    route, xp, arrays = _optimizer_route(param, grad, acc)
    if route is None:
        return reference.adagrad(param, grad, acc, xp, lr=lr, epsilon=epsilon)
    if route == "cuda":
        return _load("cuda").adagrad(*arrays, lr, epsilon)
    f, cpu = param.dtype.type, _load("cpu")
    p, g, a = arrays
    _split(lambda i, j: cpu.adagrad(p[i:j], g[i:j], a[i:j], f(lr), f(epsilon)), p.shape[0])


# Nadam, Adamax, Adadelta, Ftrl and Lion (kernels/optim.py).
from xpnet.kernels.optim import adadelta, adamax, ftrl, lion, nadam, nadam_u  # noqa: E402,F401,I001
