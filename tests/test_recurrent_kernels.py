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
