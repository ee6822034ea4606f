"""Autoencoders and a variational autoencoder, as a Keras user writes them.

Each builder returns ``(autoencoder, encoder, decoder)``: three functional models sharing
their layers, so ``encoder.predict`` gives the codes and ``decoder.predict`` images from
codes. ``dense_autoencoder``, ``conv_autoencoder`` (strided Conv2D encoder, Conv2DTranspose
or UpSampling2D decoder) and ``denoising_autoencoder`` (Gaussian noise on the input, in
training only) train with ``compile(loss="mse")`` and ``fit(x, x)``.

The VAE follows Keras's own example (``keras-io/examples/generative/vae.py``): a
:class:`Sampling` layer (the reparameterisation trick), an encoder with the outputs
``z_mean, z_log_var, z``, a decoder, and a :class:`VAE` model whose ``train_step`` computes
the reconstruction term and the KL divergence under a tape.

>>> from xpnet import applications_generative as gen
>>> ae, encoder, decoder = gen.conv_autoencoder((8, 8, 1), latent_dim=4, backend="cpu")
>>> encoder.output_shape, decoder.output_shape
((None, 4), (None, 8, 8, 1))
"""

import math

from xpnet import layers
from xpnet import metrics
from xpnet import ops
from xpnet import random
from xpnet.engine.tape import GradientTape
from xpnet.models import Input
from xpnet.models import Model

__all__ = ["dense_autoencoder", "conv_autoencoder", "denoising_autoencoder", "Sampling",
           "vae_encoder", "vae_decoder", "vae_losses", "VAE"]


def _join(encoder, decoder, input_shape, backend, name, noise=None):
    inputs = Input(shape=input_shape)
    x = inputs if noise is None else layers.GaussianNoise(noise, name="noise")(inputs)
    return Model(inputs, decoder(encoder(x)), name=name, backend=backend)


def dense_autoencoder(input_shape=(28, 28, 1), latent_dim=32, units=(128,), backend=None,
                      name="dense_autoencoder"):
    """Dense autoencoder: Flatten > Dense(units, relu)... > Dense(latent_dim), and back to
    a sigmoid image of ``input_shape``.

    Returns
    -------
    (autoencoder, encoder, decoder) : functional models sharing their layers
    """
    size = math.prod(input_shape)
    inputs = Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    for u in units:
        x = layers.Dense(u, activation="relu")(x)
    encoder = Model(inputs, layers.Dense(latent_dim, name="code")(x), name="encoder",
                    backend=backend)
    codes = Input(shape=(latent_dim,))
    x = codes
    for u in reversed(units):
        x = layers.Dense(u, activation="relu")(x)
    x = layers.Dense(size, activation="sigmoid")(x)
    decoder = Model(codes, layers.Reshape(input_shape)(x), name="decoder", backend=backend)
    return _join(encoder, decoder, input_shape, backend, name), encoder, decoder


