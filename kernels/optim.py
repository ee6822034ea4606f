"""Fused flat-buffer updates for Nadam, Adamax, Adadelta, Ftrl and Lion (Keras 3's update
rules, ``keras/src/optimizers/*.py``): one pass over a parameter buffer and its slots.

Each public function updates ``param`` and its slots in place and routes like
:func:`xpnet.kernels.adam`: CuPy to ``_cuda_optim``, NumPy to ``_cpu_optim`` (split over
xpnet's threads), anything else (and strided arrays) to the array-API composition here,
``reference_<name>``, which is also the tests' oracle. Per-step scalars (bias corrections,
Nadam's momentum schedule) are computed once on the host, never read from the device.
"""

from xpnet.kernels import _load
from xpnet.kernels import _optimizer_route
from xpnet.kernels import _split

__all__ = ["nadam", "adamax", "adadelta", "ftrl", "lion", "nadam_u"]


def nadam_u(beta_1, step):
    """Nadam's momentum schedule ``u_t = beta_1 (1 - 0.5 * 0.96^t)``."""
    return beta_1 * (1.0 - 0.5 * 0.96**step)


def _nadam_scalars(lr, beta_1, beta_2, step, u_product):
    """``(c_m, c_g, inv_bc2)``: ``m_hat = c_m m + c_g g``, ``v_hat = v * inv_bc2``, where
    ``u_product`` is ``u_1 * ... * u_t``."""
    u_t, u_next = nadam_u(beta_1, step), nadam_u(beta_1, step + 1)
    c_m = u_next / (1.0 - u_product * u_next)
    c_g = (1.0 - u_t) / (1.0 - u_product)
    return c_m, c_g, 1.0 / (1.0 - beta_2**step)


def reference_nadam(param, grad, m, v, xp, *, lr, beta_1, beta_2, epsilon, step, u_product):
    c_m, c_g, inv_bc2 = _nadam_scalars(lr, beta_1, beta_2, step, u_product)
    m += (grad - m) * (1.0 - beta_1)
    v += (grad * grad - v) * (1.0 - beta_2)
    param -= lr * (c_m * m + c_g * grad) / (xp.sqrt(v * inv_bc2) + epsilon)


def nadam(param, grad, m, v, *, lr, beta_1, beta_2, epsilon, step, u_product):
    """One Nadam step, in place: ``m``, ``v`` as Adam, then
    ``p -= lr (c_m m + c_g g) / (sqrt(v / (1 - beta_2^t)) + epsilon)`` with
    ``c_m = u_{t+1} / (1 - u_1...u_{t+1})``, ``c_g = (1 - u_t) / (1 - u_1...u_t)``."""
    route, xp, arrays = _optimizer_route(param, grad, m, v)
    if route is None:
        return reference_nadam(param, grad, m, v, xp, lr=lr, beta_1=beta_1, beta_2=beta_2,
                               epsilon=epsilon, step=step, u_product=u_product)
    c_m, c_g, inv_bc2 = _nadam_scalars(lr, beta_1, beta_2, step, u_product)
    scalars = (1.0 - beta_1, 1.0 - beta_2, c_m, c_g, lr, inv_bc2, epsilon)
    _launch(route, "nadam", param, arrays, scalars)


def reference_adamax(param, grad, m, u, xp, *, lr, beta_1, beta_2, epsilon, step):
    m += (grad - m) * (1.0 - beta_1)
    u[...] = xp.maximum(beta_2 * u, xp.abs(grad))
    param -= (lr * m) / ((1.0 - beta_1**step) * (u + epsilon))


def adamax(param, grad, m, u, *, lr, beta_1, beta_2, epsilon, step):
    """One Adamax step, in place: ``m += (g - m)(1 - beta_1)``,
    ``u = max(beta_2 u, |g|)``, ``p -= lr m / ((1 - beta_1^t)(u + epsilon))``."""
    route, xp, arrays = _optimizer_route(param, grad, m, u)
    if route is None:
        return reference_adamax(param, grad, m, u, xp, lr=lr, beta_1=beta_1, beta_2=beta_2,
                                epsilon=epsilon, step=step)
    scalars = (1.0 - beta_1, beta_2, lr / (1.0 - beta_1**step), epsilon)
    _launch(route, "adamax", param, arrays, scalars)


