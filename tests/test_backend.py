import numpy as np
import pytest

import xpnet
from xpnet.backend import BackendUnavailableError
from xpnet.backend import get_backend


def test_names():
    assert get_backend("cpu").name == "cpu"
    assert get_backend("numpy") is get_backend("cpu")
    assert get_backend(np) is get_backend("cpu")
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        get_backend("tpu")


def test_cuda_without_gpu_says_why():
    try:
        backend = get_backend("cuda")
    except BackendUnavailableError as e:
        message = str(e)
        assert "backend 'cuda'" in message
        assert "CuPy" in message or "GPU" in message
        return
    assert backend.name == "cuda"  # a machine with a GPU: it must work


def test_auto_picks_something_usable():
    assert get_backend("auto").name in ("cpu", "cuda")


def test_env_variable_and_set_backend(monkeypatch):
    monkeypatch.setenv("XPNET_BACKEND", "cpu")
    assert get_backend().name == "cpu"
    xpnet.set_backend("cpu")
    try:
        assert xpnet.Sequential([xpnet.layers.Dense(2, input_shape=(3,))]).backend.name == "cpu"
    finally:
        xpnet.backend._DEFAULT["name"] = None
    with pytest.raises(ValueError, match="unknown backend"):
        xpnet.set_backend("nope")


def test_rng(backend):
    xp = backend.xp
    a = backend.to_numpy(backend.rng(7).normal((1000,), xp.float32))
    b = backend.to_numpy(backend.rng(7).normal((1000,), xp.float32))
    np.testing.assert_array_equal(a, b)
    assert abs(a.mean()) < 0.1 and abs(a.std() - 1) < 0.1
    mask = backend.to_numpy(backend.rng(1).bernoulli(0.3, (10000,), xp.float32))
    assert set(np.unique(mask)) <= {0.0, 1.0} and abs(mask.mean() - 0.3) < 0.02
    perm = backend.to_numpy(backend.rng(3).permutation(50))
    assert sorted(perm.tolist()) == list(range(50))
    u = backend.to_numpy(backend.rng(2).uniform((1000,), xp.float64, -2.0, 3.0))
    assert u.min() >= -2.0 and u.max() < 3.0
    t = backend.to_numpy(backend.rng(2).truncated_normal((5000,), xp.float32, 1.0, 0.5))
    assert t.min() >= 0.0 and t.max() <= 2.0


def test_transfer_round_trip(backend):
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    dev = backend.asarray(host)
    back = backend.to_numpy(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host)