def _conv_encoder(input_shape, latent_dim, filters, backend):
    inputs = Input(shape=input_shape)
    x = inputs
    for f in filters:
        x = layers.Conv2D(f, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    return Model(inputs, layers.Dense(latent_dim, name="code")(x), name="encoder",
                 backend=backend)


def _conv_decoder(input_shape, latent_dim, filters, upsampling, backend):
    scale = 2 ** len(filters)
    rows, cols = -(-input_shape[0] // scale), -(-input_shape[1] // scale)
    codes = Input(shape=(latent_dim,))
    x = layers.Dense(rows * cols * filters[-1], activation="relu")(codes)
    x = layers.Reshape((rows, cols, filters[-1]))(x)
    for f in reversed(filters):
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")(x)
        else:
            x = layers.UpSampling2D(2)(x)
            x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
    if (rows * scale, cols * scale) != tuple(input_shape[:2]):
        x = layers.Cropping2D(((0, rows * scale - input_shape[0]),
                               (0, cols * scale - input_shape[1])))(x)
    x = layers.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid")(x)
    return Model(codes, x, name="decoder", backend=backend)


def conv_autoencoder(input_shape=(28, 28, 1), latent_dim=32, filters=(16, 32),
                     upsampling="transpose", backend=None, name="conv_autoencoder"):
    """Convolutional autoencoder: stride-2 ``Conv2D(f, 3, relu)`` per entry of ``filters``,
    Flatten, ``Dense(latent_dim)``; the decoder mirrors it with ``Conv2DTranspose`` (or,
    with ``upsampling="upsampling"``, ``UpSampling2D`` + ``Conv2D``) and ends in a sigmoid
    ``Conv2D``.

    Returns
    -------
    (autoencoder, encoder, decoder) : functional models sharing their layers
    """
    if upsampling not in ("transpose", "upsampling"):
        raise ValueError(f"conv_autoencoder: upsampling must be 'transpose' or "
                         f"'upsampling'; received: upsampling={upsampling!r}")
    encoder = _conv_encoder(input_shape, latent_dim, filters, backend)
    decoder = _conv_decoder(input_shape, latent_dim, filters, upsampling, backend)
    return _join(encoder, decoder, input_shape, backend, name), encoder, decoder


def denoising_autoencoder(input_shape=(28, 28, 1), latent_dim=32, filters=(16, 32),
                          noise_stddev=0.3, backend=None, name="denoising_autoencoder"):
    """A :func:`conv_autoencoder` trained on noisy inputs: ``GaussianNoise(noise_stddev)``
    before the encoder, active in training only; ``fit(x, x)`` learns to remove it.

    Returns
    -------
    (autoencoder, encoder, decoder) : the encoder and decoder see no noise layer
    """
    encoder = _conv_encoder(input_shape, latent_dim, filters, backend)
    decoder = _conv_decoder(input_shape, latent_dim, filters, "transpose", backend)
    return (_join(encoder, decoder, input_shape, backend, name, noise=noise_stddev),
            encoder, decoder)


class Sampling(layers.Layer):
    """The reparameterisation trick: ``z = z_mean + exp(z_log_var / 2) * epsilon`` with
    ``epsilon ~ N(0, 1)``, so that gradients reach ``z_mean`` and ``z_log_var``.

    Called on ``[z_mean, z_log_var]``; draws from its own ``SeedGenerator``.
    """

    def __init__(self, seed=1337, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        batch, dim = ops.shape(z_mean)[0], ops.shape(z_mean)[1]
        epsilon = random.normal(shape=(batch, dim), dtype=z_mean.dtype,
                                seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def vae_encoder(input_shape=(28, 28, 1), latent_dim=2, filters=(32, 64), units=16,
                backend=None):
    """Keras's VAE encoder: stride-2 ``Conv2D(f, 3, relu)``s, Flatten, ``Dense(units,
    relu)``, then ``z_mean`` and ``z_log_var`` (``Dense(latent_dim)`` each) and ``z`` from
    :class:`Sampling`. Outputs ``[z_mean, z_log_var, z]``."""
    inputs = Input(shape=input_shape)
    x = inputs
    for f in filters:
        x = layers.Conv2D(f, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(units, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling(name="z")([z_mean, z_log_var])
    return Model(inputs, [z_mean, z_log_var, z], name="encoder", backend=backend)


def vae_decoder(latent_dim=2, output_shape=(28, 28, 1), filters=(32, 64), backend=None):
    """Keras's VAE decoder: ``Dense(rows/4 * cols/4 * 64, relu)``, Reshape, stride-2
    ``Conv2DTranspose(f, 3, relu)``s and a sigmoid ``Conv2DTranspose`` to the image."""
    return _conv_decoder(output_shape, latent_dim, filters, "transpose", backend)


def vae_losses(data, reconstruction, z_mean, z_log_var):
    """The negative ELBO's two terms, each a batch mean (written with ``ops``, so a tape
    differentiates them):

    reconstruction = mean_b sum_pixels BCE(data, reconstruction)
    kl = mean_b sum_j -1/2 (1 + z_log_var - z_mean^2 - exp(z_log_var))
    """
    # keras.losses.binary_crossentropy: the element-wise BCE averaged over the last axis
    bce = ops.mean(ops.binary_crossentropy(data, reconstruction), axis=-1)
    axes = tuple(range(1, len(data.shape) - 1))
    reconstruction_loss = ops.mean(ops.sum(bce, axis=axes))
    kl = -0.5 * (1.0 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
    return reconstruction_loss, ops.mean(ops.sum(kl, axis=1))


class VAE(Model):
    """Keras's VAE model: ``train_step`` minimises ``reconstruction + kl`` under a tape;
    ``test_step`` reports the same terms (the test negative ELBO); ``call`` reconstructs
    from ``z_mean``."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker,
                self.kl_loss_tracker]

    def call(self, inputs, training=False):
        z_mean, _, _ = self.encoder(inputs, training=training)
        return self.decoder(z_mean, training=training)

    def _losses_of(self, data, training):
        z_mean, z_log_var, z = self.encoder(data, training=training)
        reconstruction = self.decoder(z, training=training)
        return vae_losses(data, reconstruction, z_mean, z_log_var)

    def _log(self, reconstruction_loss, kl_loss):
        total = reconstruction_loss + kl_loss
        self.total_loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        if isinstance(data, tuple):
            data = data[0]
        with GradientTape() as tape:
            reconstruction_loss, kl_loss = self._losses_of(data, True)
            total_loss = reconstruction_loss + kl_loss
        weights = self.trainable_weights
        grads = tape.gradient(total_loss, weights)
        self.optimizer.apply_gradients(zip(grads, weights))
        return self._log(reconstruction_loss, kl_loss)

    def test_step(self, data):
        if isinstance(data, tuple):
            data = data[0]
        return self._log(*self._losses_of(data, False))
