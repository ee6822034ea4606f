"""The njit kernels against the array-API reference, on random and hostile inputs, and the
dispatch: NumPy arrays reach the kernels, array-api-strict arrays the reference."""

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
from kernel_cases import dtypes
from kernel_cases import shapes
from kernel_cases import tolerance

from xpnet import kernels
from xpnet.kernels import reference

FAST = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def always_njit():
    """Small cheap activations normally take the composition; here they must reach the
    kernels, which are what is under test."""
    saved = kernels._NJIT_MIN_SIZE
    kernels._NJIT_MIN_SIZE = 0
    yield
    kernels._NJIT_MIN_SIZE = saved


@pytest.mark.parametrize("kind", ELEMENTWISE + ROWWISE)
@FAST
@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 2**32 - 1))
def test_activation_grad_matches_reference(kind, shape, dtype, seed):
    dy, saved = activation_case(kind, shape, dtype, seed)
    got = kernels.activation_grad(kind, dy, saved, ALPHA.get(kind))
    want = reference.activation_grad(kind, dy, saved, xp, ALPHA.get(kind))
    assert got.dtype == dtype and got.shape == dy.shape
    np.testing.assert_allclose(got, want, **tolerance(dtype))


@pytest.mark.parametrize("kind", ["relu", "gelu", "sigmoid", "tanh", "softmax"])
def test_activation_grad_hostile(kind):
    rng = np.random.default_rng(0)
    # non-contiguous (a transposed slice), a batch of one, huge values
    dy, saved = activation_case(kind, (64, 40), np.float32, 1, scale=1e4)
    dy_t, saved_t = dy.T[::2], saved.T[::2]
    assert not dy_t.flags.c_contiguous
    got = kernels.activation_grad(kind, dy_t, saved_t)
    np.testing.assert_allclose(got, reference.activation_grad(kind, dy_t, saved_t, xp),
                               **tolerance(np.float32))
    assert np.all(np.isfinite(got))
    one = rng.standard_normal((1, 7)).astype(np.float32)
    np.testing.assert_allclose(kernels.activation_grad(kind, one, np.abs(one)),
                               reference.activation_grad(kind, one, np.abs(one), xp),
                               **tolerance(np.float32))


def _labels(rng, n, c):
    return rng.integers(0, c, n)


@FAST
@given(n=st.integers(1, 40), c=st.integers(2, 80), dtype=dtypes, sparse=st.booleans(),
       weighted=st.booleans(), smoothing=st.sampled_from([0.0, 0.1]),
       scale=st.sampled_from([1.0, 30.0, 1e4]), seed=st.integers(0, 2**32 - 1))
def test_softmax_ce_matches_reference(n, c, dtype, sparse, weighted, smoothing, scale, seed):
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal((n, c)) * scale).astype(dtype)
    t = _labels(rng, n, c) if sparse else rng.dirichlet(np.ones(c), n).astype(dtype)
    w = rng.uniform(0.5, 2.0, n).astype(dtype) if weighted else None
    loss, grad = kernels.softmax_cross_entropy(z, t, w, smoothing)
    rloss, rgrad = reference.softmax_cross_entropy(z, t, xp, w, smoothing)
    tol = {"rtol": 1e-5, "atol": 1e-5 * max(1.0, scale / 100)} if dtype == np.float32 else \
        {"rtol": 1e-10, "atol": 1e-10 * scale}
    np.testing.assert_allclose(loss, rloss, **tol)
    np.testing.assert_allclose(grad, rgrad, **tolerance(dtype))
    assert loss.dtype == dtype and grad.dtype == dtype


@pytest.mark.parametrize("shape", [(1, 2), (3, 10), (65536, 10), (16, 1000), (2, 100000)])
def test_softmax_ce_properties(shape):
    """Invariant under adding a constant to a row; gradient rows sum to zero; both row
    widths (the njit kernel and the wide NumPy path); a batch of one; a huge batch."""
    rng = np.random.default_rng(0)
    n, c = shape
    z = (rng.standard_normal(shape) * 5).astype(np.float32)
    labels = _labels(rng, n, c)
    loss, grad = kernels.softmax_cross_entropy(z, labels)
    shifted, grad2 = kernels.softmax_cross_entropy(z + 1e3 * rng.standard_normal((n, 1))
                                                   .astype(np.float32).round(), labels)
    np.testing.assert_allclose(shifted, loss, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6 / n + 1e-7)
    assert np.all(np.isfinite(grad2))
    rloss, rgrad = reference.softmax_cross_entropy(z, labels, xp)
    np.testing.assert_allclose(loss, rloss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, rgrad, rtol=1e-5, atol=1e-7)


def test_softmax_ce_extreme_logits():
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4], [0.0, 0.0, 0.0]], np.float32)
    loss, grad = kernels.softmax_cross_entropy(z, np.array([0, 1, 2]))
    np.testing.assert_allclose(loss, [0.0, 2e4, np.log(3.0)], rtol=1e-6)
    np.testing.assert_allclose(grad, [[0, 0, 0], [0, -1 / 3, 1 / 3], [1 / 9, 1 / 9, -2 / 9]],
                               atol=1e-7)
    zt = np.ascontiguousarray(np.tile(z, (1, 40)).T)[::40].T  # non-contiguous logits
    assert not zt.flags.c_contiguous
    l2, _ = kernels.softmax_cross_entropy(zt, np.array([0, 1, 2]))
    np.testing.assert_allclose(l2, reference.softmax_cross_entropy(zt, np.array([0, 1, 2]),
                                                                   xp)[0], rtol=1e-6)


