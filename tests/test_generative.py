"""Generative models: the VAE's Sampling layer and loss through the float64 gradient check,
the two-optimizer GAN step, the frozen-discriminator recipe (Keras 3 on TensorFlow: trainable
weights captured at a model's first training step after compile), and short trainings whose
losses move the expected way."""

import numpy as np
import pytest
from harness import assert_grad_close
from harness import check_layer
from harness import numerical_grad

import xpnet
from xpnet import applications_gan as gans
from xpnet import applications_generative as gen
from xpnet import keras
from xpnet import ops


def _digits(n=256):
    (x, y), _ = keras.datasets.load_digits()
    return (x[:n].reshape(-1, 8, 8, 1) / 16.0).astype("float32"), y[:n]


def test_sampling_gradients(backend):
    """dz/dz_mean and dz/dz_log_var (through exp(z_log_var / 2) * epsilon) against central
    differences, with the same epsilon at every call (its SeedGenerator's state restored)."""
    check_layer(backend, gen.Sampling, {"seed": 3}, input_shape=[(4, 3), (4, 3)],
                expected_output_shape=(4, 3), expected_num_params=0)


def test_sampling_draws_change_and_restore():
    layer = gen.Sampling(seed=5)
    m, lv = np.zeros((2, 3), "float32"), np.zeros((2, 3), "float32")
    first = ops.convert_to_numpy(layer([m, lv]))
    state = xpnet.layers.Layer.get_rng_state(layer)
    second = ops.convert_to_numpy(layer([m, lv]))
    assert not np.array_equal(first, second)
    xpnet.layers.Layer.set_rng_state(layer, state)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer([m, lv])), second)


def test_vae_loss_gradients(backend):
    """The negative ELBO (reconstruction + KL) differentiated by the tape, against float64
    central differences, for the reconstruction, z_mean and z_log_var."""
    xp = backend.xp
    rng = np.random.default_rng(0)
    data = backend.asarray(rng.uniform(0, 1, (3, 4, 4, 1)), dtype=xp.float64)
    hosts = [rng.uniform(0.1, 0.9, (3, 4, 4, 1)), rng.standard_normal((3, 2)),
             rng.standard_normal((3, 2)) * 0.5]

    def total(recon, z_mean, z_log_var):
        r, kl = gen.vae_losses(data, recon, z_mean, z_log_var)
        return r + kl

    args = [backend.asarray(h, dtype=xp.float64) for h in hosts]
    with xpnet.GradientTape() as tape:
        traced = tape.watch(args)
        loss = total(*traced)
    grads = tape.gradient(loss, args)
    for i, h in enumerate(hosts):
        def f(v, i=i):
            vals = [backend.asarray(a, dtype=xp.float64) for a in hosts]
            vals[i] = backend.asarray(v, dtype=xp.float64)
            return float(ops.convert_to_numpy(total(*vals)))
        dirs, derivs = numerical_grad(f, h, rng)
        assert_grad_close(backend.to_numpy(grads[i]), dirs, derivs, f"vae loss: argument {i}")


def test_vae_loss_values():
    data = np.array([[[[1.0]], [[0.0]]]], "float32")  # (1, 2, 1, 1)
    recon = np.array([[[[0.5]], [[0.5]]]], "float32")
    r, kl = gen.vae_losses(data, recon, np.zeros((1, 2), "float32"), np.zeros((1, 2), "float32"))
    np.testing.assert_allclose(float(r), 2 * np.log(2.0), rtol=1e-5)
    assert float(kl) == 0.0  # N(0, 1) posterior: no divergence
    _, kl = gen.vae_losses(data, recon, np.ones((1, 2), "float32"), np.zeros((1, 2), "float32"))
    np.testing.assert_allclose(float(kl), 1.0, rtol=1e-6)  # 2 * (1/2 * 1^2)


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _trainable(model):
    return [ops.convert_to_numpy(v.value).copy() for v in model.trainable_weights]


def _small_gan(cls=gans.GAN, latent=8, **kwargs):
    keras.utils.set_random_seed(0)
    g = gans.dcgan_generator(latent, (8, 8, 1), filters=(8, 4))
    d = gans.dcgan_discriminator((8, 8, 1), filters=(4, 8))
    gan = cls(d, g, latent, **kwargs)
    gan.compile(keras.optimizers.Adam(1e-3, beta_1=0.5), keras.optimizers.Adam(1e-3, beta_1=0.5),
                keras.losses.BinaryCrossentropy())
    return gan, g, d


