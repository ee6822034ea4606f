"""Transformer blocks and position layers: float64 gradients through every sublayer
(NumPy and array-API-strict), padding masks, causality, configuration."""

import numpy as np
import pytest
from harness_attention import check_call_gradients
from harness_attention import leaves

from xpnet.layers import PositionEmbedding
from xpnet.layers import RotaryEmbedding
from xpnet.layers import SinePositionEncoding
from xpnet.layers import TokenAndPositionEmbedding
from xpnet.layers import TransformerDecoder
from xpnet.layers import TransformerEncoder


def _x(rng, *shape):
    return rng.uniform(-1, 1, size=shape)


def _padding(b, t):
    m = np.ones((b, t), dtype=bool)
    m[0, 1:] = False  # batch row 0: one real step
    m[1, -2:] = False
    return m


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_gradients(backend, normalize_first):
    rng = np.random.default_rng(0)
    layer = TransformerEncoder(6, 2, activation="gelu", normalize_first=normalize_first,
                               dtype="float64")
    layer.build_on(backend, (None, 4, 4))
    check_call_gradients(backend, layer, [_x(rng, 2, 4, 4)],
                         masks={"padding_mask": _padding(2, 4)})


def test_encoder_dropout_gradients(backend):
    rng = np.random.default_rng(1)
    layer = TransformerEncoder(5, 2, dropout=0.2, dtype="float64")
    layer.build_on(backend, (None, 3, 4))
    check_call_gradients(backend, layer, [_x(rng, 2, 3, 4)], training=True)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_gradients(backend, normalize_first):
    rng = np.random.default_rng(2)
    layer = TransformerDecoder(5, 2, normalize_first=normalize_first, dtype="float64")
    layer.build_on(backend, [(None, 3, 4), (None, 5, 6)])
    check_call_gradients(backend, layer, [_x(rng, 2, 3, 4), _x(rng, 2, 5, 6)],
                         masks={"decoder_padding_mask": _padding(2, 3),
                                "encoder_padding_mask": _padding(2, 5)})


def test_decoder_without_cross_attention(backend):
    rng = np.random.default_rng(3)
    layer = TransformerDecoder(5, 2, dtype="float64")
    layer.build_on(backend, (None, 4, 4))
    assert not hasattr(layer, "_cross_attention_layer")
    check_call_gradients(backend, layer, [_x(rng, 2, 4, 4)])


def test_decoder_is_causal(cpu):
    rng = np.random.default_rng(4)
    layer = TransformerDecoder(8, 2)
    layer.build_on(cpu, [(None, 6, 4), (None, 3, 4)])
    x, enc = (rng.standard_normal(s).astype(np.float32) for s in ((2, 6, 4), (2, 3, 4)))
    y = layer.forward(x, enc)[0]
    for t in range(5):
        x2 = x.copy()
        x2[:, t + 1:] += 1.0
        y2 = layer.forward(x2, enc)[0]
        np.testing.assert_allclose(y2[:, :t + 1], y[:, :t + 1], rtol=1e-5, atol=1e-6)
        assert np.abs(y2[:, t + 1:] - y[:, t + 1:]).max() > 1e-3


def test_encoder_padding_mask_hides_padded_steps(cpu):
    """Changing padded steps changes nothing at the real steps."""
    rng = np.random.default_rng(5)
    layer = TransformerEncoder(8, 2)
    layer.build_on(cpu, (None, 5, 4))
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    m = _padding(2, 5)
    y = layer.forward(x, padding_mask=m)[0]
    x2 = np.where(m[..., None], x, 7.0).astype(np.float32)
    y2 = layer.forward(x2, mask=m)[0]  # the incoming mask, as the engine passes it
    np.testing.assert_allclose(y2[m], y[m], rtol=1e-5, atol=1e-6)


def test_token_and_position_embedding(backend):
    layer = TokenAndPositionEmbedding(7, 6, 3, mask_zero=True, dtype="float64")
    layer.build_on(backend, (None, 4))
    ids = np.array([[1, 2, 0, 0], [6, 6, 3, 1]])
    check_call_gradients(backend, layer, [ids])
    sub = {h.name: h for h in leaves(layer)}
    assert sub["token_embedding"].params["embeddings"].shape == (7, 3)
    assert sub["position_embedding"].params["embeddings"].shape == (6, 3)
    mask = backend.to_numpy(layer.compute_mask(backend.asarray(ids)))
    np.testing.assert_array_equal(mask, ids != 0)


def test_position_layers(backend):
    rng = np.random.default_rng(7)
    pos = PositionEmbedding(5, dtype="float64")
    pos.build_on(backend, (None, 4, 3))
    check_call_gradients(backend, pos, [_x(rng, 2, 4, 3)], masks={"start_index": 1})
    rope = RotaryEmbedding(max_wavelength=100, scaling_factor=2.0, dtype="float64")
    rope.build_on(backend, (None, 3, 2, 4))
    check_call_gradients(backend, rope, [_x(rng, 2, 3, 2, 4)], masks={"start_index": 2})
    sine = SinePositionEncoding(max_wavelength=50, dtype="float64")
    sine.build_on(backend, (None, 3, 4))
    check_call_gradients(backend, sine, [_x(rng, 2, 3, 4)])


def test_sine_and_rotary_values(cpu):
    """KerasHub's formulas, written out."""
    x = np.random.default_rng(8).standard_normal((1, 5, 6)).astype(np.float32)
    enc = SinePositionEncoding(max_wavelength=100).forward(x)[0][0]
    p, i = np.arange(5)[:, None], np.arange(6)[None, :]
    angle = p / 100.0 ** (2 * (i // 2) / 6)
    np.testing.assert_allclose(enc, np.where(i % 2, np.cos(angle), np.sin(angle)), atol=1e-6)
    y = RotaryEmbedding(max_wavelength=100).forward(x, start_index=3)[0]
    inv = 1.0 / 100.0 ** (np.arange(0, 6, 2) / 6)
    f = np.concatenate([(np.arange(5) + 3)[:, None] * inv] * 2, axis=1)
    rot = np.concatenate([-x[..., 3:], x[..., :3]], axis=-1)
    np.testing.assert_allclose(y, x * np.cos(f) + rot * np.sin(f), rtol=1e-5, atol=1e-6)


def test_configs():
    for layer in (TransformerEncoder(8, 2, dropout=0.1, normalize_first=True,
                                     kernel_regularizer="l2"),
                  TransformerDecoder(8, 2, activation="gelu"),
                  TokenAndPositionEmbedding(10, 4, 3, mask_zero=True), PositionEmbedding(4),
                  SinePositionEncoding(50), RotaryEmbedding(100, 2.0)):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    with pytest.raises(ValueError, match="intermediate_dim"):
        TransformerEncoder(0, 2)
