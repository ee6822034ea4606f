"""Attention (dot and concat scores) and AdditiveAttention: float64 gradients with masks,
dropout and returned scores, against Keras's equations, configuration."""

import numpy as np
import pytest
from harness_attention import check_call_gradients

from xpnet.layers import AdditiveAttention
from xpnet.layers import Attention

LAYERS = {
    "dot": (Attention, {}),
    "dot scaled": (Attention, {"use_scale": True}),
    "concat": (Attention, {"score_mode": "concat"}),
    "concat scaled": (Attention, {"score_mode": "concat", "use_scale": True}),
    "additive": (AdditiveAttention, {}),
    "additive unscaled": (AdditiveAttention, {"use_scale": False}),
}


def _layer(backend, name, shapes, **extra):
    cls, kw = LAYERS[name]
    layer = cls(**kw, **extra, dtype="float64")
    layer.build_on(backend, [(None,) + s[1:] for s in shapes])
    return layer


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("with_key", [False, True])
def test_gradients(backend, name, with_key):
    rng = np.random.default_rng(0)
    shapes = [(2, 3, 4), (2, 5, 3), (2, 5, 4)] if with_key else [(2, 3, 4), (2, 5, 4)]
    layer = _layer(backend, name, shapes)
    args = [rng.uniform(-1, 1, s) for s in shapes]
    vm = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 1, 1]], dtype=bool)  # row 0: one visible key
    qm = np.array([[1, 0, 1], [1, 1, 1]], dtype=bool)
    check_call_gradients(backend, layer, args, as_list=True,
                         masks={"mask": [qm, vm], "return_attention_scores": True,
                                "use_causal_mask": with_key})


@pytest.mark.parametrize("name", ["dot scaled", "additive"])
def test_dropout_gradients(backend, name):
    rng = np.random.default_rng(1)
    shapes = [(2, 3, 4), (2, 4, 4)]
    layer = _layer(backend, name, shapes, dropout=0.4, seed=2)
    check_call_gradients(backend, layer, [rng.uniform(-1, 1, s) for s in shapes],
                         as_list=True, training=True)


def test_matches_keras_equations(cpu):
    """Keras 3: scores - 1e9 * (1 - mask), softmax, weights @ value, query rows masked;
    a fully masked row is the softmax of its raw scores (not zero) in this layer."""
    rng = np.random.default_rng(2)
    q, v, k = (rng.standard_normal(s).astype(np.float32)
               for s in ((2, 3, 4), (2, 5, 6), (2, 5, 4)))
    vm = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool)
    qm = np.array([[1, 1, 0], [1, 1, 1]], dtype=bool)
    for name in ("dot scaled", "concat scaled", "additive"):
        layer = _layer(cpu, name, [q.shape, v.shape, k.shape])
        w = [np.full(x.shape, 0.7, dtype=np.float64) if x.ndim == 0 else
             rng.standard_normal(x.shape) for x in layer.get_weights()]
        layer.set_weights(w)
        if name == "dot scaled":
            s = w[0] * q @ np.swapaxes(k, 1, 2)
        elif name == "concat scaled":
            s = w[1] * np.tanh(w[0] * (q[:, :, None] + k[:, None])).sum(-1)
        else:
            s = (w[0] * np.tanh(q[:, :, None] + k[:, None])).sum(-1)
        s = s - 1e9 * (1 - vm[:, None, :])
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        want = (p @ v) * qm[..., None]
        (y, scores), _ = layer.forward([q, v, k], mask=[qm, vm], return_attention_scores=True)
        np.testing.assert_allclose(scores, p, rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(y, want, rtol=2e-5, atol=1e-5)


def test_config_and_errors(cpu):
    for _name, (cls, kw) in LAYERS.items():
        layer = cls(**kw, dropout=0.1, seed=1)
        clone = cls.from_config(layer.get_config())
        assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    assert Attention().compute_output_shape([(None, 3, 4), (None, 5, 6)]) == (None, 3, 6)
    with pytest.raises(ValueError, match="score_mode"):
        Attention(score_mode="general")
    with pytest.raises(ValueError, match="list"):
        Attention().build_on(cpu, (None, 3, 4))
