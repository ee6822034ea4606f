"""MultiHeadAttention and GroupedQueryAttention: float64 gradients (NumPy through the fused
kernel, array-api-strict through the composition), causality, Keras's weight layout and
masks, configuration."""

import numpy as np
import pytest
from harness_attention import check_call_gradients

from xpnet.layers import GroupedQueryAttention
from xpnet.layers import MultiHeadAttention


def _build(backend, layer, *shapes):
    layer.build_on(backend, [(None,) + tuple(s[1:]) for s in shapes])
    return layer


def _x(rng, *shape):
    return rng.uniform(-1, 1, size=shape)


CASES = {
    # name: (layer kwargs, query shape, value shape, key shape or None, call keywords)
    "self": ({"num_heads": 2, "key_dim": 3}, (2, 4, 6), None, None, {}),
    "heads*key_dim!=width, value_dim": ({"num_heads": 2, "key_dim": 2, "value_dim": 3},
                                        (2, 4, 5), None, None, {}),
    "cross with key": ({"num_heads": 2, "key_dim": 2, "value_dim": 3, "output_shape": 4},
                       (2, 3, 5), (2, 5, 3), (2, 5, 6), {}),
    "causal": ({"num_heads": 2, "key_dim": 2}, (2, 5, 4), None, None,
               {"use_causal_mask": True}),
    "no bias": ({"num_heads": 1, "key_dim": 3, "use_bias": False}, (2, 3, 4), None, None,
                {}),
}


def _call_args(rng, q_shape, v_shape, k_shape):
    args = [_x(rng, *q_shape)]
    args.append(_x(rng, *v_shape) if v_shape else args[0].copy())
    kwargs = {"key": _x(rng, *k_shape)} if k_shape else {}
    return args, kwargs


@pytest.mark.parametrize("name", list(CASES))
def test_mha_gradients(backend, name):
    kw, q_shape, v_shape, k_shape, call = CASES[name]
    rng = np.random.default_rng(0)
    layer = _build(backend, MultiHeadAttention(**kw, dtype="float64"), q_shape,
                   v_shape or q_shape, k_shape or v_shape or q_shape)
    args, kwargs = _call_args(rng, q_shape, v_shape, k_shape)
    check_call_gradients(backend, layer, args, kwargs, grad_kwargs=list(kwargs), masks=call)


def test_mha_padding_masks_gradients(backend):
    """A value mask that leaves batch row 0 one visible key, a masked query, a full
    attention mask emptying one query's row, and the returned scores differentiated too."""
    rng = np.random.default_rng(1)
    layer = _build(backend, MultiHeadAttention(2, 2, value_dim=3, dtype="float64"),
                   (2, 4, 5), (2, 6, 3))
    vm = np.ones((2, 6), dtype=bool)
    vm[0] = False
    vm[0, 2] = True
    qm = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], dtype=bool)
    am = rng.random((2, 4, 6)) > 0.2
    am[1, 1, :] = False
    masks = {"query_mask": qm, "value_mask": vm, "attention_mask": am,
             "return_attention_scores": True}
    y = check_call_gradients(backend, layer, [_x(rng, 2, 4, 5), _x(rng, 2, 6, 3)],
                             masks=masks)
    out, scores = (backend.to_numpy(t) for t in y)
    assert scores.shape == (2, 2, 4, 6)
    sees = qm[0] & am[0, :, 2]  # batch row 0: queries that see the one visible key
    np.testing.assert_allclose(scores[0][:, sees, 2], 1.0)
    assert np.all(scores[0][:, ~sees] == 0)
    assert np.all(scores[1, :, 1, :] == 0) and np.all(scores[0, :, 2, :] == 0)


def test_mha_dropout_gradients(backend):
    rng = np.random.default_rng(2)
    layer = _build(backend, MultiHeadAttention(2, 2, dropout=0.3, seed=4, dtype="float64"),
                   (2, 5, 4), (2, 5, 4))
    x = _x(rng, 2, 5, 4)
    check_call_gradients(backend, layer, [x, x.copy()], masks={"use_causal_mask": True},
                         training=True)
    a = backend.to_numpy(layer.forward(backend.asarray(x), backend.asarray(x),
                                       training=True)[0])
    b = backend.to_numpy(layer.forward(backend.asarray(x), backend.asarray(x),
                                       training=True)[0])
    c = backend.to_numpy(layer.forward(backend.asarray(x), backend.asarray(x))[0])
    assert np.abs(a - b).max() > 1e-6 and np.abs(a - c).max() > 1e-6  # new mask per call


def test_gqa_gradients(backend):
    rng = np.random.default_rng(3)
    layer = GroupedQueryAttention(head_dim=2, num_query_heads=4, num_key_value_heads=2,
                                  dtype="float64")
    _build(backend, layer, (2, 3, 5), (2, 4, 3), (2, 4, 6))
    assert [tuple(w.shape) for w in layer.weights] == [
        (5, 4, 2), (4, 2), (6, 2, 2), (2, 2), (3, 2, 2), (2, 2), (4, 2, 5), (5,)]
    check_call_gradients(backend, layer, [_x(rng, 2, 3, 5), _x(rng, 2, 4, 3)],
                         {"key": _x(rng, 2, 4, 6)}, grad_kwargs=["key"],
                         masks={"use_causal_mask": True})


