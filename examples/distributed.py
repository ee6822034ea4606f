"""Data-parallel training: the same program on one process or on N under ``mpiexec``.

    python examples/distributed.py                  # one process
    mpiexec -n 2 python examples/distributed.py     # two processes, the same trajectory

``batch_size`` is the global batch: each process trains on its slice of every batch and the
gradients are summed over the processes, so both commands print the same losses (to
rounding). Rank 0 alone prints the progress and writes the saved model.
"""

import os
import tempfile

from xpnet import distributed  # keras.distribution, once xpnet.keras exposes it
from xpnet import keras

distributed.set_distribution(distributed.DataParallel())
keras.utils.set_random_seed(0)

(x_train, y_train), (x_test, y_test) = keras.datasets.load_digits()
x_train = x_train.reshape(len(x_train), -1).astype("float32") / 16.0
x_test = x_test.reshape(len(x_test), -1).astype("float32") / 16.0

model = keras.Sequential([
    keras.Input(shape=(64,)),
    keras.layers.Dense(128, activation="relu"),
    keras.layers.BatchNormalization(synchronized=True),
    keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, batch_size=64, epochs=5, verbose=2)
loss, acc = model.evaluate(x_test, y_test, verbose=0)
path = os.path.join(tempfile.gettempdir(), "xpnet-distributed-example.xpnet")
model.save(path)  # every process calls it; rank 0 writes
if distributed.process_id() == 0:
    print(f"{distributed.num_processes()} process(es): test accuracy {acc:.4f} "
          f"(loss {loss:.4f}), saved {path}")
