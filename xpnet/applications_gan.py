"""Generative adversarial networks, as Keras 3's examples write them.

``dcgan_generator`` (Dense, Reshape, stride-2 ``Conv2DTranspose`` with BatchNormalization
and LeakyReLU, a sigmoid ``Conv2D``) and ``dcgan_discriminator`` (stride-2 ``Conv2D`` with
LeakyReLU, Dropout, a sigmoid ``Dense(1)``) are Sequential models. :class:`GAN` trains them
with an overridden ``train_step``, two optimizers and :class:`xpnet.GradientTape`
(``keras-io/examples/generative/dcgan_overriding_train_step.py``); :class:`ConditionalGAN`
feeds the one-hot class to both networks (``keras-io/examples/generative/conditional_gan.py``):
concatenated to the latent vector, and as constant image channels of the discriminator.
:class:`ACGAN` is the auxiliary-classifier GAN (Odena et al., 2017): the generator sees the
class as ``ConditionalGAN``'s does; the discriminator (``acgan_discriminator``) sees the image
alone and has two heads, real-or-fake and the class, and both networks add a
cross-entropy on the class to their loss.

The classic recipe also works: compile a combined model ``discriminator(generator(z))``
after ``discriminator.trainable = False`` and alternate ``train_on_batch`` calls. As on
Keras 3's TensorFlow backend, each model captures its trainable weights when its training
function is first built (its first ``fit``/``train_on_batch`` after ``compile``), so train
the discriminator once before freezing it; a model first trained after its flag was set to
False does not train.
"""

import math

from xpnet import layers
from xpnet import losses
from xpnet import metrics
from xpnet import ops
from xpnet import random
from xpnet.engine.tape import GradientTape
from xpnet.models import Input
from xpnet.models import Model
from xpnet.models import Sequential

__all__ = ["dcgan_generator", "dcgan_discriminator", "acgan_discriminator",
           "MinibatchStdDev", "GAN", "ConditionalGAN", "ACGAN"]


def dcgan_generator(latent_dim=64, output_shape=(28, 28, 1), filters=(64, 32),
                    backend=None, name="generator"):
    """``Dense(rows/4 * cols/4 * filters[0])``, Reshape, then per entry of ``filters`` a
    stride-2 ``Conv2DTranspose(f, 4)`` + BatchNormalization + LeakyReLU(0.2), and a sigmoid
    ``Conv2D(channels, 5)``: images in [0, 1] of ``output_shape``."""
    scale = 2 ** len(filters)
    rows, cols = output_shape[0] // scale, output_shape[1] // scale
    if rows * scale != output_shape[0] or cols * scale != output_shape[1]:
        raise ValueError(f"dcgan_generator: the image sides must be multiples of {scale}; "
                         f"received: output_shape={output_shape}")
    stack = [Input(shape=(latent_dim,)), layers.Dense(rows * cols * filters[0]),
             layers.Reshape((rows, cols, filters[0]))]
    for f in filters:
        stack += [layers.Conv2DTranspose(f, 4, strides=2, padding="same"),
                  layers.BatchNormalization(), layers.LeakyReLU(0.2)]
    stack.append(layers.Conv2D(output_shape[-1], 5, padding="same", activation="sigmoid"))
    return Sequential(stack, name=name, backend=backend)


