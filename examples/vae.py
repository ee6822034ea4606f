"""A variational autoencoder on digits, as Keras's own VAE example, on xpnet.

    python examples/vae.py                          # the embedded 8x8 digits
    python examples/vae.py --data DIR               # MNIST IDX files in DIR

The encoder (stride-2 Conv2D(32), Conv2D(64), Dense(16)) outputs ``z_mean`` and
``z_log_var`` of a 2-D latent code and ``z`` from a ``Sampling`` layer (the
reparameterisation trick); the decoder mirrors it with Conv2DTranspose. The ``VAE`` model's
``train_step`` minimises the reconstruction term (binary cross-entropy summed over pixels)
plus the KL divergence to N(0, I) under ``xpnet.GradientTape``
(``xpnet.applications_generative``). Each epoch prints the test negative ELBO with its two
terms. Two pictures (matplotlib): digits decoded from a grid over the latent plane, and the
test digits' latent means coloured by class.
"""

import argparse
import os
import time

import numpy as np
from generative_common import load
from generative_common import save_grid

from xpnet import applications_generative as gen
from xpnet import keras


def plot_latent_means(z_mean, labels, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(z_mean[:, 0], z_mean[:, 1], c=labels, cmap="tab10", s=4)
    fig.colorbar(points, ax=ax, ticks=range(10))
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def latent_grid(decoder, n=15, scale=2.0):
    """Decoded digits over an ``n x n`` grid of latent points in [-scale, scale]^2 (the top
    row at the largest z[1], as Keras's example draws it)."""
    xs = np.linspace(-scale, scale, n)
    ys = np.linspace(-scale, scale, n)[::-1]
    z = np.array([[x, y] for y in ys for x in xs], dtype="float32")
    return decoder.predict(z, verbose=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="directory with MNIST IDX files (default: digits)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="vae_out", help="folder for the PNGs")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (10 if args.data else 40)

    (x_train, _), (x_test, y_test) = load(args.data)
    keras.utils.set_random_seed(args.seed)
    latent_dim = 2
    encoder = gen.vae_encoder(x_train.shape[1:], latent_dim)
    decoder = gen.vae_decoder(latent_dim, x_train.shape[1:])
    vae = gen.VAE(encoder, decoder)
    vae.compile(optimizer=keras.optimizers.Adam())
    history, times = [], []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        train = vae.fit(x_train, epochs=1, batch_size=args.batch_size, verbose=0).history
        times.append(time.perf_counter() - start)
        test = vae.evaluate(x_test, batch_size=500, verbose=0, return_dict=True)
        history.append(test)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {train['total_loss'][0]:.2f}; "
              f"test -ELBO {test['total_loss']:.2f} = reconstruction "
              f"{test['reconstruction_loss']:.2f} + KL {test['kl_loss']:.2f} "
              f"({times[-1]:.1f} s)")
    later = sorted(times[1:] or times)
    print(f"VAE: {args.epochs} epochs, {later[len(later) // 2]:.1f} s per epoch "
          "(median after the first)")
    os.makedirs(args.out, exist_ok=True)
    grid = save_grid(latent_grid(decoder), os.path.join(args.out, "vae_latent_grid.png"),
                     ncols=15)
    z_mean = encoder.predict(x_test, verbose=0)[0]
    means = plot_latent_means(z_mean, y_test, os.path.join(args.out, "vae_latent_means.png"))
    print(f"latent grid written to {grid}; latent means by class written to {means}")
    return history, times


if __name__ == "__main__":
    main()
