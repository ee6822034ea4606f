"""The numba.cuda kernels of kernels/optim.py (Nadam, Adamax, Adadelta, Ftrl, Lion) against
the array-API reference: under the simulator on NumPy arrays (tiny buffers), on a GPU
through CuPy and the public dispatch."""

import numpy as np
import pytest
from test_optimizers_keras import STEPS
from test_optimizers_keras import Reference


@pytest.fixture
def dispatch(device, monkeypatch):
    """The public functions of kernels/optim.py; under the simulator their routing sends
    NumPy arrays to the CUDA launchers (on a GPU, CuPy arrays get there by themselves)."""
    from xpnet.kernels import optim

    if not device.gpu:
        monkeypatch.setattr(optim, "_optimizer_route",
                            lambda *arrays: ("cuda", None, list(arrays)))
    return optim


@pytest.mark.parametrize("name", list(STEPS))
def test_fused_update(device, dispatch, name):
    step, n_slots, init = STEPS[name]
    rng = np.random.default_rng(2)
    p0 = rng.standard_normal(40).astype(np.float32)
    dev = [device.put(p0), [device.put(np.full_like(p0, init)) for _ in range(n_slots)]]
    host = [p0.copy(), [np.full_like(p0, init) for _ in range(n_slots)]]
    for t in range(1, 4):
        g = rng.standard_normal(40).astype(np.float32)
        g[:3] = 0.0
        step(dispatch, dev[0], device.put(g), dev[1], t)
        step(Reference(), host[0], g, host[1], t)
    np.testing.assert_allclose(device.get(dev[0]), host[0], rtol=2e-5, atol=2e-6)
    for a, b in zip(dev[1], host[1]):
        np.testing.assert_allclose(device.get(a), b, rtol=2e-5, atol=2e-6)