@pytest.mark.parametrize("cls", ["mha", "gqa"])
def test_causality(backend, cls):
    """With use_causal_mask=True, output t does not change when inputs after t change."""
    rng = np.random.default_rng(4)
    layer = MultiHeadAttention(2, 4) if cls == "mha" else GroupedQueryAttention(4, 4, 2)
    _build(backend, layer, (2, 7, 8), (2, 7, 8))
    x = rng.standard_normal((2, 7, 8)).astype(np.float32)
    y = backend.to_numpy(layer.forward(backend.asarray(x), backend.asarray(x),
                                       use_causal_mask=True)[0])
    for t in range(6):
        x2 = x.copy()
        x2[:, t + 1:] = rng.standard_normal(x2[:, t + 1:].shape)
        y2 = backend.to_numpy(layer.forward(backend.asarray(x2), backend.asarray(x2),
                                            use_causal_mask=True)[0])
        np.testing.assert_allclose(y2[:, :t + 1], y[:, :t + 1], rtol=1e-5, atol=1e-6)
        assert np.abs(y2[:, t + 1:] - y[:, t + 1:]).max() > 1e-4


def _keras_reference(x_q, x_v, x_k, w, mask, num_heads, key_dim):
    """Keras 3's equations (EinsumDense "abc,cde->abde", "abcd,cde->abe"; einsum
    "aecd,abcd->acbe"; Softmax with the mask added as -1e9, then multiplied by it)."""
    qk, qb, kk, kb, vk, vb, ok, ob = w
    q = np.einsum("abc,cde->abde", x_q, qk) + qb
    k = np.einsum("abc,cde->abde", x_k, kk) + kb
    v = np.einsum("abc,cde->abde", x_v, vk) + vb
    q = q / np.sqrt(key_dim)
    s = np.einsum("aecd,abcd->acbe", k, q)
    m = mask[:, None, :, :]
    s = s + (1.0 - m) * -1e9
    p = np.exp(s - s.max(-1, keepdims=True))
    p = p / p.sum(-1, keepdims=True) * m
    o = np.einsum("acbe,aecd->abcd", p, v)
    return np.einsum("abcd,cde->abe", o, ok) + ob, p


def test_keras_layout(backend):
    """Weights laid out as Keras lays them give the outputs of Keras's equations, masks
    combined as its _compute_attention_mask combines them."""
    rng = np.random.default_rng(5)
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=4, output_shape=5)
    _build(backend, layer, (2, 4, 6), (2, 5, 7), (2, 5, 8))
    names = ["query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel",
             "value/bias", "attention_output/kernel", "attention_output/bias"]
    assert layer.weight_names() == names
    shapes = [(6, 2, 3), (2, 3), (8, 2, 3), (2, 3), (7, 2, 4), (2, 4), (2, 4, 5), (5,)]
    assert [w.shape for w in layer.get_weights()] == shapes
    w = [rng.standard_normal(s).astype(np.float32) * 0.5 for s in shapes]
    layer.set_weights(w)
    xq, xv, xk = (rng.standard_normal(s).astype(np.float32)
                  for s in ((2, 4, 6), (2, 5, 7), (2, 5, 8)))
    qm = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)
    vm = np.array([[1, 1, 0, 1, 1], [1, 0, 0, 0, 0]], dtype=bool)
    km = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=bool)
    mask = qm[:, :, None] & vm[:, None, :] & km[:, None, :] & np.tri(4, 5, dtype=bool)
    want, want_p = _keras_reference(xq, xv, xk, w, mask.astype(np.float32), 2, 3)
    dev = [backend.asarray(a) for a in (xq, xv, xk, qm, vm, km)]
    (y, p), _ = layer.forward(dev[0], dev[1], key=dev[2], query_mask=dev[3],
                              value_mask=dev[4], key_mask=dev[5], use_causal_mask=True,
                              return_attention_scores=True)
    np.testing.assert_allclose(backend.to_numpy(p), want_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(y), want, rtol=1e-4, atol=1e-5)
    y2, _ = layer.forward(dev[0], dev[1], key=dev[2], query_mask=dev[3], value_mask=dev[4],
                          key_mask=dev[5], use_causal_mask=True)
    np.testing.assert_allclose(backend.to_numpy(y2), want, rtol=1e-4, atol=1e-5)


def test_config_and_errors(cpu):
    layer = MultiHeadAttention(4, 8, value_dim=6, dropout=0.1, output_shape=(12,), seed=3)
    clone = MultiHeadAttention.from_config(layer.get_config())
    assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    assert layer.compute_output_shape([(None, 5, 7), (None, 9, 3)]) == (None, 5, 12)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(0, 8)
    with pytest.raises(ValueError, match="key_shape"):
        MultiHeadAttention(2, 2).build_on(cpu, [(None, 3, 4), (None, 5, 4), (None, 6, 4)])
    with pytest.raises(NotImplementedError, match="attention_axes"):
        MultiHeadAttention(2, 2, attention_axes=(2,)).build_on(cpu, [(None, 3, 4, 5)] * 2)


def test_attention_over_two_axes(cpu):
    """attention_axes=None (or all middle axes) on (B, H, W, C): one joint sequence of H*W,
    as Keras's einsum over both axes."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    a = MultiHeadAttention(2, 3, attention_axes=(1, 2))
    a.build_on(cpu, [(None, 3, 4, 5)] * 2)
    (y, scores), _ = a.forward(x, x, return_attention_scores=True)
    assert y.shape == (2, 3, 4, 5) and scores.shape == (2, 2, 3, 4, 3, 4)
    b = MultiHeadAttention(2, 3)
    b.build_on(cpu, [(None, 12, 5)] * 2)
    b.set_weights(a.get_weights())
    flat = x.reshape(2, 12, 5)
    np.testing.assert_allclose(y.reshape(2, 12, 5), b.forward(flat, flat)[0], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(np.sum(scores, axis=(4, 5)), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="num_key_value_heads"):
        GroupedQueryAttention(2, 4, 3)
