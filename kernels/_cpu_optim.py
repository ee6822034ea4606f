"""``numba.njit`` kernels for the optimizers of :mod:`xpnet.kernels.optim` on NumPy's flat
buffers. As in ``_cpu.py``: serial, ``error_model="numpy"`` (no zero-division checks, so the
loops vectorize), and each loop writes at most two arrays (LLVM's alias checks)."""

import math

import numba


def _jit(f):
    return numba.njit(cache=True, error_model="numpy", nogil=True)(f)


@_jit
def nadam(p, g, m, v, c1, c2, c_m, c_g, lr, inv_bc2, eps):
    """Keras's Nadam: ``m_hat = c_m m + c_g g``, ``p -= lr m_hat / (sqrt(v inv_bc2) + eps)``."""
    for i in range(p.shape[0]):
        gi = g[i]
        m[i] += (gi - m[i]) * c1
        v[i] += (gi * gi - v[i]) * c2
    for i in range(p.shape[0]):
        p[i] -= lr * (c_m * m[i] + c_g * g[i]) / (math.sqrt(v[i] * inv_bc2) + eps)


@_jit
def adamax(p, g, m, u, c1, beta_2, alpha, eps):
    """Keras's Adamax: ``u = max(beta_2 u, |g|)``, ``p -= alpha m / (u + eps)`` (``alpha``
    holds ``lr / (1 - beta_1^t)``)."""
    for i in range(p.shape[0]):
        gi = g[i]
        m[i] += (gi - m[i]) * c1
        u[i] = max(beta_2 * u[i], abs(gi))
    for i in range(p.shape[0]):
        p[i] -= alpha * m[i] / (u[i] + eps)


@_jit
def adadelta(p, g, acc_grad, acc_delta, rho, lr, eps):
    for i in range(p.shape[0]):
        gi = g[i]
        a = rho * acc_grad[i] + (1 - rho) * gi * gi
        acc_grad[i] = a
        d = -math.sqrt(acc_delta[i] + eps) * gi / math.sqrt(a + eps)
        acc_delta[i] = rho * acc_delta[i] + (1 - rho) * d * d
        p[i] += lr * d


@_jit
def ftrl(p, g, acc, lin, npow, lr, l1, two_l2, two_l2_shrinkage):
    """FTRL-proximal; ``npow = -learning_rate_power``, ``two_l2 = 2 (l2 + beta / (2 lr))``."""
    if npow == 0.5:  # the default: sqrt is ~20x cheaper than a general power
        return _ftrl_sqrt(p, g, acc, lin, lr, l1, two_l2, two_l2_shrinkage)
    for i in range(p.shape[0]):
        gi, pi, ai = g[i], p[i], acc[i]
        new_acc = ai + gi * gi
        grown = new_acc**npow
        z = lin[i] + gi + two_l2_shrinkage * pi - (grown - ai**npow) / lr * pi
        lin[i] = z
        acc[i] = new_acc
        p[i] = (min(max(z, -l1), l1) - z) / (grown / lr + two_l2)


@_jit
def _ftrl_sqrt(p, g, acc, lin, lr, l1, two_l2, two_l2_shrinkage):
    for i in range(p.shape[0]):
        gi, pi, ai = g[i], p[i], acc[i]
        new_acc = ai + gi * gi
        grown = math.sqrt(new_acc)
        z = lin[i] + gi + two_l2_shrinkage * pi - (grown - math.sqrt(ai)) / lr * pi
        lin[i] = z
        acc[i] = new_acc
        p[i] = (min(max(z, -l1), l1) - z) / (grown / lr + two_l2)


@_jit
def lion(p, g, m, lr, beta_1, beta_2):
    for i in range(p.shape[0]):
        gi, mi = g[i], m[i]
        c = mi * beta_1 + gi * (1 - beta_1)
        p[i] -= lr * (1.0 if c > 0 else (-1.0 if c < 0 else 0.0))
        m[i] = mi * beta_2 + gi * (1 - beta_2)
