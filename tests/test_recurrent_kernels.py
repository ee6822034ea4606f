"""The fused njit LSTM/GRU step kernels against the array-API composition: masks, float32
and float64, saturated gates (pre-activations of +-1e4), a batch of one."""

import numpy as np
import pytest
from recurrent_cases import case
from recurrent_cases import compare
from recurrent_cases import run
from recurrent_cases import run_reference

from xpnet.kernels import recurrent


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("masked", [True, False])
def test_step_kernels_match_reference(njit, kind, dtype, scale, masked):
    d = case(kind, dtype, seed=1, scale=scale)
    want = run_reference(kind, d, masked=masked)
    got = run(kind, {k: v.copy() for k, v in d.items()}, 1, masked, recurrent)
    compare(kind, got, want, dtype)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_batch_of_one(njit, kind):
    d = case(kind, np.float32, seed=2, b=1, u=3, t=1)
    d["mask"] = d["mask"][:, :1]
    compare(kind, run(kind, {k: v.copy() for k, v in d.items()}, 0, True, recurrent),
            run_reference(kind, d, t=0), np.float32)


def test_other_activations_take_the_composition():
    import array_api_compat.numpy as xp

    assert recurrent.fused(xp, "tanh", "sigmoid") == "cpu"
    assert recurrent.fused(xp, "relu", "sigmoid") is None
    assert recurrent.fused(xp, "tanh", "hard_sigmoid") is None


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 3, 5), (5, 70, 9)])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_whole_sequence_kernels(njit, kind, dtype, shape, scale):
    """The one-call LSTM and GRU recurrences (products and cells in njit) against the
    Python step loop and against the array-API composition: masks ending at different
    steps, return_sequences, saturated gates, and rows split over two threads."""
    from xpnet import kernels
    from xpnet import layers
    from xpnet.backend import get_backend
    from xpnet.kernels import threads

    t, b, u = shape
    rng = np.random.default_rng(4)
    backend = get_backend("cpu")
    layer = getattr(layers, kind)(u, return_sequences=True, dtype=np.dtype(dtype).name)
    layer.build_on(backend, (None, t, 4))
    for k in layer.params:
        layer.params[k][...] = rng.uniform(-0.6, 0.6, layer.params[k].shape) * (
            scale if k == "kernel" else 1.0)
    x = rng.uniform(-1, 1, (b, t, 4)).astype(dtype)
    mask = rng.uniform(size=(b, t)) < 0.8
    mask[:, 0] = True
    dy = rng.standard_normal((b, t, u)).astype(dtype)

    def run():
        layer.zero_grads()
        y, ctx = layer.forward(x, mask=mask)
        dx = layer.backward(ctx, dy)
        return [y, dx] + [layer.grads[k].copy() for k in sorted(layer.grads)]

    with threads.using(2):
        whole = run()
        real = recurrent.whole_sequence
        try:
            recurrent.whole_sequence = lambda *a: False
            steps = run()
            kernels.enabled(False)
            composition = run()
        finally:
            recurrent.whole_sequence = real
            kernels.enabled(True)
    # the same kernels as the step loop (the products may round differently); against the
    # exact composition, float32's rational tanh differs by ~1e-7 a step, and saturated
    # gates carry that through up to 70 steps: compared relative to each array's largest
    tight, loose = (1e-5, 3e-4) if dtype == np.float32 else (1e-12, 1e-10)
    for a, s, c in zip(whole, steps, composition):
        top = max(float(np.abs(c).max()), 1e-30)
        assert float(np.abs(a - s).max()) <= tight * top
        assert float(np.abs(a - c).max()) <= loose * top
    assert all(np.isfinite(a).all() for a in whole)