def test_gan_steps_update_only_their_network():
    gan, g, d = _small_gan()
    x, _ = _digits(32)
    z = np.random.default_rng(1).standard_normal((32, 8)).astype("float32")
    labels = np.concatenate([np.ones((32, 1)), np.zeros((32, 1))]).astype("float32")
    g0, d0 = _trainable(g), _trainable(d)
    gan.d_step(z, x, labels)
    assert all(np.array_equal(a, b) for a, b in zip(_trainable(g), g0)), "D's step moved G"
    assert not any(np.array_equal(a, b) for a, b in zip(_trainable(d), d0))
    g0, d0 = _trainable(g), _trainable(d)
    gan.g_step(z, np.zeros((32, 1), "float32"))
    assert all(np.array_equal(a, b) for a, b in zip(_trainable(d), d0)), "G's step moved D"
    assert not any(np.array_equal(a, b) for a, b in zip(_trainable(g), g0))


def test_gan_fit_runs_train_step_and_logs_both_losses():
    gan, g, d = _small_gan()
    x, _ = _digits(128)
    d0, g0 = _trainable(d), _trainable(g)
    history = gan.fit(x, epochs=2, batch_size=32, verbose=0).history
    assert set(history) == {"d_loss", "g_loss"} and len(history["d_loss"]) == 2
    assert all(np.isfinite(history["d_loss"] + history["g_loss"]))
    assert not np.array_equal(_trainable(d)[0], d0[0])
    assert not np.array_equal(_trainable(g)[0], g0[0])
    assert gan.generate(5).shape == (5, 8, 8, 1)


def _bce(p, target):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(target * np.log(p) + (1 - target) * np.log(1 - p)))


def test_gan_losses_move_the_expected_way():
    """A few discriminator steps lower its loss on a fixed batch (the generator held);
    then a few generator steps raise the discriminator's belief that fakes are real."""
    gan, g, d = _small_gan()
    x, _ = _digits(64)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((64, 8)).astype("float32")
    labels = np.concatenate([np.ones((64, 1)), np.zeros((64, 1))]).astype("float32")

    def d_loss():
        fake = g.predict(z, verbose=0)
        return _bce(d.predict(np.concatenate([fake, x]), verbose=0), labels)

    def g_loss():  # the generator in training mode (batch statistics), as it trains
        return _bce(d.predict(ops.convert_to_numpy(g(z, training=True)), verbose=0), 0.0)

    before = d_loss()
    for _ in range(15):
        gan.d_step(z, x, labels)
    after = d_loss()
    assert after < before - 0.05, (before, after)
    before = g_loss()
    for _ in range(15):
        gan.g_step(z, np.zeros((64, 1), "float32"))
    assert g_loss() < before - 0.05, (before, g_loss())


def test_conditional_gan_trains_and_generates():
    keras.utils.set_random_seed(0)
    g = gans.dcgan_generator(8 + 10, (8, 8, 1), filters=(8, 4))
    d = gans.dcgan_discriminator((8, 8, 11), filters=(4, 8))
    gan = gans.ConditionalGAN(d, g, 8, num_classes=10)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3),
                keras.losses.BinaryCrossentropy())
    x, y = _digits(64)
    g0 = _trainable(g)
    history = gan.fit(x, keras.utils.to_categorical(y, 10), epochs=1, batch_size=32,
                      verbose=0).history
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    assert not np.array_equal(_trainable(g)[0], g0[0])
    assert gan.generate([0, 1, 2]).shape == (3, 8, 8, 1)


def test_minibatch_stddev_gradients(backend):
    """The appended channel's gradient (through the group mean, the square root and the
    broadcast) against float64 central differences; two groups of 4 images."""
    check_layer(backend, gans.MinibatchStdDev, {"group_size": 4}, input_shape=(8, 3, 3, 2),
                expected_output_shape=(8, 3, 3, 3), expected_num_params=0)


def test_minibatch_stddev_groups_consecutive_images():
    x = np.random.default_rng(0).uniform(size=(6, 2, 2, 3)).astype("float32")
    for group, n in ((4, 6), (2, 6), (3, 6)):  # 4 does not divide 6: groups of gcd = 2
        y = ops.convert_to_numpy(gans.MinibatchStdDev(group_size=group)(x[:n]))
        g = np.gcd(n, group)
        want = [np.sqrt(x[k:k + g].var(axis=0) + 1e-8).mean() for k in range(0, n, g)]
        np.testing.assert_array_equal(y[..., :3], x[:n])
        np.testing.assert_allclose(y[:, 0, 0, 3], np.repeat(want, g), rtol=1e-5)
        assert np.ptp(y[..., 3].reshape(n, -1), axis=1).max() == 0.0
    # a group of fakes followed by a group of real images: each sees its own spread
    same = np.concatenate([np.repeat(x[:1], 4, axis=0), x[:4]])
    y = ops.convert_to_numpy(gans.MinibatchStdDev()(same))[:, 0, 0, 3]
    assert y[0] < 1e-3 < y[4]