def reference_adadelta(param, grad, acc_grad, acc_delta, xp, *, lr, rho, epsilon):
    acc_grad[...] = rho * acc_grad + (1.0 - rho) * grad * grad
    delta = -xp.sqrt(acc_delta + epsilon) * grad / xp.sqrt(acc_grad + epsilon)
    acc_delta[...] = rho * acc_delta + (1.0 - rho) * delta * delta
    param += lr * delta


def adadelta(param, grad, acc_grad, acc_delta, *, lr, rho, epsilon):
    """One Adadelta step, in place: ``E[g^2] = rho E[g^2] + (1 - rho) g^2``,
    ``d = -sqrt(E[d^2] + eps) g / sqrt(E[g^2] + eps)``, ``E[d^2] = rho E[d^2] + (1 - rho) d^2``,
    ``p += lr d``."""
    route, xp, arrays = _optimizer_route(param, grad, acc_grad, acc_delta)
    if route is None:
        return reference_adadelta(param, grad, acc_grad, acc_delta, xp, lr=lr, rho=rho,
                                  epsilon=epsilon)
    _launch(route, "adadelta", param, arrays, (rho, lr, epsilon))


def reference_ftrl(param, grad, acc, linear, xp, *, lr, lr_power, l1, l2, l2_shrinkage,
                   beta):
    l2_total = l2 + beta / (2.0 * lr)
    new_acc = acc + grad * grad
    grown = xp.pow(new_acc, -lr_power)
    linear += grad + 2.0 * l2_shrinkage * param - (grown - xp.pow(acc, -lr_power)) / lr * param
    quadratic = grown / lr + 2.0 * l2_total
    param[...] = (xp.clip(linear, -l1, l1) - linear) / quadratic
    acc[...] = new_acc


def ftrl(param, grad, acc, linear, *, lr, lr_power, l1, l2, l2_shrinkage, beta):
    """One FTRL-proximal step (Keras's form), in place: with ``n' = n + g^2``,
    ``z += g + 2 l2_shrinkage p - (n'^-k - n^-k) / lr * p`` (``k = lr_power``),
    ``p = (clip(z, -l1, l1) - z) / (n'^-k / lr + 2 (l2 + beta / (2 lr)))``, ``n = n'``."""
    route, xp, arrays = _optimizer_route(param, grad, acc, linear)
    if route is None:
        return reference_ftrl(param, grad, acc, linear, xp, lr=lr, lr_power=lr_power, l1=l1,
                              l2=l2, l2_shrinkage=l2_shrinkage, beta=beta)
    scalars = (-lr_power, lr, l1, 2.0 * (l2 + beta / (2.0 * lr)), 2.0 * l2_shrinkage)
    _launch(route, "ftrl", param, arrays, scalars)


def reference_lion(param, grad, m, xp, *, lr, beta_1, beta_2):
    param -= lr * xp.sign(m * beta_1 + grad * (1.0 - beta_1))
    m[...] = m * beta_2 + grad * (1.0 - beta_2)


def lion(param, grad, m, *, lr, beta_1, beta_2):
    """One Lion step, in place: ``p -= lr sign(beta_1 m + (1 - beta_1) g)``, then
    ``m = beta_2 m + (1 - beta_2) g``."""
    route, xp, arrays = _optimizer_route(param, grad, m)
    if route is None:
        return reference_lion(param, grad, m, xp, lr=lr, beta_1=beta_1, beta_2=beta_2)
    _launch(route, "lion", param, arrays, (lr, beta_1, beta_2))


def _launch(route, name, param, arrays, scalars):
    """The CUDA launcher, or the njit kernel over chunks of the flat buffers (scalars in the
    parameters' dtype, so float32 math stays float32)."""
    if route == "cuda":
        return getattr(_load("cuda_optim"), name)(*arrays, *(float(s) for s in scalars))
    kernel = getattr(_load("cpu_optim"), name)
    f = param.dtype.type
    typed = tuple(f(s) for s in scalars)
    _split(lambda i, j: kernel(*(a[i:j] for a in arrays), *typed), arrays[0].shape[0])

