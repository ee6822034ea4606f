"""NCCL check for ci/gpu_check.sh: an in-place all-reduce of a flat buffer through
xpnet.distributed's NCCL communicator, on every GPU present (one process per GPU under
``mpiexec -n G``; one process and one GPU without a launcher), then two data-parallel steps
of a small model on backend "cuda", whose weights must agree on every rank.

Prints one JSON line per rank and exits non-zero on any mismatch.
"""

import json
import sys
import time

import cupy
import numpy as np

from xpnet import distributed
from xpnet import keras
from xpnet.distributed.comm import world
from xpnet.kernels.nccl import device_comm

distributed.set_distribution(distributed.DataParallel())  # picks GPU local_rank % count
comm = world()
rank, size = comm.rank, comm.size
dev = cupy.cuda.Device().id
report = {"rank": rank, "size": size, "device": dev, "gpus": cupy.cuda.runtime.getDeviceCount()}

# 1. the flat-buffer all-reduce, as the gradient buckets use it (float32 and float64)
ok = True
for dtype in (cupy.float32, cupy.float64):
    n = 1 << 20
    buf = cupy.arange(n, dtype=dtype) * (rank + 1)
    nccl = device_comm(comm)
    nccl.allreduce(buf[: n // 2])  # a bucket: a view of the flat buffer
    nccl.allreduce(buf[n // 2:])
    expected = cupy.arange(n, dtype=dtype) * (size * (size + 1) // 2)
    err = float(cupy.max(cupy.abs(buf - expected)))
    ok &= err == 0.0
    report[f"allreduce_{cupy.dtype(dtype).name}_max_err"] = err
cupy.cuda.get_current_stream().synchronize()
report["comm"] = type(device_comm(comm)).__name__

# 2. bandwidth of a 64 MiB float32 all-reduce
buf = cupy.ones(16 << 20, dtype=cupy.float32)
nccl.allreduce(buf)
cupy.cuda.get_current_stream().synchronize()
start = time.perf_counter()
for _ in range(10):
    nccl.allreduce(buf)
cupy.cuda.get_current_stream().synchronize()
took = (time.perf_counter() - start) / 10
report["allreduce_64MiB_ms"] = round(took * 1e3, 3)
report["busbw_GBps"] = round(2 * (size - 1) / max(size, 1) * buf.nbytes / took / 1e9, 1)

# 3. two data-parallel steps on the GPU: weights equal on every rank
keras.utils.set_random_seed(rank)  # different initial weights: the broadcast must fix them
model = keras.Sequential([keras.Input(shape=(32,)), keras.layers.Dense(64, activation="relu"),
                          keras.layers.Dense(4, activation="softmax")], backend="cuda")
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 32)).astype("float32"), rng.integers(0, 4, 64)
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
w = np.concatenate([a.ravel() for a in model.get_weights()])
every = comm.allgather_obj(w) if size > 1 else [w]
report["weights_spread"] = float(max(np.max(np.abs(v - every[0])) for v in every))
ok &= report["weights_spread"] == 0.0
report["ok"] = bool(ok)
print(json.dumps(report), flush=True)
sys.exit(0 if ok else 1)
