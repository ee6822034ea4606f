"""Scenarios that tests/test_distributed.py runs in one process and under ``mpiexec -n N``.

    python tests/distributed_cases.py OUT_DIR [CASE]

Every case trains a float64 model from a fixed seed on fixed data and, on rank 0, writes its
final weights and logs to ``OUT_DIR/<case>.npz``; the test compares them across process
counts. CASE ``fault-*`` are the fault scenarios (a rank raises, dies, or hangs).
"""

import json
import os
import sys
import time

import numpy as np

from xpnet import distributed
from xpnet import keras
from xpnet.utils import set_random_seed

OUT = sys.argv[1]
CASE = sys.argv[2] if len(sys.argv) > 2 else "all"
# small buckets, so that the dense models have several and overlap can be seen
distributed.set_distribution(distributed.DataParallel(bucket_mb=1e-4))
RANK, SIZE = distributed.process_id(), distributed.num_processes()
F64 = {"dtype": "float64"}
SYNC_BN = True


def data(n, shape, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape), rng.integers(0, classes, n)


def dense(regularized=False, dropout=0.0):
    reg = keras.regularizers.L2(1e-3) if regularized else None
    layers = [keras.Input(shape=(8,), dtype="float64"),
              keras.layers.Dense(16, activation="relu", kernel_regularizer=reg, **F64)]
    if dropout:
        layers.append(keras.layers.Dropout(dropout, **F64))
    layers.append(keras.layers.Dense(3, activation="softmax", **F64))
    return keras.Sequential(layers, backend="cpu")


def conv():
    return keras.Sequential([
        keras.Input(shape=(6, 6, 2), dtype="float64"),
        keras.layers.Conv2D(4, 3, **F64),
        keras.layers.BatchNormalization(synchronized=SYNC_BN, **F64),
        keras.layers.Activation("relu", **F64),
        keras.layers.Flatten(**F64),
        keras.layers.Dense(3, activation="softmax", **F64)], backend="cpu")


def optimizer(name):
    return keras.optimizers.SGD(0.1, momentum=0.9) if name == "sgd" else \
        keras.optimizers.Adam(0.01)


def gathered_weights(model):
    """Every rank's weights, checked equal across ranks (the broadcast and the identical
    updates keep them so)."""
    mine = np.concatenate([w.ravel() for w in model.get_weights()])
    comm = distributed.comm.world()
    every = comm.allgather_obj(mine) if SIZE > 1 else [mine]
    spread = max(float(np.max(np.abs(w - every[0]))) for w in every)
    return mine, spread


def save(name, model, logs):
    w, spread = gathered_weights(model)
    if RANK == 0:
        np.savez(os.path.join(OUT, name + ".npz"), weights=w, spread=spread,
                 logs=json.dumps(logs))


def train(name, make, opt, n, shape, batch, epochs=1, **fit):
    set_random_seed(7)
    x, y = data(n, shape)
    model = make()
    # a mean-based metric, and ones whose state is a confusion matrix or counts
    model.compile(optimizer=optimizer(opt), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", keras.metrics.MeanIoU(3, sparse_y_pred=False),
                           keras.metrics.SparseTopKCategoricalAccuracy(k=2)])
    vx, vy = data(23, shape, seed=1)
    h = model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0,
                  validation_data=(vx, vy), **fit)
    ev = model.evaluate(vx, vy, batch_size=7, return_dict=True, verbose=0)
    runtime = distributed.active()
    buckets = runtime._buckets[model] if runtime is not None else None
    save(name, model, {"history": h.history, "evaluate": ev,
                       "buckets": len(buckets.buckets) if buckets else 0,
                       "early": buckets.started_in_backward if buckets else 0})
    return model


def case_trajectories():
    # 74 samples in batches of 16: 5 steps, the last of 10 (3 ranks: 4, 3, 3)
    for opt in ("sgd", "adam"):
        train(f"dense-{opt}", dense, opt, 74, (8,), 16)
        train(f"conv-{opt}", conv, opt, 58, (6, 6, 2), 12)
    # weight penalties, and a last batch of 1 sample (ranks 1 and 2 hold a stand-in)
    train("dense-reg-tiny", lambda: dense(regularized=True), "adam", 33, (8,), 16, epochs=2)
    train("added-losses", added_losses, "sgd", 74, (8,), 16)


