"""CUDA kernel tests: on a GPU they run through CuPy arrays and the public dispatch; without
one, under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, set by .ci/run for this
folder), where the launchers take NumPy arrays."""

import numba
import numpy as np
import pytest

SIMULATOR = bool(numba.config.ENABLE_CUDASIM)


def _gpu():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


class Device:
    """Moves arrays to where the kernels run and calls them there."""

    def __init__(self):
        self.gpu = not SIMULATOR
        if self.gpu:
            import cupy

            self.cp = cupy

    def put(self, a):
        return self.cp.asarray(a) if self.gpu else np.ascontiguousarray(a)

    def get(self, a):
        return self.cp.asnumpy(a) if self.gpu else np.asarray(a)

    def activation_grad(self, kind, dy, saved, alpha):
        from xpnet import kernels

        if self.gpu:  # the public dispatch, as training uses it
            return kernels.activation_grad(kind, dy, saved, alpha)
        return kernels._load("cuda").activation_grad(kind, dy, saved, alpha or 0.0)

    def softmax_cross_entropy(self, z, t, w, smoothing):
        from xpnet import kernels

        if self.gpu:
            return kernels.softmax_cross_entropy(z, t, w, smoothing)
        ones = np.ones(1, dtype=z.dtype)
        return kernels._load("cuda").softmax_cross_entropy(z, t, ones if w is None else w,
                                                           smoothing)

    def optimizers(self):
        """Something with the dispatch functions' signatures that runs the CUDA kernels."""
        from xpnet import kernels

        return kernels if self.gpu else _SimulatedDispatch()


class _SimulatedDispatch:
    """kernels.adam/rmsprop/sgd/adagrad, but on the CUDA launchers with NumPy arrays."""

    def __init__(self):
        from xpnet import kernels

        self.k = kernels._load("cuda")

    def adam(self, p, g, m, v, *, lr, beta_1, beta_2, epsilon, step, vhat=None, decay=0.0):
        alpha = lr * (1.0 - beta_2**step) ** 0.5 / (1.0 - beta_1**step)
        self.k.adam(p, g, m, v, vhat, alpha, 1.0 - beta_1, 1.0 - beta_2, epsilon, decay)

    def rmsprop(self, p, g, v, *, lr, rho, epsilon, momentum_buf=None, momentum=0.0, mg=None):
        self.k.rmsprop(p, g, v, momentum_buf, mg, rho, lr, epsilon, momentum)

    def sgd(self, p, g, *, lr, momentum=0.0, nesterov=False, velocity=None):
        self.k.sgd(p, g, velocity, lr, momentum, nesterov)

    def adagrad(self, p, g, acc, *, lr, epsilon):
        self.k.adagrad(p, g, acc, lr, epsilon)


@pytest.fixture(scope="session")
def device():
    if not SIMULATOR and not _gpu():
        pytest.skip("run with NUMBA_ENABLE_CUDASIM=1 (as .ci/run does) or on a CUDA GPU")
    return Device()