def test_gan_with_minibatch_stddev_discriminator_trains():
    keras.utils.set_random_seed(0)
    g = gans.dcgan_generator(8, (8, 8, 1), filters=(8, 4))
    d = gans.dcgan_discriminator((8, 8, 1), filters=(4, 8), minibatch_std=True)
    assert d.output_shape == (None, 1) and d.layers[4].output_shape == (None, 2, 2, 9)
    gan = gans.GAN(d, g, 8)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3),
                keras.losses.BinaryCrossentropy())
    d0, g0 = _trainable(d), _trainable(g)
    history = gan.fit(_digits(64)[0], epochs=1, batch_size=32, verbose=0).history
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    assert not np.array_equal(_trainable(d)[0], d0[0])
    assert not np.array_equal(_trainable(g)[0], g0[0])


def test_acgan_discriminator_has_two_heads_and_steps_both_networks():
    keras.utils.set_random_seed(0)
    g = gans.dcgan_generator(8 + 10, (8, 8, 1), filters=(8, 4))
    d = gans.acgan_discriminator((8, 8, 1), 10, filters=(4, 8))
    assert [tuple(o.shape) for o in d.outputs] == [(None, 1), (None, 10)]
    assert [tuple(i.shape) for i in d.inputs] == [(None, 8, 8, 1), (None, 10)]  # both take it
    gan = gans.ACGAN(d, g, 8, num_classes=10)
    gan.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3),
                keras.losses.BinaryCrossentropy())
    assert isinstance(gan.class_loss_fn, keras.losses.CategoricalCrossentropy)
    x, y = _digits(64)
    d0, g0 = _trainable(d), _trainable(g)
    history = gan.fit(x, keras.utils.to_categorical(y, 10), epochs=1, batch_size=32,
                      verbose=0).history
    assert np.isfinite(history["d_loss"][0]) and np.isfinite(history["g_loss"][0])
    assert not any(np.array_equal(a, b) for a, b in zip(_trainable(d), d0))
    assert not np.array_equal(_trainable(g)[0], g0[0])
    assert gan.generate([0, 1, 2]).shape == (3, 8, 8, 1)


@pytest.mark.parametrize("class_weight", [0.0, 5.0])
def test_acgan_class_loss_teaches_the_classifier_head(class_weight):
    """The discriminator's class head learns the real digits' labels through the class
    term alone: its cross-entropy on them falls with ``class_weight`` 5 and, with 0, the
    head's weights do not move."""
    keras.utils.set_random_seed(0)
    g = gans.dcgan_generator(8 + 10, (8, 8, 1), filters=(8, 4))
    d = gans.acgan_discriminator((8, 8, 1), 10, filters=(4, 8))
    gan = gans.ACGAN(d, g, 8, num_classes=10)
    gan.compile(keras.optimizers.Adam(3e-3), keras.optimizers.Adam(1e-3),
                keras.losses.BinaryCrossentropy(), class_weight=class_weight)
    x, y = _digits(128)
    one_hot = keras.utils.to_categorical(y, 10)

    def class_loss():
        probs = d.predict([x, one_hot], verbose=0)[1]
        return float(-np.mean(np.log(np.clip((probs * one_hot).sum(axis=1), 1e-7, 1))))
    before, head = class_loss(), _weights(d.get_layer("label"))
    gan.fit(x, one_hot, epochs=8, batch_size=32, verbose=0)
    if class_weight:
        assert class_loss() < before - 0.2, (before, class_loss())
    else:
        assert all(np.array_equal(a, b) for a, b in zip(_weights(d.get_layer("label")), head))


def _classic(latent=8):
    keras.utils.set_random_seed(0)
    g = gans.dcgan_generator(latent, (8, 8, 1), filters=(8, 4))
    d = gans.dcgan_discriminator((8, 8, 1), filters=(4, 8))
    d.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    return g, d


def _combined(g, d, latent=8):
    z_in = keras.Input(shape=(latent,))
    combined = keras.Model(z_in, d(g(z_in)))
    combined.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    return combined


def test_frozen_discriminator_recipe_keeps_keras_semantics():
    """D trained once, then frozen: the combined model's train_on_batch leaves D bit-identical
    and moves G; D keeps training through its own train_on_batch."""
    g, d = _classic()
    x, _ = _digits(32)
    rng = np.random.default_rng(0)
    labels = np.ones((32, 1), "float32")
    d.train_on_batch(x, labels)  # D's training function is built: all its weights captured
    d.trainable = False
    combined = _combined(g, d)
    names = [w.path if hasattr(w, "path") else w.name for w in combined.weights]
    z = rng.standard_normal((32, 8)).astype("float32")
    for _ in range(3):
        d0, g0 = _weights(d), _trainable(g)
        combined.train_on_batch(z, labels)
        assert all(np.array_equal(a, b) for a, b in zip(_weights(d), d0)), \
            "the combined model moved the frozen discriminator"
        assert not any(np.array_equal(a, b) for a, b in zip(_trainable(g), g0))
        d0 = _weights(d)
        d.train_on_batch(x, np.zeros((32, 1), "float32"))
        assert not np.array_equal(_weights(d)[0], d0[0]), "D stopped training"
    assert d.trainable_weights == []
    assert len(combined.trainable_weights) == len(g.trainable_weights)
    # the captured weights are bookkeeping, not sublayers: the model's weights are unchanged
    assert [w.path if hasattr(w, "path") else w.name for w in combined.weights] == names


