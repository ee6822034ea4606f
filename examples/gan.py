"""A DCGAN on digits, trained two ways, in the Keras API on xpnet.

    python examples/gan.py                          # the embedded 8x8 digits
    python examples/gan.py --data DIR               # MNIST IDX files in DIR
    python examples/gan.py --data DIR --recipe classic

``--recipe train_step`` (the default) is Keras 3's DCGAN example: a ``GAN`` model whose
overridden ``train_step`` steps the discriminator and then the generator, each with its own
optimizer and ``xpnet.GradientTape`` (``xpnet.applications_gan.GAN``).

``--recipe classic`` is the older recipe: the discriminator is compiled and trained on its
own; a combined model ``discriminator(generator(z))`` is compiled after
``discriminator.trainable = False``; the loop alternates ``discriminator.train_on_batch``
and ``combined.train_on_batch``. Freezing behaves as in Keras 3 on TensorFlow: a model
captures its trainable weights when its training function is first built (its first
``fit``/``train_on_batch`` after ``compile``). So the discriminator takes one step BEFORE the
flag is set: it keeps training through its own ``train_on_batch``, while the combined model
(first trained after the flag was set) moves only the generator. A discriminator first
trained after ``trainable = False`` would not train at all.

In both recipes the discriminator ends with ProGAN's minibatch standard deviation
(``dcgan_discriminator(minibatch_std=True)``, ``xpnet.applications_gan.MinibatchStdDev``;
``--no-minibatch-std`` leaves it out, as Keras's example): one more feature channel holding
how much each group of 4 images differs, so that a batch of too-similar fakes is easy to
spot (against mode collapse).

After training, a judge (the CNN of ``examples/cnn.py`` trained on the real training
images) labels 1,000 generated digits: the mean top-class probability says how digit-like
they are, the share of each class whether the generator collapsed onto a few modes
(``--judge-every N`` also after every N epochs). Sample grids are written as PNG after each
epoch (matplotlib). The figures in benchmarks/RESULTS.md come from ``--data DIR --small
--judge-weights /tmp/judge.h5`` (batch 32 and, with ``--data``, 40 epochs are the
defaults): after 40 epochs (10,000 steps)
the mean top-class probability is >= 0.8 and every class gets >= 5 % of the samples on the
three seeds tried, narrowly (the rarest class, 8 or 5, at 5.4-5.6 %; at 35 epochs two seeds
were still at 4.8 %).
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


def models(image_shape, args):
    g_filters, d_filters = ((32, 16), (16, 32)) if args.small else ((64, 32), (32, 64))
    generator = applications_gan.dcgan_generator(args.latent_dim, image_shape, g_filters)
    discriminator = applications_gan.dcgan_discriminator(
        image_shape, d_filters, minibatch_std=args.minibatch_std)
    return generator, discriminator


def adam():
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


def train_step_recipe(x, args, sample):
    generator, discriminator = models(x.shape[1:], args)
    gan = applications_gan.GAN(discriminator, generator, args.latent_dim, seed=args.seed)
    gan.compile(d_optimizer=adam(), g_optimizer=adam(),
                loss_fn=keras.losses.BinaryCrossentropy())
    times = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        logs = gan.fit(x, epochs=1, batch_size=args.batch_size, verbose=0).history
        times.append(time.perf_counter() - start)
        print(f"epoch {epoch + 1}/{args.epochs}: d_loss {logs['d_loss'][0]:.4f} "
              f"g_loss {logs['g_loss'][0]:.4f} ({times[-1]:.1f} s)")
        sample(generator, epoch)
    return generator, times


def classic_recipe(x, args, sample):
    generator, discriminator = models(x.shape[1:], args)
    rng = np.random.default_rng(args.seed)
    half = args.batch_size // 2
    discriminator.compile(optimizer=adam(), loss="binary_crossentropy")

    def d_batch(real):
        z = rng.standard_normal((len(real), args.latent_dim)).astype("float32")
        fake = keras.ops.convert_to_numpy(generator(z, training=True))
        labels = np.concatenate([np.ones((len(real), 1)), np.zeros((len(real), 1))])
        return np.concatenate([real, fake]), labels.astype("float32")

    # The discriminator's first step builds its training function with all its weights...
    discriminator.train_on_batch(*d_batch(x[:half]))
    # ...so freezing it now affects only models compiled and first trained from here on.
    discriminator.trainable = False
    z_in = keras.Input(shape=(args.latent_dim,))
    combined = keras.Model(z_in, discriminator(generator(z_in)), name="combined")
    combined.compile(optimizer=adam(), loss="binary_crossentropy")
    times = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        order = rng.permutation(len(x))
        d_losses, g_losses = [], []
        for k in range(0, len(x) - half + 1, half):
            d_losses.append(discriminator.train_on_batch(*d_batch(x[order[k:k + half]])))
            z = rng.standard_normal((args.batch_size, args.latent_dim)).astype("float32")
            g_losses.append(combined.train_on_batch(z, np.ones((args.batch_size, 1),
                                                               "float32")))
        times.append(time.perf_counter() - start)
        print(f"epoch {epoch + 1}/{args.epochs}: d_loss {np.mean(d_losses):.4f} "
              f"g_loss {np.mean(g_losses):.4f} ({times[-1]:.1f} s)")
        sample(generator, epoch)
    return generator, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    gan_arguments(parser, data_epochs=40)
    parser.add_argument("--recipe", choices=["train_step", "classic"], default="train_step")
    parser.add_argument("--minibatch-std", action=argparse.BooleanOptionalAction,
                        default=True, help="a MinibatchStdDev channel in the "
                        "discriminator (ProGAN's trick against mode collapse)")
    args = parser.parse_args(argv)
    args.epochs = gan_epochs(args)

    (x_train, y_train), _ = load(args.data)
    judge_model = train_judge(x_train, y_train, args.judge_epochs, weights=args.judge_weights)
    keras.utils.set_random_seed(args.seed)
    z_grid = np.random.default_rng(123).standard_normal((100, args.latent_dim))
    z_grid = z_grid.astype("float32")

    def sample(generator, epoch):
        images = generator.predict(z_grid, verbose=0)
        path = save_grid(images, os.path.join(args.out, f"{args.recipe}_epoch{epoch + 1}.png"))
        generator.save_weights(os.path.join(args.out, f"{args.recipe}_generator.weights.h5"))
        if epoch + 1 == args.epochs:
            print(f"samples written to {path}")
        elif args.judge_every and (epoch + 1) % args.judge_every == 0:
            judge(generator, judge_model, args)

    if args.judge_only:
        generator, _ = models(x_train.shape[1:], args)
        generator.load_weights(os.path.join(args.out, f"{args.recipe}_generator.weights.h5"))
        return judge(generator, judge_model, args), []
    recipe = train_step_recipe if args.recipe == "train_step" else classic_recipe
    generator, times = recipe(x_train, args, sample)
    later = sorted(times[1:] or times)
    print(f"{args.recipe}: {args.epochs} epochs, {later[len(later) // 2]:.1f} s per epoch "
          f"(median after the first)")
    return judge(generator, judge_model, args), times


def judge(generator, judge_model, args):
    """The judge's verdict on 1,000 digits from ``generator``."""
    z = np.random.default_rng(7).standard_normal((1000, args.latent_dim)).astype("float32")
    verdict = judge_samples(judge_model, generator.predict(z, verbose=0))
    print_verdict(verdict)
    return verdict


if __name__ == "__main__":
    main()
