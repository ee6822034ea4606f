"""The static path before and after a change: the seed MLP (784-64-64-10, Adam, batch 32)
and the MNIST CNN of ``benchmarks/conv.py`` (batch 64), trained by two source trees in
alternating subprocesses on the same data.

    python benchmarks/before_after.py OLD_TREE NEW_TREE [--rounds 4] [--epochs 3]

Each round runs each tree once per model in its own process and records the median epoch
time of epochs 2..N; prints medians, spreads and the per-round ratio NEW/OLD.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from common import mnist_split
from xpnet import keras
kind, epochs = sys.argv[3], int(sys.argv[4])
flat = kind == "mlp"
(x, y), _ = mnist_split(flat=flat)
keras.utils.set_random_seed(0)
if flat:
    model = keras.Sequential([keras.layers.Dense(64, activation="relu", input_shape=(784,)),
                              keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], backend="cpu")
    batch = 32
else:
    x = x.reshape(-1, 28, 28, 1)
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                              keras.layers.Conv2D(32, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2),
                              keras.layers.Conv2D(64, 3, activation="relu"),
                              keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")], backend="cpu")
    batch = 64
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
times = []
for _ in range(epochs):
    t = time.perf_counter()
    model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
    times.append(time.perf_counter() - t)
print(json.dumps(sorted(times[1:])[len(times[1:]) // 2]))
"""


def run(tree, kind, epochs):
    bench = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", WORKER, bench, tree, kind, str(epochs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--models", default="mlp,cnn")
    args = parser.parse_args()
    for kind in args.models.split(","):
        old, new = [], []
        for r in range(args.rounds):
            pair = [(args.old, old), (args.new, new)]
            for tree, acc in (pair if r % 2 == 0 else pair[::-1]):
                acc.append(run(os.path.abspath(tree), kind, args.epochs))
        ratios = [b / a for a, b in zip(old, new)]
        print(f"{kind}: old {statistics.median(old):.4f} [{min(old):.4f}-{max(old):.4f}] s/epoch,"
              f" new {statistics.median(new):.4f} [{min(new):.4f}-{max(new):.4f}],"
              f" new/old {statistics.median(ratios):.3f} [{min(ratios):.3f}-{max(ratios):.3f}]")


if __name__ == "__main__":
    main()
