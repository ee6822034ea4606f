"""Convolutional architectures, each a function returning a functional :class:`Model`.

Small by default (they train in seconds on a CPU) and scalable through their arguments:
``lenet``, ``cnn1d`` (sequences), ``cnn3d`` (volumes), ``vgg``, ``resnet`` (basic and
bottleneck blocks), ``densenet``, ``inception`` and ``fcn`` (per-pixel segmentation). Inputs
are channels-last, as Keras's default. Classifiers end in a softmax, so compiling with
(sparse) categorical cross-entropy trains on the fused softmax-cross-entropy kernel.

>>> from xpnet import applications
>>> model = applications.lenet(input_shape=(28, 28, 1), backend="cpu")
>>> model.count_params()
107786
"""

from xpnet import layers
from xpnet.models import Model

__all__ = ["lenet", "cnn1d", "cnn3d", "vgg", "resnet", "densenet", "inception", "fcn"]


def _conv_unit(x, filters, kernel_size, strides=1, bn=False, activation="relu", name=None):
    """Conv (+ BatchNormalization) + activation; without batch norm the activation is fused
    into the convolution."""
    if not bn:
        return layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                             activation=activation, name=name)(x)
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False,
                      name=name)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation(activation)(x) if activation else x


def _head(x, classes):
    return layers.Dense(classes, activation="softmax", name="predictions")(x)


