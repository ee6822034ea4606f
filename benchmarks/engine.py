"""The define-by-run engine's cost: the seed MLP (784-64-64-10, Adam, batch 32, MNIST split)
as a static Sequential, as a subclassed model whose ``call`` chains the layers (trained by
``fit`` through the tape), and with a custom ``train_step`` written with the tape, side by
side in one run.

    python benchmarks/engine.py [--epochs 4] [--rounds 3] [--json out]

Each round trains a fresh model of each kind for ``--epochs`` epochs and records the median
epoch time of epochs 2..N; rounds alternate the kinds. Reports medians, spreads, and each
kind's ratio to the static path.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fmt  # noqa: E402
from common import mnist_split  # noqa: E402
from common import summarize  # noqa: E402
from common import write_json  # noqa: E402


def make(kind, seed):
    import xpnet
    from xpnet import keras
    from xpnet.keras import layers

    keras.utils.set_random_seed(seed)
    if kind == "static":
        return keras.Sequential([layers.Dense(64, activation="relu", input_shape=(784,)),
                                 layers.Dense(64, activation="relu"),
                                 layers.Dense(10, activation="softmax")], backend="cpu")

    class MLP(keras.Model):
        def __init__(self):
            super().__init__(backend="cpu")
            self.d1 = layers.Dense(64, activation="relu")
            self.d2 = layers.Dense(64, activation="relu")
            self.d3 = layers.Dense(10, activation="softmax")

        def call(self, x):
            return self.d3(self.d2(self.d1(x)))

    class TapeStep(MLP):
        def train_step(self, data):
            x, y = data
            with xpnet.GradientTape() as tape:
                y_pred = self(x, training=True)
                loss = self.compute_loss(y=y, y_pred=y_pred)
            grads = tape.gradient(loss, self.trainable_weights)
            self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
            return self.compute_metrics(x, y, y_pred)

    return MLP() if kind == "subclassed" else TapeStep()


def run(kind, data, epochs, batch, seed):
    (x, y), (xt, yt) = data
    model = make(kind, seed)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        times.append(time.perf_counter() - start)
    acc = float((model.predict(xt, verbose=0).argmax(1) == yt).mean())
    return times, acc


KINDS = ("static", "subclassed", "tape_step")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--json")
    args = parser.parse_args()
    data = mnist_split()
    per_round = {k: [] for k in KINDS}
    accs = {k: [] for k in KINDS}
    for r in range(args.rounds):
        order = KINDS if r % 2 == 0 else KINDS[::-1]
        for kind in order:
            times, acc = run(kind, data, args.epochs, args.batch, seed=r)
            per_round[kind].append(sorted(times[1:])[len(times[1:]) // 2])
            accs[kind].append(acc)
    result = {}
    for kind in KINDS:
        s = summarize(per_round[kind])
        ratios = summarize([a / b for a, b in zip(per_round[kind], per_round["static"])])
        result[kind] = {"s_per_epoch": s, "ratio_to_static": ratios,
                        "test_accuracy": summarize(accs[kind])}
        print(f"{kind:11s} {fmt(s)} s/epoch   x static {fmt(ratios)}   "
              f"acc {fmt(summarize(accs[kind]))}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