OPTIMIZERS = {
    "adam": (lambda k, p, g, s, t: k.adam(p, g, s[0], s[1], lr=0.01, beta_1=0.9, beta_2=0.999,
                                          epsilon=1e-7, step=t), 2),
    "amsgrad": (lambda k, p, g, s, t: k.adam(p, g, s[0], s[1], lr=0.01, beta_1=0.9,
                                             beta_2=0.99, epsilon=1e-7, step=t, vhat=s[2]), 3),
    "adamw": (lambda k, p, g, s, t: k.adam(p, g, s[0], s[1], lr=0.01, beta_1=0.9, beta_2=0.999,
                                           epsilon=1e-7, step=t, decay=0.01 * 0.004), 2),
    "rmsprop": (lambda k, p, g, s, t: k.rmsprop(p, g, s[0], lr=0.01, rho=0.9, epsilon=1e-7), 1),
    "rmsprop_full": (lambda k, p, g, s, t: k.rmsprop(p, g, s[0], lr=0.01, rho=0.9,
                                                     epsilon=1e-7, momentum_buf=s[1],
                                                     momentum=0.5, mg=s[2]), 3),
    "sgd": (lambda k, p, g, s, t: k.sgd(p, g, lr=0.1), 0),
    "momentum": (lambda k, p, g, s, t: k.sgd(p, g, lr=0.1, momentum=0.9, velocity=s[0]), 1),
    "nesterov": (lambda k, p, g, s, t: k.sgd(p, g, lr=0.1, momentum=0.9, nesterov=True,
                                             velocity=s[0]), 1),
    "adagrad": (lambda k, p, g, s, t: k.adagrad(p, g, s[0], lr=0.1, epsilon=1e-7), 1),
}


class _Reference:
    """The reference module called like the dispatch functions."""

    def __getattr__(self, name):
        f = getattr(reference, name)
        return lambda p, g, *args, **kw: f(p, g, *args, xp, **kw) if name != "sgd" \
            else f(p, g, xp, **kw)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_update_equals_composed(name, dtype):
    step, n_slots = OPTIMIZERS[name]
    rng = np.random.default_rng(3)
    p0 = rng.standard_normal(1000).astype(dtype)
    fused = [p0.copy(), [np.zeros_like(p0) for _ in range(n_slots)]]
    composed = [p0.copy(), [np.zeros_like(p0) for _ in range(n_slots)]]
    if name == "adagrad":
        for s in fused[1] + composed[1]:
            s += 0.1
    for t in range(1, 6):
        g = rng.standard_normal(1000).astype(dtype)
        step(kernels, fused[0], g, fused[1], t)
        step(_Reference(), composed[0], g, composed[1], t)
    np.testing.assert_allclose(fused[0], composed[0], **tolerance(dtype))
    for a, b in zip(fused[1], composed[1]):
        np.testing.assert_allclose(a, b, **tolerance(dtype))


def test_strided_parameters_fall_back():
    rng = np.random.default_rng(0)
    p = rng.standard_normal((8, 6))
    m, v = np.zeros_like(p), np.zeros_like(p)
    view = p.T  # not C-contiguous: the composition updates it in place
    g = rng.standard_normal(view.shape)
    expected = view.copy()
    reference.adam(expected, g, np.zeros_like(g), np.zeros_like(g), xp, lr=0.1, beta_1=0.9,
                   beta_2=0.999, epsilon=1e-7, step=1)
    kernels.adam(view, g, m.T, v.T, lr=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=1)
    np.testing.assert_allclose(p.T, expected)


def test_dispatch(monkeypatch, backend):
    """NumPy arrays reach the njit kernels, other namespaces the composition; they agree."""
    calls = []
    cpu = kernels._load("cpu")
    original = cpu.softmax_ce_sparse
    monkeypatch.setattr(cpu, "softmax_ce_sparse",
                        lambda *a: (calls.append("njit"), original(*a))[1])
    original_ref = reference.softmax_cross_entropy
    monkeypatch.setattr(reference, "softmax_cross_entropy",
                        lambda *a, **k: (calls.append("reference"), original_ref(*a, **k))[1])
    rng = np.random.default_rng(0)
    z, t = rng.standard_normal((4, 5)).astype(np.float32), rng.integers(0, 5, 4)
    loss, grad = kernels.softmax_cross_entropy(backend.asarray(z), backend.asarray(t))
    assert calls == (["njit"] if backend.name == "cpu" else ["reference"])
    want = original_ref(z, t, xp)
    np.testing.assert_allclose(backend.to_numpy(loss), want[0], rtol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(grad), want[1], rtol=1e-5, atol=1e-7)


def test_size_threshold_routes_small_cheap_activations_to_the_composition(monkeypatch):
    monkeypatch.setattr(kernels, "_NJIT_MIN_SIZE", 4096)
    calls = []
    cpu = kernels._load("cpu")
    relu = cpu.ACTIVATION_GRAD["relu"]
    monkeypatch.setitem(cpu.ACTIVATION_GRAD, "relu",
                        lambda *a: (calls.append(a[0].size), relu(*a))[1])
    small, big = np.ones((8, 8), np.float32), np.ones((64, 64), np.float32)
    kernels.activation_grad("relu", small, small)
    kernels.activation_grad("relu", big, big)
    assert calls == [4096]


def test_kernels_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(kernels, "_ENABLED", [False])
    assert not kernels.enabled()
    cpu = kernels._load("cpu")
    monkeypatch.setattr(cpu, "adam", None)  # would fail if called
    p = np.ones(3)
    kernels.adam(p, np.ones(3), np.zeros(3), np.zeros(3), lr=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, step=1)
    assert np.all(p < 1)
