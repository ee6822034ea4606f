"""A conditional GAN on digits in the Keras API on xpnet: ask for a class, get that digit.

    python examples/conditional_gan.py              # the embedded 8x8 digits
    python examples/conditional_gan.py --data DIR   # MNIST IDX files in DIR

Two variants, both with the class as an input of both networks (the generator's: a latent
vector with the one-hot class appended, as Keras 3's conditional GAN example):

``--variant acgan`` (the default) adds an auxiliary classifier (``xpnet.applications_gan.
ACGAN``, after Odena et al., 2017): the discriminator takes ``[image, one_hot_class]`` and
has two heads, real-or-fake for that class (the class appended to the image's features) and
the image's class (from the features alone, ``acgan_discriminator``); both networks add a
categorical cross-entropy on the class to their loss (the discriminator on the real images'
labels, the generator on the requested labels of its fakes).

``--variant channels`` is Keras 3's example as written (``xpnet.applications_gan.
ConditionalGAN``): the discriminator sees the image with ten constant channels holding the
one-hot class and says only real-or-fake. On the MNIST split it plateaus near 80 %
agreement; the auxiliary classifier passes 90 % within a few epochs (benchmarks/RESULTS.md).

``train_step`` steps both networks with their own optimizers and ``xpnet.GradientTape``.
After training, the judge (the CNN of ``examples/cnn.py`` trained on the real images)
labels 1,000 generated digits, 100 per requested class, and the example prints how often it
agrees with the request (``--judge-every N`` also after every N epochs). A grid with one
row per class is written as PNG after each epoch. The figures in benchmarks/RESULTS.md come
from ``--data DIR --small --judge-weights /tmp/judge.h5`` (batch 32 and, with ``--data``,
10 epochs are the defaults; agreement 0.963 at 10 epochs, 0.974-0.976 at 20).
"""

import argparse
import os
import time

import numpy as np
from generative_common import gan_arguments
from generative_common import gan_epochs
from generative_common import judge_samples
from generative_common import load
from generative_common import print_verdict
from generative_common import save_grid
from generative_common import train_judge

from xpnet import applications_gan
from xpnet import keras


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gan_arguments(parser, data_epochs=10)
    parser.add_argument("--variant", choices=["acgan", "channels"], default="acgan",
                        help="acgan: the discriminator also classifies the image "
                        "(ACGAN); channels: Keras's example, the class as image channels")
    args = parser.parse_args(argv)
    args.epochs = gan_epochs(args)

    (x_train, y_train), _ = load(args.data)
    judge_model = train_judge(x_train, y_train, args.judge_epochs, weights=args.judge_weights)
    keras.utils.set_random_seed(args.seed)
    classes = 10
    shape = x_train.shape[1:]
    g_filters, d_filters = ((32, 16), (16, 32)) if args.small else ((64, 32), (32, 64))
    generator = applications_gan.dcgan_generator(args.latent_dim + classes, shape, g_filters)
    if args.variant == "acgan":
        discriminator = applications_gan.acgan_discriminator(shape, classes, d_filters)
        gan = applications_gan.ACGAN(discriminator, generator, args.latent_dim,
                                     num_classes=classes, seed=args.seed)
    else:
        discriminator = applications_gan.dcgan_discriminator(shape[:2] + (1 + classes,),
                                                             d_filters)
        gan = applications_gan.ConditionalGAN(discriminator, generator, args.latent_dim,
                                              num_classes=classes, seed=args.seed)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                loss_fn=keras.losses.BinaryCrossentropy())
    if args.judge_only:
        generator.load_weights(os.path.join(args.out, "conditional_generator.weights.h5"))
        return judge(gan, judge_model), []
    one_hot = keras.utils.to_categorical(y_train, classes)
    grid_labels = np.repeat(np.arange(classes), 10)
    times = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        logs = gan.fit(x_train, one_hot, epochs=1, batch_size=args.batch_size,
                       verbose=0).history
        times.append(time.perf_counter() - start)
        print(f"epoch {epoch + 1}/{args.epochs}: d_loss {logs['d_loss'][0]:.4f} "
              f"g_loss {logs['g_loss'][0]:.4f} ({times[-1]:.1f} s)")
        path = save_grid(gan.generate(grid_labels, seed=123),
                         os.path.join(args.out, f"conditional_epoch{epoch + 1}.png"))
        generator.save_weights(os.path.join(args.out, "conditional_generator.weights.h5"))
        if args.judge_every and (epoch + 1) % args.judge_every == 0 and epoch + 1 < args.epochs:
            judge(gan, judge_model)
    print(f"samples written to {path} (row k: class k)")
    later = sorted(times[1:] or times)
    print(f"conditional GAN: {args.epochs} epochs, {later[len(later) // 2]:.1f} s per epoch "
          f"(median after the first)")
    return judge(gan, judge_model), times


def judge(gan, judge_model):
    """The judge's verdict on 1,000 generated digits, 100 per requested class."""
    requested = np.repeat(np.arange(gan.num_classes), 100)
    verdict = judge_samples(judge_model, gan.generate(requested, seed=7), requested)
    print_verdict(verdict)
    return verdict


if __name__ == "__main__":
    main()