def test_model_first_trained_after_freezing_does_not_train():
    g, d = _classic()
    x, _ = _digits(32)
    d.trainable = False  # before D's first train step: it captures no trainable weights
    d0 = _weights(d)
    d.train_on_batch(x, np.ones((32, 1), "float32"))
    assert all(np.array_equal(a, b) for a, b in zip(_weights(d), d0))
    d.trainable = True  # no effect until the next compile: the capture is done
    d.train_on_batch(x, np.ones((32, 1), "float32"))
    assert all(np.array_equal(a, b) for a, b in zip(_weights(d), d0))
    d.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")  # a new compile re-captures
    d.train_on_batch(x, np.ones((32, 1), "float32"))
    assert not np.array_equal(_weights(d)[0], d0[0])


def test_vae_trains_and_its_losses_fall():
    x, _ = _digits(256)
    keras.utils.set_random_seed(0)
    vae = gen.VAE(gen.vae_encoder((8, 8, 1), 2, filters=(8, 16), units=16),
                  gen.vae_decoder(2, (8, 8, 1), filters=(8, 16)))
    vae.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = vae.evaluate(x, verbose=0, return_dict=True)
    history = vae.fit(x, epochs=4, batch_size=32, verbose=0).history
    after = vae.evaluate(x, verbose=0, return_dict=True)
    assert set(history) == {"total_loss", "reconstruction_loss", "kl_loss"}
    assert history["total_loss"][-1] < history["total_loss"][0]
    assert after["reconstruction_loss"] < before["reconstruction_loss"] - 2.0
    np.testing.assert_allclose(after["total_loss"],
                               after["reconstruction_loss"] + after["kl_loss"], rtol=1e-5)
    assert vae.encoder.predict(x[:3], verbose=0)[0].shape == (3, 2)
    assert vae.decoder.predict(np.zeros((3, 2), "float32"), verbose=0).shape == (3, 8, 8, 1)


@pytest.mark.parametrize("builder,kwargs", [
    (gen.dense_autoencoder, {"units": (32,)}),
    (gen.conv_autoencoder, {"filters": (8, 16)}),
    (gen.conv_autoencoder, {"filters": (8, 16), "upsampling": "upsampling"}),
    (gen.denoising_autoencoder, {"filters": (8, 16), "noise_stddev": 0.3}),
])
def test_autoencoders_learn_and_split(builder, kwargs):
    x, _ = _digits(256)
    keras.utils.set_random_seed(0)
    ae, encoder, decoder = builder((8, 8, 1), latent_dim=8, **kwargs)
    ae.compile(optimizer=keras.optimizers.Adam(3e-3), loss="mse")
    before = ae.evaluate(x, x, verbose=0)
    ae.fit(x, x, epochs=6, batch_size=32, verbose=0)
    assert ae.evaluate(x, x, verbose=0) < 0.8 * before
    codes = encoder.predict(x, verbose=0)
    assert codes.shape == (256, 8)
    # the encoder and decoder share the autoencoder's layers; noise is off in inference
    np.testing.assert_allclose(decoder.predict(codes, verbose=0), ae.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_conv_autoencoder_rejects_unknown_upsampling():
    with pytest.raises(ValueError, match="upsampling"):
        gen.conv_autoencoder((8, 8, 1), upsampling="bilinear")


def test_generator_rejects_sides_not_multiple_of_scale():
    with pytest.raises(ValueError, match="multiples of 4"):
        gans.dcgan_generator(8, (10, 10, 1))


def test_acgan_class_head_reads_the_image_only():
    """The class input reaches the real-or-fake head and never the class head: changing it
    moves the first output and leaves the second exactly as it was."""
    keras.utils.set_random_seed(0)
    d = gans.acgan_discriminator((8, 8, 1), 10, filters=(4, 8))
    x, _ = _digits(16)
    a = keras.utils.to_categorical(np.arange(16) % 10, 10)
    b = keras.utils.to_categorical((np.arange(16) + 3) % 10, 10)
    (va, ca), (vb, cb) = d.predict([x, a], verbose=0), d.predict([x, b], verbose=0)
    np.testing.assert_array_equal(ca, cb)
    assert np.abs(va - vb).max() > 0
