"""The classic Keras example on xpnet: a 64-64-10 dense network trained with Adam.

    python examples/mlp.py                       # the embedded UCI digits (8x8)
    python examples/mlp.py --data DIR            # MNIST IDX files in DIR
    python examples/mlp.py --backend cuda        # on the GPU, through CuPy

With only the test half of MNIST in DIR (t10k-*), its first 8,000 images train and the
last 2,000 test.
"""

import argparse
import time

from xpnet import keras


def load(data):
    if data is None:
        (x_train, y_train), (x_test, y_test) = keras.datasets.load_digits()
        scale = 16.0
    else:
        (x_train, y_train), (x_test, y_test) = keras.datasets.load_mnist_split(data)
        scale = 255.0
    flat = x_train.shape[1] * x_train.shape[2]
    return ((x_train.reshape(-1, flat) / scale).astype("float32"), y_train,
            (x_test.reshape(-1, flat) / scale).astype("float32"), y_test)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", help="directory with MNIST IDX files (default: digits)")
    parser.add_argument("--backend", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x_train, y_train, x_test, y_test = load(args.data)
    epochs = args.epochs or (5 if args.data else 20)
    keras.utils.set_random_seed(args.seed)

    model = keras.Sequential([
        keras.layers.Dense(64, activation="relu", input_shape=(x_train.shape[1],)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], backend=args.backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    model.fit(x_train, y_train, epochs=epochs, batch_size=args.batch_size, verbose=2)
    took = time.perf_counter() - start
    predictions = model.predict(x_test)
    accuracy = float((predictions.argmax(axis=1) == y_test).mean())
    print(f"backend {model.backend.name}: {epochs} epochs in {took:.2f} s "
          f"({took / epochs:.3f} s/epoch)")
    print(f"test accuracy: {accuracy:.4f}")


if __name__ == "__main__":
    main()