def lenet(input_shape=(28, 28, 1), classes=10, filters=(6, 16), kernel_size=5,
          dense=(120, 84), activation="relu", backend=None, name="lenet"):
    """LeNet-5: two convolution + max-pooling stages, then dense layers.

    Parameters
    ----------
    input_shape : tuple, default=(28, 28, 1)
    classes : int, default=10
    filters : tuple of int, default=(6, 16)
        One convolution ("same" padding) and one 2x2 max pooling per entry.
    kernel_size : int, default=5
    dense : tuple of int, default=(120, 84)
    activation : str, default="relu"
    backend : str, default=None
    """
    inputs = layers.Input(shape=input_shape)
    x = inputs
    for f in filters:
        x = layers.Conv2D(f, kernel_size, padding="same", activation=activation)(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    for units in dense:
        x = layers.Dense(units, activation=activation)(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def cnn1d(input_shape=(64, 1), classes=10, filters=(16, 32), kernel_size=5, backend=None,
          name="cnn1d"):
    """A 1-D CNN for sequences (audio, sensors, text embeddings): per entry of ``filters`` a
    Conv1D + MaxPooling1D, then global average pooling and a softmax.

    Parameters
    ----------
    input_shape : tuple, default=(64, 1)
        (steps, channels).
    classes : int, default=10
    filters : tuple of int, default=(16, 32)
    kernel_size : int, default=5
    """
    inputs = layers.Input(shape=input_shape)
    x = inputs
    for f in filters:
        x = layers.Conv1D(f, kernel_size, padding="same", activation="relu")(x)
        x = layers.MaxPooling1D(2)(x)
    x = layers.GlobalAveragePooling1D()(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def cnn3d(input_shape=(8, 8, 8, 1), classes=10, filters=(8, 16), kernel_size=3,
          backend=None, name="cnn3d"):
    """A 3-D CNN for volumes (scans, video clips): per entry of ``filters`` a Conv3D +
    MaxPooling3D, then global average pooling and a softmax.

    Parameters
    ----------
    input_shape : tuple, default=(8, 8, 8, 1)
        (depth, rows, cols, channels).
    classes : int, default=10
    filters : tuple of int, default=(8, 16)
    kernel_size : int, default=3
    """
    inputs = layers.Input(shape=input_shape)
    x = inputs
    for f in filters:
        x = layers.Conv3D(f, kernel_size, padding="same", activation="relu")(x)
        x = layers.MaxPooling3D(2)(x)
    x = layers.GlobalAveragePooling3D()(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def vgg(input_shape=(32, 32, 3), classes=10, blocks=(1, 1, 2), filters=(16, 32, 64),
        dense=(64,), backend=None, name="vgg"):
    """VGG: blocks of stacked 3x3 convolutions, each block ending in 2x2 max pooling, then
    dense layers. VGG-16 is ``blocks=(2, 2, 3, 3, 3), filters=(64, 128, 256, 512, 512),
    dense=(4096, 4096)`` on 224x224 inputs.

    Parameters
    ----------
    input_shape : tuple, default=(32, 32, 3)
    classes : int, default=10
    blocks : tuple of int, default=(1, 1, 2)
        Convolutions per block.
    filters : tuple of int, default=(16, 32, 64)
        Filters per block.
    dense : tuple of int, default=(64,)
    """
    inputs = layers.Input(shape=input_shape)
    x = inputs
    for b, (n, f) in enumerate(zip(blocks, filters), 1):
        for i in range(1, n + 1):
            x = layers.Conv2D(f, 3, padding="same", activation="relu",
                              name=f"{name}_block{b}_conv{i}")(x)
        x = layers.MaxPooling2D(2, name=f"{name}_block{b}_pool")(x)
    x = layers.Flatten()(x)
    for units in dense:
        x = layers.Dense(units, activation="relu")(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def _basic_block(x, filters, strides, bn):
    shortcut = x
    y = _conv_unit(x, filters, 3, strides, bn)
    y = _conv_unit(y, filters, 3, 1, bn, activation=None)
    if strides != 1 or x.shape[-1] != filters:  # projection shortcut
        shortcut = _conv_unit(x, filters, 1, strides, bn, activation=None)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def _bottleneck_block(x, filters, strides, bn, expansion=4):
    shortcut = x
    y = _conv_unit(x, filters, 1, 1, bn)
    y = _conv_unit(y, filters, 3, strides, bn)
    y = _conv_unit(y, filters * expansion, 1, 1, bn, activation=None)
    if strides != 1 or x.shape[-1] != filters * expansion:
        shortcut = _conv_unit(x, filters * expansion, 1, strides, bn, activation=None)
    return layers.Activation("relu")(layers.Add()([y, shortcut]))


def resnet(input_shape=(32, 32, 3), classes=10, stages=(1, 1, 1), filters=(16, 32, 64),
           block="basic", batch_norm=True, backend=None, name="resnet"):
    """ResNet: a 3x3 stem, stages of residual blocks (each stage after the first halves the
    resolution with a strided first block and a 1x1 projection shortcut), global average
    pooling and a softmax. ResNet-50 is ``stages=(3, 4, 6, 3), filters=(64, 128, 256, 512),
    block="bottleneck"``.

    Parameters
    ----------
    input_shape : tuple, default=(32, 32, 3)
    classes : int, default=10
    stages : tuple of int, default=(1, 1, 1)
        Residual blocks per stage.
    filters : tuple of int, default=(16, 32, 64)
    block : {"basic", "bottleneck"}, default="basic"
        Two 3x3 convolutions, or 1x1-3x3-1x1 with 4x wider outputs.
    batch_norm : bool, default=True
        BatchNormalization after each convolution (before its activation); False fuses
        the activation into the convolution instead.
    """
    if block not in ("basic", "bottleneck"):
        raise ValueError(f"{name}: block must be 'basic' or 'bottleneck', got {block!r}")
    bn = bool(batch_norm)
    unit = _basic_block if block == "basic" else _bottleneck_block
    inputs = layers.Input(shape=input_shape)
    x = _conv_unit(inputs, filters[0], 3, 1, bn)
    for s, (n, f) in enumerate(zip(stages, filters)):
        for i in range(n):
            x = unit(x, f, 2 if s > 0 and i == 0 else 1, bn)
    x = layers.GlobalAveragePooling2D()(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def densenet(input_shape=(32, 32, 3), classes=10, blocks=(2, 2), growth_rate=8,
             stem_filters=16, compression=0.5, batch_norm=True, backend=None, name="densenet"):
    """DenseNet: dense blocks in which every 3x3 convolution sees the concatenation of all
    earlier feature maps of its block, joined by transition layers (1x1 convolution that
    keeps ``compression`` of the channels, 2x2 average pooling). DenseNet-121 is
    ``blocks=(6, 12, 24, 16), growth_rate=32, stem_filters=64``.

    Parameters
    ----------
    input_shape : tuple, default=(32, 32, 3)
    classes : int, default=10
    blocks : tuple of int, default=(2, 2)
        Convolutions per dense block.
    growth_rate : int, default=8
        Channels each convolution adds.
    stem_filters : int, default=16
    compression : float, default=0.5
    batch_norm : bool, default=True
        As for :func:`resnet`.
    """
    bn = bool(batch_norm)
    inputs = layers.Input(shape=input_shape)
    x = _conv_unit(inputs, stem_filters, 3, 1, bn)
    for b, n in enumerate(blocks):
        for _ in range(n):
            new = _conv_unit(x, growth_rate, 3, 1, bn)
            x = layers.Concatenate()([x, new])
        if b < len(blocks) - 1:  # transition
            x = _conv_unit(x, max(1, int(x.shape[-1] * compression)), 1, 1, bn)
            x = layers.AveragePooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def _inception_module(x, f1, f3, f5, fp, reduce3, reduce5):
    b1 = layers.Conv2D(f1, 1, padding="same", activation="relu")(x)
    b3 = layers.Conv2D(reduce3, 1, padding="same", activation="relu")(x)
    b3 = layers.Conv2D(f3, 3, padding="same", activation="relu")(b3)
    b5 = layers.Conv2D(reduce5, 1, padding="same", activation="relu")(x)
    b5 = layers.Conv2D(f5, 5, padding="same", activation="relu")(b5)
    bp = layers.MaxPooling2D(3, strides=1, padding="same")(x)
    bp = layers.Conv2D(fp, 1, padding="same", activation="relu")(bp)
    return layers.Concatenate()([b1, b3, b5, bp])


def inception(input_shape=(32, 32, 3), classes=10, modules=2, width=8, stem_filters=16,
              backend=None, name="inception"):
    """Inception (GoogLeNet): a stem, then inception modules (parallel 1x1, 1x1-3x3,
    1x1-5x5 and 3x3-max-pool-1x1 branches concatenated), 2x2 max pooling between modules,
    global average pooling and a softmax.

    Parameters
    ----------
    input_shape : tuple, default=(32, 32, 3)
    classes : int, default=10
    modules : int, default=2
    width : int, default=8
        Branch widths scale with it: 1x1 ``width``, 3x3 ``2 width``, 5x5 ``width / 2``,
        pool ``width / 2``; the reductions before 3x3 and 5x5 are ``width`` and ``width / 2``.
    stem_filters : int, default=16
    """
    inputs = layers.Input(shape=input_shape)
    x = layers.Conv2D(stem_filters, 3, padding="same", activation="relu")(inputs)
    half = max(1, width // 2)
    for m in range(modules):
        if m > 0:
            x = layers.MaxPooling2D(2)(x)
        x = _inception_module(x, width, 2 * width, half, half, width, half)
    x = layers.GlobalAveragePooling2D()(x)
    return Model(inputs, _head(x, classes), name=name, backend=backend)


def fcn(input_shape=(32, 32, 3), classes=3, filters=(16, 32, 64), backend=None, name="fcn"):
    """A fully convolutional segmentation network: an encoder of 3x3 convolutions and 2x2
    max pooling, a decoder of stride-2 transposed convolutions that adds the encoder's
    features at each resolution (skip connections), and a per-pixel softmax over
    ``classes`` (train with sparse categorical cross-entropy on (batch, rows, cols) labels).

    Parameters
    ----------
    input_shape : tuple, default=(32, 32, 3)
        Rows and cols must be divisible by ``2 ** (len(filters) - 1)``; None for any size.
    classes : int, default=3
    filters : tuple of int, default=(16, 32, 64)
        Channels per resolution, finest first.
    """
    depth = len(filters) - 1
    for n in input_shape[:2]:
        if n is not None and n % (2 ** depth):
            raise ValueError(f"{name}: input rows and cols must be divisible by "
                             f"{2 ** depth} for {depth} poolings, got input_shape={input_shape}")
    inputs = layers.Input(shape=input_shape)
    x, skips = inputs, []
    for i, f in enumerate(filters):
        x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
        if i < depth:
            skips.append(x)
            x = layers.MaxPooling2D(2)(x)
    for f, skip in zip(reversed(filters[:-1]), reversed(skips)):
        x = layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu")(x)
        x = layers.Add()([x, skip])
        x = layers.Conv2D(f, 3, padding="same", activation="relu")(x)
    outputs = layers.Conv2D(classes, 1, activation="softmax", name="segmentation")(x)
    return Model(inputs, outputs, name=name, backend=backend)


# -- generative models (issue 14): reachable as xpnet.applications.<name>, kept out of
# __all__ so that keras.applications lists only what Keras's does.
# -- region-based detection (issue 15)
from xpnet.applications_detection import FasterRCNN  # noqa: E402
from xpnet.applications_detection import faster_rcnn  # noqa: E402
from xpnet.applications_gan import ACGAN  # noqa: E402,F401
from xpnet.applications_gan import GAN  # noqa: E402,F401
from xpnet.applications_gan import ConditionalGAN  # noqa: E402,F401
from xpnet.applications_gan import MinibatchStdDev  # noqa: E402,F401
from xpnet.applications_gan import acgan_discriminator  # noqa: E402,F401
from xpnet.applications_gan import dcgan_discriminator  # noqa: E402,F401
from xpnet.applications_gan import dcgan_generator  # noqa: E402,F401
from xpnet.applications_generative import VAE  # noqa: E402,F401
from xpnet.applications_generative import Sampling  # noqa: E402,F401
from xpnet.applications_generative import conv_autoencoder  # noqa: E402,F401
from xpnet.applications_generative import denoising_autoencoder  # noqa: E402,F401
from xpnet.applications_generative import dense_autoencoder  # noqa: E402,F401
from xpnet.applications_generative import vae_decoder  # noqa: E402,F401
from xpnet.applications_generative import vae_encoder  # noqa: E402,F401
from xpnet.applications_generative import vae_losses  # noqa: E402,F401

__all__ += ["dense_autoencoder", "conv_autoencoder", "denoising_autoencoder", "VAE", "Sampling",
            "vae_encoder", "vae_decoder", "vae_losses", "GAN", "ConditionalGAN", "ACGAN",
            "MinibatchStdDev", "dcgan_generator", "dcgan_discriminator",
            "acgan_discriminator", "faster_rcnn", "FasterRCNN"]
