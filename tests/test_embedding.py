"""Embedding (sparse gradient, duplicates summed), the scatter-add kernel family, Masking and
pad_sequences."""

import numpy as np
import pytest
from harness_rnn import check_call

from xpnet import kernels
from xpnet.kernels import scatter
from xpnet.layers.embedding import Embedding
from xpnet.layers.embedding import Masking
from xpnet.utils import pad_sequences


def _scatter_case(seed=0, v=7, n=40, d=5, dtype=np.float64):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, v, n)
    ids[:6] = v - 1  # many duplicates
    rows = rng.standard_normal((n, d)).astype(dtype)
    want = rng.standard_normal((v, d)).astype(dtype)
    start = want.copy()
    np.add.at(want, ids, rows)
    return start, ids, rows, want


@pytest.mark.parametrize("use_kernels", [True, False], ids=["njit", "reference"])
def test_scatter_add_rows_sums_duplicates(backend, use_kernels):
    start, ids, rows, want = _scatter_case()
    was = kernels.enabled()
    kernels.enabled(use_kernels)
    try:
        table = backend.asarray(start.copy())
        out = scatter.scatter_add_rows(table, backend.asarray(ids), backend.asarray(rows))
    finally:
        kernels.enabled(was)
    np.testing.assert_allclose(backend.to_numpy(out), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(backend.to_numpy(table), want, rtol=1e-12, atol=1e-12)


def test_scatter_njit_hostile(njit):
    import array_api_compat.numpy as xp

    for n, v in ((0, 3), (1, 1), (5000, 2)):
        start, ids, rows, want = _scatter_case(seed=n, v=v, n=n, d=3, dtype=np.float32)
        strided = np.asfortranarray(rows)  # non-contiguous rows are copied first
        got = scatter.scatter_add_rows(start.copy(), ids.astype(np.int32), strided)
        ref = scatter.scatter_add_rows_reference(start.copy(), ids, rows, xp)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ref, want, rtol=1e-4, atol=1e-4)


def test_embedding_contract_and_mask(backend):
    layer = Embedding(9, 4, embeddings_regularizer="l2")
    layer.build_on(backend, (None, 5))
    assert {k: tuple(v.shape) for k, v in layer.params.items()} == {"embeddings": (9, 4)}
    clone = Embedding.from_config(layer.get_config())
    assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    y = layer(backend.asarray(np.arange(15).reshape(3, 5) % 9))
    assert tuple(y.shape) == (3, 5, 4) == layer.compute_output_shape((3, 5)) + ()
    assert y.dtype == backend.xp.float32
    w = layer.get_weights()[0]
    assert np.all(np.abs(w) <= 0.05) and w.std() > 0.01  # Keras's "uniform": U(-0.05, 0.05)
    ids = backend.asarray(np.array([[0, 2, 0], [1, 0, 3]]))
    assert layer.compute_mask(ids) is None
    masked = Embedding(5, 2, mask_zero=True)
    masked.build_on(backend, (None, 3))
    np.testing.assert_array_equal(backend.to_numpy(masked.compute_mask(ids)),
                                  [[False, True, False], [True, False, True]])


def test_embedding_gradient_with_duplicates(backend):
    """d/d embeddings through the harness's central differences, ids repeated in a batch."""
    layer = Embedding(6, 5, dtype="float64")
    layer.build_on(backend, (None, 7))
    ids = np.array([[1, 1, 4, 0, 1, 5, 4], [2, 2, 2, 1, 0, 0, 3], [5, 1, 1, 1, 1, 1, 0]])
    check_call(backend, layer, ids, int_x=True, diff_x=False)
    # the gradient itself: row k is the sum of dy over every position holding k
    layer.zero_grads()
    y, ctx = layer.forward(backend.asarray(ids))
    dy = np.random.default_rng(1).standard_normal((3, 7, 5))
    assert layer.backward(ctx, backend.asarray(dy, dtype=backend.xp.float64)) is None
    want = np.zeros((6, 5))
    np.add.at(want, ids.ravel(), dy.reshape(-1, 5))
    np.testing.assert_allclose(backend.to_numpy(layer.grads["embeddings"]), want, atol=1e-12)


def test_embedding_errors():
    with pytest.raises(ValueError, match="input_dim"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="output_dim"):
        Embedding(3, 2.5)


def test_masking(backend):
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    x[0, 1] = 0.0
    x[2, 3] = 0.0
    x[1, 2, 0] = 0.0  # one feature at the mask value: not masked
    layer = Masking(dtype="float64")
    layer.build_on(backend, (None, 4, 2))
    mask = backend.to_numpy(layer.compute_mask(backend.asarray(x)))
    want = np.ones((3, 4), bool)
    want[0, 1] = want[2, 3] = False
    np.testing.assert_array_equal(mask, want)
    # the mask is a step function of x: its derivative is dy where kept, 0 where masked
    y, ctx = layer.forward(backend.asarray(x, dtype=backend.xp.float64))
    np.testing.assert_allclose(backend.to_numpy(y), x * want[..., None])
    dy = np.random.default_rng(1).standard_normal(x.shape)
    dx = layer.backward(ctx, backend.asarray(dy, dtype=backend.xp.float64))
    np.testing.assert_allclose(backend.to_numpy(dx), dy * want[..., None])
    m5 = Masking(mask_value=5.0)
    m5.build_on(backend, (None, 4, 2))
    assert not backend.to_numpy(m5.compute_mask(backend.asarray(np.full((1, 2, 2), 5.0)))).any()
    assert Masking.from_config(m5.get_config()).mask_value == 5.0


def test_pad_sequences_keras_defaults():
    seqs = [[1, 2, 3], [4], [5, 6, 7, 8, 9], []]
    out = pad_sequences(seqs)
    assert out.dtype == np.int32 and out.shape == (4, 5)
    np.testing.assert_array_equal(out[0], [0, 0, 1, 2, 3])
    np.testing.assert_array_equal(out[3], [0] * 5)
    out = pad_sequences(seqs, maxlen=2, padding="post", truncating="post", value=-1)
    np.testing.assert_array_equal(out, [[1, 2], [4, -1], [5, 6], [-1, -1]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2)[2], [8, 9])
    feats = pad_sequences([np.ones((2, 3)), np.ones((1, 3))], dtype="float32", value=0.5)
    assert feats.shape == (2, 2, 3) and feats.dtype == np.float32 and feats[1, 0, 0] == 0.5
    with pytest.raises(ValueError, match="padding"):
        pad_sequences(seqs, padding="middle")
    with pytest.raises(ValueError, match="truncating"):
        pad_sequences(seqs, truncating="x")
