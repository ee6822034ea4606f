"""What the generative examples share: the data, image grids (matplotlib, the optional
``examples`` extra) and the judge of generated digits (the CNN of ``examples/cnn.py``)."""

import os
import time

import numpy as np

from xpnet import keras


def load(data):
    """((x_train, y_train), (x_test, y_test)): images (n, rows, cols, 1) float32 in [0, 1].
    The embedded 8x8 digits by default; MNIST from the IDX files in ``data`` (with only the
    t10k files, the first 8,000 train and the last 2,000 test)."""
    import cnn

    return cnn.load(data)


def gan_arguments(parser, data_epochs):
    """The arguments both GAN examples take; ``--epochs`` defaults to ``data_epochs`` on
    MNIST (``--data``) and 30 on the embedded digits."""
    parser.add_argument("--data", help="directory with MNIST IDX files (default: digits)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"default {data_epochs} with --data, else 30")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--latent-dim", type=int, default=64)
    parser.add_argument("--small", action="store_true", help="half the filters (the models "
                        "the figures in benchmarks/RESULTS.md come from)")
    parser.add_argument("--judge-epochs", type=int, default=3)
    parser.add_argument("--judge-weights", help="load the judge from this file if it "
                        "exists, else train it and save it there")
    parser.add_argument("--judge-every", type=int, default=0, metavar="N",
                        help="also judge the generator after every N epochs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--judge-only", action="store_true", help="skip training: judge "
                        "the generator weights an earlier run saved in --out")
    parser.add_argument("--out", default="gan_out", help="folder for the PNG grids")
    parser.set_defaults(data_epochs=data_epochs)


def gan_epochs(args):
    return args.epochs or (args.data_epochs if args.data else 30)


def save_grid(images, path, ncols=10, titles=None):
    """Save ``images`` (n, rows, cols, 1) in [0, 1] as one PNG grid; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.8, nrows * 0.8))
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k][..., 0], cmap="gray_r", vmin=0.0, vmax=1.0)
            if titles is not None:
                ax.set_title(str(titles[k]), fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def train_judge(x_train, y_train, epochs=3, seed=0, weights=None):
    """The CNN of ``examples/cnn.py`` trained on the real training images (or, when the
    file ``weights`` exists, loaded from it; a trained judge is saved there)."""
    import cnn

    keras.utils.set_random_seed(seed)
    judge = cnn.build_model(x_train.shape[1:])
    if weights and os.path.exists(weights):
        judge.load_weights(weights)
        return judge
    judge.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    start = time.perf_counter()
    judge.fit(x_train, y_train, epochs=epochs, batch_size=64, verbose=0)
    print(f"judge: {epochs} epochs in {time.perf_counter() - start:.1f} s")
    if weights:
        judge.save_weights(weights)
    return judge


def judge_samples(judge, images, requested=None):
    """The judge's verdict on generated ``images``: mean top-class probability, the share
    of each class, and (given the ``requested`` labels) the agreement with them."""
    probs = judge.predict(images, batch_size=500, verbose=0)
    top = probs.argmax(axis=1)
    out = {"mean_top_probability": float(probs.max(axis=1).mean()),
           "class_shares": np.bincount(top, minlength=10) / len(top)}
    if requested is not None:
        out["agreement"] = float((top == np.asarray(requested)).mean())
    return out


def print_verdict(verdict):
    shares = " ".join(f"{s:.3f}" for s in verdict["class_shares"])
    print(f"judge on {'generated'} digits: mean top-class probability "
          f"{verdict['mean_top_probability']:.3f}; class shares [{shares}] "
          f"(min {verdict['class_shares'].min():.3f})")
    if "agreement" in verdict:
        print(f"judge agrees with the requested label: {verdict['agreement']:.3f}")
