"""float16 training on the CPU with the Numba kernels on, and the BLAS thread count that
``fit`` restores whatever the interleaving of callers (issue 11, points 10 and 11)."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info
from threadpoolctl import threadpool_limits

from xpnet import keras
from xpnet import layers
from xpnet.backend import get_backend


# -- 10. float16 on the CPU ------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad", "adamw", "lion",
                                       keras.optimizers.SGD(0.01, momentum=0.9)])
def test_float16_models_train_on_the_cpu(njit, optimizer):
    keras.utils.set_random_seed(0)
    f16 = {"dtype": "float16"}
    model = keras.Sequential([
        keras.Input(shape=(8, 8, 1)), layers.Conv2D(4, 3, activation="relu", **f16),
        layers.MaxPooling2D(**f16), layers.Flatten(**f16),
        layers.Dense(64, activation="relu", **f16),  # 64 x 64: over the kernels' threshold
        layers.Dense(64, activation="tanh", **f16),
        layers.Dense(3, activation="softmax", **f16)], backend="cpu")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8, 8, 1)).astype(np.float16)
    y = (x[:, :4].sum(axis=(1, 2, 3)) > 0).astype(np.int64) + (x[:, 4:, 4:].mean() > 0)
    history = model.fit(x, y, epochs=3, batch_size=64, verbose=0).history["loss"]
    assert all(np.isfinite(history))
    assert history[-1] < history[0]
    assert all(w.dtype == np.float16 for w in model.get_weights())


def test_float16_losses_and_activation_grads_through_the_kernels(njit):
    from xpnet import kernels

    rng = np.random.default_rng(0)
    z = rng.standard_normal((64, 100)).astype(np.float16)
    dy = rng.standard_normal((64, 100)).astype(np.float16)
    for kind in ("relu", "tanh", "sigmoid", "gelu", "softmax"):
        with np.errstate(over="ignore"):  # gelu's erf polynomial overflows at large |z|
            y = kernels.activation(kind, z)
            g = kernels.activation_grad(kind, dy, z if kernels.SAVES[kind] == "z" else y)
        assert g.dtype == np.float16 and np.all(np.isfinite(g))
    for labels in (np.arange(64) % 100, np.eye(100, dtype=np.float16)[np.arange(64) % 100]):
        loss, dz = kernels.softmax_cross_entropy(z, labels)
        ref_loss, ref_dz = kernels.softmax_cross_entropy(z.astype(np.float32),
                                                         labels.astype(labels.dtype))
        np.testing.assert_allclose(loss.astype(np.float32), ref_loss, rtol=2e-2, atol=2e-2)
        np.testing.assert_allclose(dz.astype(np.float32), ref_dz, atol=1e-3)


# -- 11. the BLAS thread count ---------------------------------------------------------------
def _blas_threads():
    return {p["filepath"]: p["num_threads"] for p in threadpool_info()
            if p["user_api"] == "blas"}


def test_interleaved_limits_restore_the_blas_thread_count():
    """A in, B in, A out, B out: the count found before A is back at the end."""
    backend = get_backend("cpu")
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        assert before and max(before.values()) == 2
        a, b = backend.limit_threads(1), backend.limit_threads(1)
        a.__enter__()
        b.__enter__()
        assert max(_blas_threads().values()) == 1
        a.__exit__(None, None, None)
        assert max(_blas_threads().values()) == 1  # B still runs: still one thread
        b.__exit__(None, None, None)
        assert _blas_threads() == before


def test_concurrent_fits_restore_the_blas_thread_count():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((256, 16)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    models = []
    for _ in range(4):
        m = keras.Sequential([keras.Input(shape=(16,)), layers.Dense(8, activation="relu"),
                              layers.Dense(2, activation="softmax")], backend="cpu")
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        models.append(m)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        start = threading.Barrier(len(models))
        errors = []

        def train(m, k):
            try:
                start.wait()
                for _ in range(3 + k):  # different lengths: exits interleave with entries
                    m.fit(x, y, epochs=1, batch_size=32, verbose=0)
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        workers = [threading.Thread(target=train, args=(m, k)) for k, m in enumerate(models)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert not errors
        after = _blas_threads()  # (importing Numba may have loaded SciPy's BLAS meanwhile)
        assert {k: after[k] for k in before} == before
