"""Inputs for the LSTM/GRU step kernels, shared by the njit and CUDA tests: the fused
kernel runs on one copy of the buffers, the array-API reference on another."""

import array_api_compat.numpy as xp
import numpy as np

from xpnet import kernels
from xpnet.kernels import recurrent


def case(kind, dtype, seed=0, b=3, u=5, t=2, scale=1.0):
    rng = np.random.default_rng(seed)
    k = 4 if kind == "lstm" else 3
    d = {
        "xz": (rng.standard_normal((t, b, k * u)) * scale).astype(dtype),
        "rz": (rng.standard_normal((b, k * u)) * scale).astype(dtype),
        "mask": np.array([[True, False, True], [False, True, True]])[:t, :b],
        "gates": np.zeros((t, b, 4 * u), dtype),
        "hs": rng.uniform(-1, 1, (t + 1, b, u)).astype(dtype),
        "cs": (rng.uniform(-1, 1, (t + 1, b, u)) * scale).astype(dtype),
        "dh": rng.standard_normal((b, u)).astype(dtype),
        "dc": rng.standard_normal((b, u)).astype(dtype),
    }
    if scale > 1:  # hostile: saturated gates, one extreme row
        d["xz"][:, 0, :] = scale
        d["rz"][1, :] = -scale
    return d


def run_reference(kind, d, t=1, masked=True):
    """The composition on copies of ``d``: (forward buffers, backward results)."""
    was = kernels.enabled()
    kernels.enabled(False)
    try:
        return run(kind, {k: v.copy() for k, v in d.items()}, t, masked, recurrent)
    finally:
        kernels.enabled(was)


def run(kind, d, t, masked, steps):
    """Forward then backward step ``t`` through ``steps`` (the public dispatch, or the
    CUDA launchers under the simulator) on the buffers of ``d``."""
    m = d["mask"] if masked else None
    if kind == "lstm":
        steps.lstm_forward_step(t, d["xz"], d["rz"], m, d["gates"], d["cs"], d["hs"])
        dz = np.zeros((t + 1,) + d["gates"].shape[1:], d["dh"].dtype)
        dh, dc = steps.lstm_backward_step(t, d["dh"], d["dc"], m, d["gates"], d["cs"], dz)
        return d, (dz[t], np.asarray(dh), np.asarray(dc))
    steps.gru_forward_step(t, d["xz"], d["rz"], m, d["gates"], d["hs"])
    shape = (t + 1,) + d["xz"].shape[1:]
    dxz, drz = np.zeros(shape, d["dh"].dtype), np.zeros(shape, d["dh"].dtype)
    dh = steps.gru_backward_step(t, d["dh"], m, d["gates"], d["hs"], dxz, drz)
    return d, (dxz[t], drz[t], np.asarray(dh))


def compare(kind, got, want, dtype):
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12,
                                                                       "atol": 1e-12}
    (gd, gb), (wd, wb) = got, want
    names = ["gates", "hs"] + (["cs"] if kind == "lstm" else [])
    for name in names:
        np.testing.assert_allclose(gd[name], wd[name], err_msg=name, **tol)
    for i, (a, b) in enumerate(zip(gb, wb)):
        np.testing.assert_allclose(a, b, err_msg=f"backward output {i}", **tol)
    assert all(np.isfinite(a).all() for a in gb)


__all__ = ["case", "run", "run_reference", "compare", "xp"]
