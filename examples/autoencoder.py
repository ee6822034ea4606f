"""Autoencoders on digits in the Keras API on xpnet: dense, convolutional and denoising.

    python examples/autoencoder.py                  # the embedded 8x8 digits
    python examples/autoencoder.py --data DIR       # MNIST IDX files in DIR

Each kind (``xpnet.applications_generative``) trains with ``compile(loss="mse")`` and
``fit(x, x)``; the example prints the reconstruction MSE on the test images. The denoising
one (Gaussian noise on its input, in training only) cleans noisy test images; the example
prints the PSNR of the noisy input and of its output. A logistic regression (scikit-learn)
on the convolutional autoencoder's codes says how much of the class they keep. The
reconstructions are written as one PNG (matplotlib).
"""

import argparse
import os
import time

import numpy as np
from generative_common import load
from generative_common import save_grid

from xpnet import applications_generative as gen
from xpnet import keras


def psnr(clean, other):
    """Peak signal-to-noise ratio in dB for images in [0, 1]: 10 log10(1 / MSE)."""
    return float(10.0 * np.log10(1.0 / np.mean((clean - other) ** 2)))


def train(kind, x_train, args):
    builders = {"dense": lambda: gen.dense_autoencoder(x_train.shape[1:], args.latent_dim),
                "conv": lambda: gen.conv_autoencoder(x_train.shape[1:], args.latent_dim),
                "denoising": lambda: gen.denoising_autoencoder(
                    x_train.shape[1:], args.latent_dim, noise_stddev=args.noise)}
    keras.utils.set_random_seed(args.seed)
    autoencoder, encoder, decoder = builders[kind]()
    autoencoder.compile(optimizer="adam", loss="mse")
    start = time.perf_counter()
    autoencoder.fit(x_train, x_train, epochs=args.epochs, batch_size=args.batch_size,
                    verbose=0)
    seconds = (time.perf_counter() - start) / args.epochs
    return autoencoder, encoder, decoder, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="directory with MNIST IDX files (default: digits)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latent-dim", type=int, default=32)
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="autoencoder_out", help="folder for the PNG")
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (8 if args.data else 30)

    (x_train, y_train), (x_test, y_test) = load(args.data)
    rng = np.random.default_rng(args.seed)
    noisy = np.clip(x_test + args.noise * rng.standard_normal(x_test.shape), 0, 1)
    noisy = noisy.astype("float32")
    results, rows = {}, [x_test[:10]]
    for kind in ("dense", "conv", "denoising"):
        autoencoder, encoder, decoder, seconds = train(kind, x_train, args)
        out = autoencoder.predict(x_test, verbose=0)
        results[kind] = {"mse": float(np.mean((out - x_test) ** 2)), "s_per_epoch": seconds}
        print(f"{kind}: test reconstruction MSE {results[kind]['mse']:.5f} "
              f"({args.epochs} epochs, {seconds:.2f} s per epoch)")
        rows.append(out[:10])
        if kind == "conv":
            from sklearn.linear_model import LogisticRegression
            from sklearn.preprocessing import StandardScaler

            scaler = StandardScaler().fit(encoder.predict(x_train, verbose=0))
            clf = LogisticRegression(max_iter=2000)
            clf.fit(scaler.transform(encoder.predict(x_train, verbose=0)), y_train)
            acc = clf.score(scaler.transform(encoder.predict(x_test, verbose=0)), y_test)
            results["codes_accuracy"] = float(acc)
            print(f"logistic regression on the conv autoencoder's {args.latent_dim}-d codes: "
                  f"test accuracy {acc:.4f}")
        if kind == "denoising":
            cleaned = decoder.predict(encoder.predict(noisy, verbose=0), verbose=0)
            before, after = psnr(x_test, noisy), psnr(x_test, cleaned)
            results["psnr"] = (before, after)
            print(f"denoising: PSNR of the noisy test images {before:.2f} dB, after the "
                  f"autoencoder {after:.2f} dB (gain {after - before:.2f} dB)")
            rows += [noisy[:10], cleaned[:10]]
    path = save_grid(np.concatenate(rows), os.path.join(args.out, "reconstructions.png"))
    print(f"reconstructions written to {path} (rows: test images, dense, conv, denoising; "
          "noisy inputs, denoised)")
    return results


if __name__ == "__main__":
    main()
