"""A conditional GAN on digits in the Keras API on xpnet: ask for a class, get that digit.

    python examples/conditional_gan.py              # the embedded 8x8 digits
    python examples/conditional_gan.py --data DIR   # MNIST IDX files in DIR

As Keras 3's conditional GAN example (``xpnet.applications_gan.ConditionalGAN``): the
generator's input is a latent vector with the one-hot class appended; the discriminator sees
the image with ten constant channels holding the one-hot class. ``train_step`` steps both
with their own optimizers and ``xpnet.GradientTape``. After training, the judge (the CNN of
``examples/cnn.py`` trained on the real images) labels 1,000 generated digits, 100 per
requested class, and the example prints how often it agrees with the request. A grid with
one row per class is written as PNG after each epoch.
"""

import argparse
import os
import time

import numpy as np
from generative_common import judge_samples
from generative_common import load
from generative_common import print_verdict
from generative_common import save_grid
from generative_common import train_judge

from xpnet import applications_gan
from xpnet import keras


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="directory with MNIST IDX files (default: digits)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--judge-epochs", type=int, default=3)
    parser.add_argument("--judge-weights", help="load the judge from this file if it "
                        "exists, else train it and save it there")
    parser.add_argument("--small", action="store_true", help="half the filters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge-only", action="store_true", help="skip training: judge "
                        "the generator weights an earlier run saved in --out")
    parser.add_argument("--out", default="gan_out", help="folder for the PNG grids")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (10 if args.data else 30)

    (x_train, y_train), _ = load(args.data)
    keras.utils.set_random_seed(args.seed)
    classes = 10
    shape = x_train.shape[1:]
    g_filters, d_filters = ((32, 16), (16, 32)) if args.small else ((64, 32), (32, 64))
    generator = applications_gan.dcgan_generator(args.latent_dim + classes, shape, g_filters)
    discriminator = applications_gan.dcgan_discriminator(shape[:2] + (1 + classes,),
                                                         d_filters)
    gan = applications_gan.ConditionalGAN(discriminator, generator, args.latent_dim,
                                          num_classes=classes, seed=args.seed)
    gan.compile(d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                loss_fn=keras.losses.BinaryCrossentropy())
    if args.judge_only:
        generator.load_weights(os.path.join(args.out, "conditional_generator.weights.h5"))
        return judge(gan, x_train, y_train, args), []
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
    print(f"samples written to {path} (row k: class k)")
    later = sorted(times[1:] or times)
    print(f"conditional GAN: {args.epochs} epochs, {later[len(later) // 2]:.1f} s per epoch "
          f"(median after the first)")
    return judge(gan, x_train, y_train, args), times


def judge(gan, x_train, y_train, args):
    """The judge's verdict on 1,000 generated digits, 100 per requested class."""
    judge_model = train_judge(x_train, y_train, args.judge_epochs, weights=args.judge_weights)
    requested = np.repeat(np.arange(gan.num_classes), 100)
    verdict = judge_samples(judge_model, gan.generate(requested, seed=7), requested)
    print_verdict(verdict)
    return verdict


if __name__ == "__main__":
    main()