class MinibatchStdDev(layers.Layer):
    """ProGAN's minibatch standard deviation (Karras et al., 2018): one channel appended to
    ``(batch, rows, cols, channels)`` features, holding, for each group of ``group_size``
    consecutive images, the mean over positions and channels of the features' standard
    deviation within the group. A discriminator that sees it can tell a batch of too-similar
    fakes from a batch of real images, which pushes the generator to cover more modes.

    The groups are consecutive images (ProGAN's are strided), so that in a batch of fakes
    followed by as many real images (:class:`GAN`'s ``train_step``) no group mixes the two
    when the half-batch is a multiple of ``group_size``; a batch that is not a multiple of
    ``group_size`` uses the largest common divisor.
    """

    def __init__(self, group_size=4, epsilon=1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size, self.epsilon = group_size, epsilon

    def call(self, inputs):
        n, rows, cols, channels = ops.shape(inputs)
        g = math.gcd(n, self.group_size)
        x = ops.reshape(inputs, (n // g, g, rows, cols, channels))
        variance = ops.mean(ops.square(x - ops.mean(x, axis=1, keepdims=True)), axis=1)
        stddev = ops.mean(ops.sqrt(variance + self.epsilon), axis=(1, 2, 3))  # (n // g,)
        stddev = ops.broadcast_to(ops.reshape(stddev, (n // g, 1, 1, 1, 1)),
                                  (n // g, g, rows, cols, 1))
        return ops.concatenate([inputs, ops.reshape(stddev, (n, rows, cols, 1))], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + 1,)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size,
                "epsilon": self.epsilon}


def dcgan_discriminator(input_shape=(28, 28, 1), filters=(32, 64), dropout=0.3,
                        minibatch_std=False, backend=None, name="discriminator"):
    """Per entry of ``filters`` a stride-2 ``Conv2D(f, 4)`` + LeakyReLU(0.2), then (with
    ``minibatch_std``) a :class:`MinibatchStdDev` channel, Flatten, ``Dropout(dropout)`` and
    ``Dense(1, sigmoid)``: the probability that an image is real."""
    stack = [Input(shape=input_shape)]
    for f in filters:
        stack += [layers.Conv2D(f, 4, strides=2, padding="same"), layers.LeakyReLU(0.2)]
    if minibatch_std:
        stack.append(MinibatchStdDev())
    stack += [layers.Flatten(), layers.Dropout(dropout), layers.Dense(1, activation="sigmoid")]
    return Sequential(stack, name=name, backend=backend)


def acgan_discriminator(input_shape=(28, 28, 1), num_classes=10, filters=(32, 64),
                        dropout=0.3, backend=None, name="discriminator"):
    """``dcgan_discriminator``'s stack with two heads, a functional model with two inputs,
    ``[image, one_hot_class]``, and two outputs: ``Dense(1, sigmoid)`` on the image's
    features with the class appended (the probability that the image is a real one of that
    class) and ``Dense(num_classes, softmax)`` on the features alone (the image's class:
    the class input cannot leak into it)."""
    image, label = Input(shape=input_shape), Input(shape=(num_classes,))
    x = image
    for f in filters:
        x = layers.Conv2D(f, 4, strides=2, padding="same")(x)
        x = layers.LeakyReLU(0.2)(x)
    x = layers.Dropout(dropout)(layers.Flatten()(x))
    validity = layers.Dense(1, activation="sigmoid", name="validity")(
        layers.Concatenate()([x, label]))
    classes = layers.Dense(num_classes, activation="softmax", name="label")(x)
    return Model([image, label], [validity, classes], name=name, backend=backend)


class GAN(Model):
    """Keras's DCGAN: ``train_step`` takes one step of the discriminator (fakes labelled 1,
    real images 0, labels noised by ``0.05 * U(0, 1)``) and one of the generator (through
    the discriminator, fakes labelled 0), each with its own optimizer and tape.

    ``compile(d_optimizer, g_optimizer, loss_fn)``; ``fit(images)``. Keras's example calls
    ``self.generator(z)`` without ``training=``; here both networks are called with
    ``training=True``, so the generator's BatchNormalization uses batch statistics.
    """

    def __init__(self, discriminator, generator, latent_dim, seed=1337, **kwargs):
        super().__init__(**kwargs)
        self.discriminator = discriminator
        self.generator = generator
        self.latent_dim = latent_dim
        self.seed_generator = random.SeedGenerator(seed)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_fn = loss_fn
        self.d_loss_metric = metrics.Mean(name="d_loss")
        self.g_loss_metric = metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def _latent(self, batch_size, like):
        return random.normal(shape=(batch_size, self.latent_dim), dtype=like.dtype,
                             seed=self.seed_generator)

    def _labels(self, batch_size, like):
        """1 for the fakes, then 0 for the real images, with a little noise (a trick)."""
        labels = ops.concatenate([ops.ones((batch_size, 1), dtype=like.dtype),
                                  ops.zeros((batch_size, 1), dtype=like.dtype)], axis=0)
        return labels + 0.05 * random.uniform(ops.shape(labels), dtype=like.dtype,
                                              seed=self.seed_generator)

    def d_step(self, fake_input, real_input, labels):
        """One discriminator step on fakes from ``fake_input`` and ``real_input``."""
        generated = self.generator(fake_input, training=True)
        combined = ops.concatenate([generated, real_input], axis=0)
        with GradientTape() as tape:
            d_loss = self.loss_fn(labels, self.discriminator(combined, training=True))
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights))
        return d_loss

    def g_step(self, fake_input, misleading_labels):
        """One generator step: the discriminator should call its fakes real (0)."""
        with GradientTape() as tape:
            predictions = self.discriminator(self.generator(fake_input, training=True),
                                             training=True)
            g_loss = self.loss_fn(misleading_labels, predictions)
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights))
        return g_loss

    def train_step(self, real_images):
        if isinstance(real_images, tuple):
            real_images = real_images[0]
        batch_size = ops.shape(real_images)[0]
        d_loss = self.d_step(self._latent(batch_size, real_images), real_images,
                             self._labels(batch_size, real_images))
        g_loss = self.g_step(self._latent(batch_size, real_images),
                             ops.zeros((batch_size, 1), dtype=real_images.dtype))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}

    def generate(self, n, seed=0):
        """``n`` images from latent vectors drawn with ``seed`` (inference mode)."""
        z = random.normal(shape=(n, self.latent_dim), seed=seed)
        return self.generator.predict(z, verbose=0)


class ConditionalGAN(GAN):
    """Keras's conditional GAN: the generator sees ``[z, one_hot(label)]``; the
    discriminator sees the image with ``num_classes`` constant channels holding the one-hot
    label. ``fit(images, one_hot_labels)``; the generator's input width is
    ``latent_dim + num_classes`` and the discriminator's channels ``1 + num_classes``."""

    def __init__(self, discriminator, generator, latent_dim, num_classes=10, **kwargs):
        super().__init__(discriminator, generator, latent_dim, **kwargs)
        self.num_classes = num_classes

    def _label_maps(self, one_hot, like):
        rows, cols = like.shape[1], like.shape[2]
        maps = ops.reshape(one_hot, (-1, 1, 1, self.num_classes))
        return ops.broadcast_to(maps, (one_hot.shape[0], rows, cols, self.num_classes))

    def train_step(self, data):
        real_images, one_hot = data
        batch_size = ops.shape(real_images)[0]
        maps = self._label_maps(one_hot, real_images)
        z = ops.concatenate([self._latent(batch_size, real_images), one_hot], axis=1)
        generated = self.generator(z, training=True)
        fake = ops.concatenate([generated, maps], axis=-1)
        real = ops.concatenate([real_images, maps], axis=-1)
        labels = self._labels(batch_size, real_images)
        with GradientTape() as tape:
            predictions = self.discriminator(ops.concatenate([fake, real], axis=0),
                                             training=True)
            d_loss = self.loss_fn(labels, predictions)
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights))

        z = ops.concatenate([self._latent(batch_size, real_images), one_hot], axis=1)
        misleading = ops.zeros((batch_size, 1), dtype=real_images.dtype)
        with GradientTape() as tape:
            fake = ops.concatenate([self.generator(z, training=True), maps], axis=-1)
            g_loss = self.loss_fn(misleading, self.discriminator(fake, training=True))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}

    def generate(self, labels, seed=0):
        """One image per integer label in ``labels`` (inference mode)."""
        z = random.normal(shape=(len(labels), self.latent_dim), seed=seed)
        one_hot = ops.one_hot(ops.convert_to_tensor(labels), self.num_classes, dtype=z.dtype)
        return self.generator.predict(ops.concatenate([z, one_hot], axis=1), verbose=0)