class Penalised(keras.layers.Layer):
    """Adds a batch-mean activity loss and a weight penalty with ``add_loss``."""

    def build(self, shape):
        self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

    def call(self, x):
        from xpnet import ops

        self.add_loss(0.1 * ops.mean(ops.square(x * self.w)))
        self.add_loss(0.01 * ops.sum(ops.square(self.w)))
        return x * self.w


def added_losses():
    inp = keras.Input(shape=(8,), dtype="float64")
    h = keras.layers.Dense(16, activation="relu", **F64)(inp)
    h = Penalised(**F64)(h)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", **F64)(h),
                       backend="cpu")


def case_localbn():
    global SYNC_BN
    SYNC_BN = False
    train("conv-localbn", conv, "sgd", 58, (6, 6, 2), 12)


def case_on_batch():
    """train_on_batch / test_on_batch on global batches: the same as one process."""
    set_random_seed(9)
    x, y = data(40, (8,))
    model = dense()
    model.compile(optimizer=optimizer("adam"), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    logs = [model.train_on_batch(x[i:i + 13], y[i:i + 13], return_dict=True)
            for i in range(0, 40, 13)]
    logs.append(model.test_on_batch(x, y, return_dict=True))
    save("on-batch", model, {"history": {"steps": logs}, "evaluate": logs[-1]})


def case_callbacks():
    path = os.path.join(OUT, "log.csv")
    ckpt = os.path.join(OUT, "ckpt.xpnet")
    cbs = [keras.callbacks.CSVLogger(path),
           keras.callbacks.ModelCheckpoint(ckpt, monitor="val_loss", save_best_only=True),
           keras.callbacks.EarlyStopping(monitor="val_loss", patience=0)]
    set_random_seed(3)
    x, y = data(64, (8,))
    model = dense()
    model.compile(optimizer=optimizer("sgd"), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=3, verbose=2, callbacks=cbs,
              validation_data=data(20, (8,), seed=1))
    model.save(os.path.join(OUT, "final.xpnet"))


def case_resume():
    """Phase "a" trains one epoch and saves; phase "b" (maybe on another process count)
    loads and trains another; "ab" is the uninterrupted two-epoch run."""
    phase = os.environ["PHASE"]
    x, y = data(74, (8,))
    ckpt = os.path.join(OUT, "resume.xpnet")
    if phase in ("a", "ab"):
        set_random_seed(11)
        model = dense()
        model.compile(optimizer=optimizer("adam"), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=1 if phase == "a" else 2, verbose=0)
        if phase == "a":
            model.save(ckpt)
            return
    else:
        model = keras.models.load_model(ckpt)
        model.fit(x, y, batch_size=16, epochs=2, initial_epoch=1, verbose=0)
    save(f"resume-{phase}", model, {})


def case_dropout():
    """The same seed twice: the same weights; the ranks' dropout streams differ."""
    runs = []
    for _ in range(2):
        set_random_seed(5)
        x, y = data(64, (8,))
        model = dense(dropout=0.5)
        model.compile(optimizer=optimizer("sgd"), loss="sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        runs.append(gathered_weights(model)[0])
    drop = model.layers[1]
    states = distributed.comm.world().allgather_obj(json.dumps(drop.get_rng_state()))
    if RANK == 0:
        np.savez(os.path.join(OUT, "dropout.npz"), a=runs[0], b=runs[1],
                 distinct=len(set(states)) == len(states))


def case_fault(kind):
    comm = distributed.comm.world()
    comm.barrier()  # the processes start at different times; from here a tight timeout
    comm.timeout = float(os.environ.get("FAULT_TIMEOUT", comm.timeout))
    set_random_seed(1)
    x, y = data(4000, (8,))
    model = dense()
    model.compile(optimizer=optimizer("sgd"), loss="sparse_categorical_crossentropy")

    class Fail(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if RANK == 1 and batch == 3:
                print(f"rank 1 pid {os.getpid()} fails now ({kind})", flush=True)
                if kind == "raise":
                    raise ValueError("boom in rank 1")
                if kind == "kill":
                    os.kill(os.getpid(), 9)
                if kind == "hang":
                    time.sleep(120)
            if RANK == 0 and batch == 3:
                print("rank 0 ready", flush=True)

    model.fit(x, y, batch_size=8, epochs=1000, verbose=0, callbacks=[Fail()])


if __name__ == "__main__":
    if CASE.startswith("fault-"):
        case_fault(CASE.removeprefix("fault-"))
    elif CASE == "all":
        case_trajectories()
        case_dropout()
        case_on_batch()
    else:
        globals()[f"case_{CASE}"]()
