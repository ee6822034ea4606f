"""The attention layers and Transformer blocks inside the engine: functional models
(several inputs, keyword tensors, masks made by an embedding), fit, the tape's gradient of
MHA's ``key`` (through InputGrads), Keras's weight order through tracked sublayers."""

import numpy as np

import xpnet
from xpnet import keras
from xpnet import ops
from xpnet.layers import GlobalAveragePooling1D
from xpnet.layers import MultiHeadAttention
from xpnet.layers import TokenAndPositionEmbedding
from xpnet.layers import TransformerDecoder
from xpnet.layers import TransformerEncoder


def test_mha_key_gradient_through_the_tape(cpu):
    rng = np.random.default_rng(0)
    q, v, k = (rng.standard_normal(s) for s in ((2, 3, 4), (2, 5, 6), (2, 5, 7)))
    layer = MultiHeadAttention(2, 3, dtype="float64")
    with xpnet.GradientTape(persistent=True) as tape:
        tq, tv, tk = tape.watch([q, v, k])
        loss = ops.sum(layer(tq, tv, key=tk) ** 2)
        loss2 = ops.sum(layer(tq, tv, tk) ** 2)  # the key given positionally
    got = tape.gradient(loss, [tq, tv, tk])
    got2 = tape.gradient(loss2, [tq, tv, tk])
    y, ctx = layer.forward(q, v, key=k)
    layer.zero_grads()
    want = layer.backward(ctx, 2 * y)
    for g, g2, w in zip(got, got2, [*want.args, want.kwargs["key"]]):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(g2), w, rtol=1e-12)


def test_functional_cross_attention_and_keras_weight_order(cpu):
    q, v, k = keras.Input((3, 4)), keras.Input((5, 6)), keras.Input((5, 7))
    layer = MultiHeadAttention(2, 3, value_dim=2)
    y, scores = layer(q, v, key=k, return_attention_scores=True)
    assert tuple(y.shape) == (None, 3, 4) and tuple(scores.shape) == (None, 2, 3, 5)
    model = keras.Model([q, v, k], [y, scores])
    assert [w.shape for w in model.get_weights()] == [
        (4, 2, 3), (2, 3), (7, 2, 3), (2, 3), (6, 2, 2), (2, 2), (2, 2, 4), (4,)]
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal((2,) + s).astype(np.float32) for s in ((3, 4), (5, 6), (5, 7))]
    out, sc = model.predict(xs, verbose=0)
    (want, want_sc), _ = layer.forward(xs[0], xs[1], key=xs[2], return_attention_scores=True)
    np.testing.assert_allclose(out, want, rtol=1e-6)
    np.testing.assert_allclose(sc, want_sc, rtol=1e-6)


def _data(rng, n, t):
    x = rng.integers(1, 12, size=(n, t))
    lengths = rng.integers(2, t + 1, size=n)
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0
    y = (np.sum(x == 3, axis=1) > np.sum(x == 4, axis=1)).astype(np.int64)
    return x, y


def test_encoder_classifier_fits_with_padding_mask(cpu):
    keras.utils.set_random_seed(0)
    ids = keras.Input((10,), dtype="int64")
    x = TokenAndPositionEmbedding(12, 10, 16, mask_zero=True)(ids)
    x = TransformerEncoder(32, 2)(x)
    x = GlobalAveragePooling1D()(x)
    out = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(ids, out)
    # token + position embeddings, then KerasHub's order: MHA (8), the attention's layer
    # norm, the feed-forward's layer norm, intermediate and output dense; then the head
    assert [w.shape for w in model.get_weights()] == [
        (12, 16), (10, 16), (16, 2, 8), (2, 8), (16, 2, 8), (2, 8), (16, 2, 8), (2, 8),
        (2, 8, 16), (16,), (16,), (16,), (16,), (16,), (16, 32), (32,), (32, 16), (16,),
        (16, 2), (2,)]
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_train, y_train = _data(np.random.default_rng(0), 512, 10)
    hist = model.fit(x_train, y_train, epochs=6, batch_size=32, verbose=0)
    assert hist.history["loss"][-1] < 0.7 * hist.history["loss"][0]


def test_encoder_regularizers_reach_the_loss(cpu):
    block = TransformerEncoder(8, 2, kernel_regularizer="l2")
    block.build_on(cpu, (None, 3, 4))
    assert len(block.losses) == 6  # query, key, value, output, two dense kernels


def test_decoder_in_a_functional_model(cpu):
    dec, enc = keras.Input((4, 8)), keras.Input((6, 8))
    block = TransformerDecoder(16, 2)
    y = block(dec, enc)
    model = keras.Model([dec, enc], y)
    assert len(model.get_weights()) == 2 * 8 + 3 * 2 + 4
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal((2,) + s).astype(np.float32) for s in ((4, 8), (6, 8)))
    np.testing.assert_allclose(model.predict([a, b], verbose=0), block.forward(a, b)[0],
                               rtol=1e-5, atol=1e-6)


def test_save_and_load(cpu, tmp_path):
    ids = keras.Input((10,), dtype="int64")
    x = TokenAndPositionEmbedding(12, 10, 16, mask_zero=True)(ids)
    x = TransformerEncoder(32, 2)(x)
    q = keras.Input((4, 16))
    y = MultiHeadAttention(2, 8)(q, x)
    y = TransformerDecoder(32, 2)(y, x)
    out = keras.layers.Dense(2)(GlobalAveragePooling1D()(y))
    model = keras.Model([ids, q], out)
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 12, (3, 10)), rng.standard_normal((3, 4, 16)).astype(np.float32)
    want = model.predict([a, b], verbose=0)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(again.predict([a, b], verbose=0), want)


def test_the_embedding_mask_reaches_the_encoder(cpu):
    ids = keras.Input((6,), dtype="int64")
    emb = TokenAndPositionEmbedding(9, 6, 8, mask_zero=True)
    enc = TransformerEncoder(16, 2)
    model = keras.Model(ids, enc(emb(ids)))
    x = np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    h = emb.forward(x)[0]
    masked, unmasked = enc.forward(h, padding_mask=x != 0)[0], enc.forward(h)[0]
    got = model.predict(x, verbose=0)
    np.testing.assert_allclose(got, masked, rtol=1e-5, atol=1e-6)
    assert np.abs(got[0] - unmasked[0]).max() > 1e-3
