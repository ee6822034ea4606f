"""Overfitting and its cures: a deliberately too-wide network, then the same network with
Dropout, with L2 weight penalties, and with EarlyStopping that restores the best epoch.

    python examples/regularization.py                  # MNIST test set in ../shared/data/mnist
    python examples/regularization.py --data DIR       # MNIST IDX files in DIR
    python examples/regularization.py --digits         # the embedded UCI digits (8x8)
    python examples/regularization.py --plot curves.png --epochs 40

The MNIST test set is split as the benchmarks split it: its first 8,000 images train (the
last 1,600 of those validate, for the curves and for EarlyStopping) and its last 2,000
test. Prints a table of train and test accuracy and cross-entropy, and their gaps, and,
where matplotlib is installed (``pip install 'xpnet[examples]'``), saves the training
curves beside it.
"""

import argparse
import os
import time

import numpy as np

from xpnet import keras

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.environ.get("XPNET_MNIST", os.path.join(HERE, "..", "..", "shared", "data", "mnist"))


def load(args):
    if args.digits or not os.path.exists(os.path.join(args.data, "t10k-images-idx3-ubyte.gz")):
        (x, y), (xt, yt) = keras.datasets.load_digits()
        x, xt = x.reshape(len(x), -1) / 16.0, xt.reshape(len(xt), -1) / 16.0
        name = "UCI digits (embedded)"
    else:
        images, labels = keras.datasets.load_mnist(args.data, subset="test")
        images = images.reshape(len(images), -1) / 255.0
        (x, y), (xt, yt) = (images[:8000], labels[:8000]), (images[8000:], labels[8000:])
        name = "MNIST test set: first 8,000 train, last 2,000 test"
    cut = int(len(x) * 0.8)
    f32 = np.float32
    return name, (x[:cut].astype(f32), y[:cut].astype(np.int64)), \
        (x[cut:].astype(f32), y[cut:].astype(np.int64)), (xt.astype(f32), yt.astype(np.int64))


def build(n_in, width, depth, dropout=0.0, l2=0.0, backend="auto"):
    """``depth`` hidden layers of ``width`` ReLU units: far more capacity than the data
    needs, so without help it memorises the training set."""
    reg = keras.regularizers.L2(l2) if l2 else None
    stack = [keras.Input(shape=(n_in,))]
    for _ in range(depth):
        stack.append(keras.layers.Dense(width, activation="relu", kernel_regularizer=reg))
        if dropout:
            stack.append(keras.layers.Dropout(dropout))
    stack.append(keras.layers.Dense(10, activation="softmax", kernel_regularizer=reg))
    model = keras.Sequential(stack, backend=backend)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def scores(model, x, y):
    """Accuracy and cross-entropy, without the L2 penalty that ``evaluate`` adds."""
    p = np.clip(model.predict(x, batch_size=512, verbose=0), 1e-7, 1.0)
    return float((p.argmax(1) == y).mean()), float(-np.log(p[np.arange(len(y)), y]).mean())


def run(args):
    name, (x, y), (xv, yv), (xt, yt) = load(args)
    print(f"data: {name}; train {len(x)}, validation {len(xv)}, test {len(xt)}")
    variants = [
        ("plain", {}, None),
        (f"Dropout({args.dropout})", {"dropout": args.dropout}, None),
        (f"L2({args.l2:g})", {"l2": args.l2}, None),
        ("EarlyStopping", {}, keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=args.patience, restore_best_weights=True)),
    ]
    rows, curves = [], {}
    for label, kwargs, stopper in variants:
        keras.utils.set_random_seed(args.seed)
        model = build(x.shape[1], args.width, args.depth, backend=args.backend, **kwargs)
        start = time.perf_counter()
        history = model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                            validation_data=(xv, yv), callbacks=[stopper] if stopper else [])
        took = time.perf_counter() - start
        (tr_acc, tr_ce), (te_acc, te_ce) = scores(model, x, y), scores(model, xt, yt)
        note = ""
        if stopper is not None:
            ran = len(history.history["loss"])
            note = f"stopped after epoch {ran}, restored epoch {stopper.best_epoch + 1}"
        rows.append((label, tr_acc, te_acc, tr_ce, te_ce, took, note))
        curves[label] = history.history
    print(f"\n{args.depth} x {args.width} ReLU, Adam 1e-3, batch {args.batch_size}, "
          f"up to {args.epochs} epochs, seed {args.seed}")
    header = f"{'model':<16}{'train acc':>10}{'test acc':>10}{'acc gap':>9}" \
             f"{'train CE':>10}{'test CE':>9}{'CE gap':>8}{'time s':>8}"
    print(header)
    print("-" * len(header))
    for label, tr_acc, te_acc, tr_ce, te_ce, took, note in rows:
        print(f"{label:<16}{tr_acc:>10.4f}{te_acc:>10.4f}{tr_acc - te_acc:>9.4f}"
              f"{tr_ce:>10.4f}{te_ce:>9.4f}{te_ce - tr_ce:>8.4f}{took:>8.1f}  {note}")
    if args.plot:
        plot(curves, args.plot)


def plot(curves, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'xpnet[examples]'): no plot")
        return
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (label, h), color in zip(curves.items(), ["C0", "C1", "C2", "C3"]):
        epochs = np.arange(1, len(h["loss"]) + 1)
        axes[0].plot(epochs, h["loss"], color=color, linestyle="--", label=f"{label} train")
        axes[0].plot(epochs, h["val_loss"], color=color, label=f"{label} validation")
        axes[1].plot(epochs, h["accuracy"], color=color, linestyle="--")
        axes[1].plot(epochs, h["val_accuracy"], color=color)
    axes[0].set(xlabel="epoch", ylabel="loss (with penalties)", yscale="log",
                title="loss: train dashed, validation solid")
    axes[1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"training curves saved to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=MNIST, help="directory with the MNIST test set")
    parser.add_argument("--digits", action="store_true", help="use the embedded digits")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--l2", type=float, default=5e-5)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="regularization.png",
                        help="where to save the curves ('' for none)")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