class ACGAN(ConditionalGAN):
    """A conditional GAN with an auxiliary classifier (after Odena et al., 2017): the class
    is an input of both networks -- the generator sees ``[z, one_hot(label)]`` as in
    :class:`ConditionalGAN`, the discriminator ``[image, one_hot(label)]`` and returns
    ``[p_real_for_that_class, class_probabilities]`` (``acgan_discriminator``; its class
    head reads the image only).

    ``compile(d_optimizer, g_optimizer, loss_fn, class_loss_fn=None, class_weight=1.0)``;
    ``fit(images, one_hot_labels)``. The discriminator's loss is ``loss_fn`` on real-or-fake
    (labels as :class:`GAN`'s) plus ``class_weight`` times ``class_loss_fn`` (default
    categorical cross-entropy) on the real images' classes; the generator's is ``loss_fn``
    with the misleading labels plus ``class_weight`` times ``class_loss_fn`` of the requested
    class on its fakes. Unlike the paper, the classifier head learns from real images only,
    so the generator must draw digits that a classifier of real digits recognises.
    """

    def compile(self, d_optimizer, g_optimizer, loss_fn, class_loss_fn=None,
                class_weight=1.0):
        super().compile(d_optimizer, g_optimizer, loss_fn)
        self.class_loss_fn = class_loss_fn or losses.CategoricalCrossentropy()
        self.class_weight = class_weight

    def train_step(self, data):
        real_images, one_hot = data
        batch_size = ops.shape(real_images)[0]
        z = ops.concatenate([self._latent(batch_size, real_images), one_hot], axis=1)
        combined = ops.concatenate([self.generator(z, training=True), real_images], axis=0)
        both = ops.concatenate([one_hot, one_hot], axis=0)  # the fakes' requests, the truth
        labels = self._labels(batch_size, real_images)
        with GradientTape() as tape:
            validity, classes = self.discriminator([combined, both], training=True)
            d_loss = (self.loss_fn(labels, validity) + self.class_weight
                      * self.class_loss_fn(one_hot, classes[batch_size:]))
        weights = self.discriminator.trainable_weights
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, weights), weights))

        z = ops.concatenate([self._latent(batch_size, real_images), one_hot], axis=1)
        misleading = ops.zeros((batch_size, 1), dtype=real_images.dtype)
        with GradientTape() as tape:
            validity, classes = self.discriminator([self.generator(z, training=True),
                                                    one_hot], training=True)
            g_loss = (self.loss_fn(misleading, validity)
                      + self.class_weight * self.class_loss_fn(one_hot, classes))
        weights = self.generator.trainable_weights
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, weights), weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}
