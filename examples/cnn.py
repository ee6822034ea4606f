"""A LeNet-style convolutional network in the Keras API, on xpnet.

    python examples/cnn.py                       # the embedded UCI digits (8x8)
    python examples/cnn.py --data DIR            # MNIST IDX files in DIR
    python examples/cnn.py --backend cuda        # on the GPU, through CuPy

The network is Conv2D(32, 3, relu) > MaxPooling2D > Conv2D(64, 3, relu) > MaxPooling2D >
Flatten > Dense(128, relu) > Dense(10, softmax), trained with Adam at batch 64. On 8x8
digits the convolutions pad ("same") so that two poolings still fit.

With only the test half of MNIST in DIR (t10k-*), its first 8,000 images train and the last
2,000 test; there 7 epochs reach 98.35-98.55 % test accuracy (seeds 0-3; benchmarks/RESULTS.md,
"Convolutions").
"""

import argparse
import time

from xpnet import keras


def load(data):
    """((x_train, y_train), (x_test, y_test)) as (n, rows, cols, 1) float32 in [0, 1]."""
    if data is None:
        (x_train, y_train), (x_test, y_test) = keras.datasets.load_digits()
        scale = 16.0
    else:
        (x_train, y_train), (x_test, y_test) = keras.datasets.load_mnist_split(data)
        scale = 255.0
    x_train = (x_train.reshape(x_train.shape[:3] + (1,)) / scale).astype("float32")
    x_test = (x_test.reshape(x_test.shape[:3] + (1,)) / scale).astype("float32")
    return (x_train, y_train), (x_test, y_test)


def build_model(input_shape, backend="auto"):
    padding = "same" if min(input_shape[:2]) < 16 else "valid"
    return keras.Sequential([
        keras.Input(shape=input_shape),
        keras.layers.Conv2D(32, 3, padding=padding, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, padding=padding, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], backend=backend)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="directory with MNIST IDX files (default: digits)")
    parser.add_argument("--backend", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    (x_train, y_train), (x_test, y_test) = load(args.data)
    epochs = args.epochs or (7 if args.data else 15)
    keras.utils.set_random_seed(args.seed)
    model = build_model(x_train.shape[1:], args.backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    if not args.quiet:
        model.summary()
    times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.fit(x_train, y_train, epochs=1, batch_size=args.batch_size, verbose=0)
        model.backend.synchronize()
        times.append(time.perf_counter() - start)
        if not args.quiet:
            print(f"epoch {epoch + 1}/{epochs}: {times[-1]:.2f} s")
    accuracy = float((model.predict(x_test, batch_size=500, verbose=0).argmax(axis=1)
                      == y_test).mean())
    later = sorted(times[1:] or times)
    print(f"backend {model.backend.name}: {epochs} epochs, {later[len(later) // 2]:.2f} s per "
          f"epoch (median after the first; first {times[0]:.2f} s)")
    print(f"test accuracy: {accuracy:.4f}")
    return accuracy, times


if __name__ == "__main__":
    main()
