"""Layer normalisation over the last axis, forward and backward, fused: one dispatch point.

``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per row, with the biased variance. The
composition (``xpnet.layers.LayerNormalization``'s array-API code) makes six passes over
the activations forward and eight backward, each a NumPy call on one thread; NumPy takes
the ``numba.njit`` rows of ``_cpu_norm.py`` instead, split over xpnet's threads (in a
Transformer encoder's training step the composition took 18% of the time). Other
namespaces, other dtypes and normalisation over several axes keep the composition.
"""

import importlib

from xpnet.backend import namespace
from xpnet.kernels import _route
from xpnet.kernels import threads

__all__ = ["fused", "layer_norm", "layer_norm_grad"]

_MODULES = {}
# Rows per chunk below which the rows are not split (a chunk's call costs about 2 us).
_MIN_ROWS = 256


def _cpu():
    mod = _MODULES.get("cpu")
    if mod is None:
        mod = _MODULES["cpu"] = importlib.import_module("xpnet.kernels._cpu_norm")
    return mod


def fused(x):
    """Whether :func:`layer_norm` takes ``x`` (NumPy float32/float64, with the kernels on)."""
    return _route(namespace(x), x.dtype) == "cpu"


def _rows(x):
    import numpy as np

    return np.ascontiguousarray(x).reshape(-1, x.shape[-1])


def layer_norm(x, gamma, beta, eps):
    """``(y, xhat, inv)`` over the last axis of ``x`` (see :func:`fused`): ``xhat`` the
    normalised input (x's shape) and ``inv`` (x's shape with a last axis of 1) the
    reciprocal standard deviations; ``gamma``/``beta`` (last axis) or None."""
    import numpy as np

    x2 = _rows(x)
    n, d = x2.shape
    y, xhat = np.empty_like(x2), np.empty_like(x2)
    inv = np.empty(n, dtype=x2.dtype)
    g = None if gamma is None else np.ascontiguousarray(gamma, dtype=x2.dtype).reshape(d)
    b = None if beta is None else np.ascontiguousarray(beta, dtype=x2.dtype).reshape(d)
    cpu = _cpu()
    threads.run(lambda i, j: cpu.forward(x2, g, b, float(eps), y, xhat, inv, (i, j)), n,
                min_chunk=_MIN_ROWS)
    shape = tuple(x.shape)
    return y.reshape(shape), xhat.reshape(shape), inv.reshape(shape[:-1] + (1,))


def layer_norm_grad(dy, xhat, inv, gamma):
    """``(dx, dgamma, dbeta)`` of :func:`layer_norm` from ``dy``; the parameter gradients
    are summed over every row (last-axis shape, ``dy``'s dtype)."""
    import numpy as np

    dy2, xhat2 = _rows(dy), _rows(xhat)
    n, d = dy2.shape
    dx = np.empty_like(dy2)
    g = None if gamma is None else np.ascontiguousarray(gamma, dtype=dy2.dtype).reshape(d)
    inv1 = np.ascontiguousarray(inv).reshape(n)
    cpu = _cpu()
    parts = threads.run(lambda i, j: cpu.backward(dy2, xhat2, inv1, g, dx, (i, j)), n,
                        min_chunk=_MIN_ROWS)
    dgamma = sum(p[0] for p in parts).astype(dy2.dtype)
    dbeta = sum(p[1] for p in parts).astype(dy2.dtype)
    return dx.reshape(tuple(dy.shape)), dgamma, dbeta
