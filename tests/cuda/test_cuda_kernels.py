"""The numba.cuda kernels against the array-API reference: small shapes under the simulator
(every thread is a Python thread there), the same tests on a real GPU."""

import array_api_compat.numpy as xp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from kernel_cases import ALPHA
from kernel_cases import ELEMENTWISE
from kernel_cases import ROWWISE
from kernel_cases import activation_case
from kernel_cases import tolerance
from test_kernels import OPTIMIZERS
from test_kernels import _Reference

from xpnet.kernels import reference

FEW = settings(max_examples=6, deadline=None)


@pytest.mark.parametrize("kind", ELEMENTWISE + ROWWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_grad(device, kind, dtype):
    dy, saved = activation_case(kind, (3, 37), dtype, seed=5)
    got = device.get(device.activation_grad(kind, device.put(dy), device.put(saved),
                                            ALPHA.get(kind)))
    np.testing.assert_allclose(got, reference.activation_grad(kind, dy, saved, xp,
                                                              ALPHA.get(kind)),
                               **tolerance(dtype))


@FEW
@given(n=st.integers(1, 6), c=st.integers(2, 40), sparse=st.booleans(),
       weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.2]),
       scale=st.sampled_from([1.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_softmax_cross_entropy(device, n, c, sparse, weighted, smoothing, scale, seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(np.float32)
    t = rng.integers(0, c, n) if sparse else rng.dirichlet(np.ones(c), n).astype(np.float32)
    w = rng.uniform(0.5, 2, n).astype(np.float32) if weighted else None
    loss, grad = device.softmax_cross_entropy(device.put(z), device.put(t),
                                              None if w is None else device.put(w), smoothing)
    rloss, rgrad = reference.softmax_cross_entropy(z, t, xp, w, smoothing)
    np.testing.assert_allclose(device.get(loss), rloss, rtol=1e-5, atol=1e-5 * scale / 10)
    np.testing.assert_allclose(device.get(grad), rgrad, rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy_wide_row(device):
    """A row much wider than a block: every thread strides over many columns."""
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((2, 3000)) * 3).astype(np.float32)
    t = np.array([5, 2999])
    loss, grad = device.softmax_cross_entropy(device.put(z), device.put(t), None, 0.0)
    rloss, rgrad = reference.softmax_cross_entropy(z, t, xp)
    np.testing.assert_allclose(device.get(loss), rloss, rtol=1e-5)
    np.testing.assert_allclose(device.get(grad), rgrad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_fused_update(device, name):
    step, n_slots = OPTIMIZERS[name]
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal(300).astype(np.float32)
    init = 0.1 if name == "adagrad" else 0.0
    dev = [device.put(p0), [device.put(np.full_like(p0, init)) for _ in range(n_slots)]]
    host = [p0.copy(), [np.full_like(p0, init) for _ in range(n_slots)]]
    kernels = device.optimizers()
    for t in range(1, 4):
        g = rng.standard_normal(300).astype(np.float32)
        step(kernels, dev[0], device.put(g), dev[1], t)
        step(_Reference(), host[0], g, host[1], t)
    np.testing.assert_allclose(device.get(dev[0]), host[0], rtol=2e-5, atol=2e-6)
