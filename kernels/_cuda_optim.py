"""``numba.cuda`` kernels for the optimizers of :mod:`xpnet.kernels.optim`: grid-stride
loops over flat buffers, launched on CuPy's current stream (``_cuda.py``'s helpers); under
the CUDA simulator the launchers take NumPy arrays."""

import math

from numba import cuda

from xpnet.kernels._cuda import TPB
from xpnet.kernels._cuda import _grid
from xpnet.kernels._cuda import _stream


@cuda.jit
def _nadam(p, g, m, v, c1, c2, c_m, c_g, lr, inv_bc2, eps):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * c1
        vi = v[i] + (gi * gi - v[i]) * c2
        m[i] = mi
        v[i] = vi
        p[i] -= lr * (c_m * mi + c_g * gi) / (math.sqrt(vi * inv_bc2) + eps)


@cuda.jit
def _adamax(p, g, m, u, c1, beta_2, alpha, eps):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * c1
        ui = max(beta_2 * u[i], abs(gi))
        m[i] = mi
        u[i] = ui
        p[i] -= alpha * mi / (ui + eps)


@cuda.jit
def _adadelta(p, g, acc_grad, acc_delta, rho, lr, eps):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        a = rho * acc_grad[i] + (1.0 - rho) * gi * gi
        acc_grad[i] = a
        d = -math.sqrt(acc_delta[i] + eps) * gi / math.sqrt(a + eps)
        acc_delta[i] = rho * acc_delta[i] + (1.0 - rho) * d * d
        p[i] += lr * d


@cuda.jit
def _ftrl(p, g, acc, lin, npow, lr, l1, two_l2, two_l2_shrinkage):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        pi = p[i]
        ai = acc[i]
        new_acc = ai + gi * gi
        if npow == 0.5:  # the default: sqrt, not a general power
            grown = math.sqrt(new_acc)
            old = math.sqrt(ai)
        else:
            grown = math.pow(new_acc, npow)
            old = math.pow(ai, npow)
        z = lin[i] + gi + two_l2_shrinkage * pi - (grown - old) / lr * pi
        lin[i] = z
        acc[i] = new_acc
        p[i] = (min(max(z, -l1), l1) - z) / (grown / lr + two_l2)


@cuda.jit
def _lion(p, g, m, lr, beta_1, beta_2):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for i in range(start, p.shape[0], stride):
        gi = g[i]
        mi = m[i]
        c = mi * beta_1 + gi * (1.0 - beta_1)
        s = 1.0 if c > 0 else (-1.0 if c < 0 else 0.0)
        p[i] -= lr * s
        m[i] = mi * beta_2 + gi * (1.0 - beta_2)


def _launcher(kernel):
    def launch(p, *args):
        kernel[_grid(p.shape[0]), TPB, _stream(p)](p, *args)

    return launch


nadam = _launcher(_nadam)
adamax = _launcher(_adamax)
adadelta = _launcher(_adadelta)
ftrl = _launcher(_ftrl)
lion = _launcher(_lion)
