"""The numba.cuda LSTM/GRU step kernels against the array-API composition (tiny shapes:
under the simulator every thread is a Python thread)."""

import numpy as np
import pytest
from recurrent_cases import case
from recurrent_cases import compare
from recurrent_cases import run
from recurrent_cases import run_reference


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_step_kernels_match_reference(device, monkeypatch, kind, dtype, scale):
    from xpnet.kernels import recurrent

    d = case(kind, dtype, seed=3, b=3, u=2, scale=scale)
    want = run_reference(kind, d)
    if device.gpu:  # the public dispatch on CuPy arrays
        put = {k: device.put(v) for k, v in d.items()}
        got_d, got_b = run(kind, put, 1, True, recurrent)
        got = ({k: device.get(v) for k, v in got_d.items()}, [device.get(a) for a in got_b])
    else:
        monkeypatch.setattr(recurrent, "fused", lambda xp, a, r, dtype=None: "cuda")
        got = run(kind, {k: v.copy() for k, v in d.items()}, 1, True, recurrent)
    compare(kind, got, want, dtype)
