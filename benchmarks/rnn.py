"""Recurrent layers: xpnet against PyTorch eager on the CPU, side by side in one run.

    python benchmarks/rnn.py [--part epoch|profile|all] [--rounds 3] [--epochs 3] [--json out]

``epoch``: the MNIST-rows classifier (28 steps of 28 pixels) ``LSTM(128) > Dense(10)`` with
Adam at batch 64 on the first 8,000 test images, against ``nn.LSTM(28, 128) > nn.Linear``;
and the same with ``GRU`` / ``nn.GRU``. Each round trains a fresh model of each
configuration in its own process for ``--epochs`` epochs and keeps the median of epochs
2..N; rounds alternate the configurations so all see the same machine load. Reports the
medians and [min-max] over rounds, the per-round ratios to PyTorch, and test accuracies.
PyTorch runs on ``--threads`` threads (2), and in the ``*_1t`` configurations on one
(on a shared machine its two OpenMP threads can lose 10x to a busy second core); xpnet as
``fit`` runs it.

Run it under ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` (see ``common.blas``).

``floor``: the matrix products of one LSTM step alone through NumPy's BLAS at its best:
the least any NumPy implementation of the step pays, to set beside PyTorch's whole step.

``profile``: where an xpnet LSTM training step spends its time (cProfile over ``fit`` on
one thread, grouped: recurrent products, fused cell kernels, input products and
weight gradients, optimizer, the rest).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from common import blas  # noqa: E402
from common import fmt  # noqa: E402
from common import mnist_split  # noqa: E402
from common import summarize  # noqa: E402
from common import write_json  # noqa: E402

# name: (library, cell, threads: None for --threads)
CONFIGS = {"xpnet_lstm": ("xpnet", "LSTM", None), "torch_lstm": ("torch", "LSTM", None),
           "torch_lstm_1t": ("torch", "LSTM", 1),
           "xpnet_gru": ("xpnet", "GRU", None), "torch_gru": ("torch", "GRU", None),
           "torch_gru_1t": ("torch", "GRU", 1)}
# (xpnet configuration, PyTorch configuration) pairs whose ratio is reported
BASELINE = [("xpnet_lstm", "torch_lstm"), ("xpnet_lstm", "torch_lstm_1t"),
            ("xpnet_gru", "torch_gru"), ("xpnet_gru", "torch_gru_1t")]


def _rows(data):
    (x, y), (xt, yt) = data
    return (x.reshape(-1, 28, 28), y), (xt.reshape(-1, 28, 28), yt)


def run_xpnet(data, cell, epochs, batch, seed):
    from xpnet import keras

    (x, y), (xt, yt) = _rows(data)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(28, 28)), getattr(keras.layers, cell)(128),
                              keras.layers.Dense(10, activation="softmax")], backend="cpu")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        times.append(time.perf_counter() - start)
    acc = float((model.predict(xt, batch_size=500, verbose=0).argmax(1) == yt).mean())
    return times, acc


def run_torch(data, cell, epochs, batch, seed):
    import torch

    (x, y), (xt, yt) = _rows(data)
    torch.manual_seed(seed)
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cell)(28, 128, batch_first=True)
            self.head = nn.Linear(128, 10)

        def forward(self, a):
            return self.head(self.rnn(a)[0][:, -1])

    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xd, yd = torch.from_numpy(x), torch.from_numpy(y)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(xd))
        for i in range(0, len(xd), batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xd[idx]), yd[idx]).backward()
            opt.step()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        pred = model(torch.from_numpy(xt)).argmax(1).numpy()
    return times, float((pred == yt).mean())


def _worker(name, epochs, batch, seed, threads):
    lib, cell, own = CONFIGS[name]
    threads = own or threads
    data = mnist_split(flat=False)
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        times, acc = run_torch(data, cell, epochs, batch, seed)
    else:
        times, acc = run_xpnet(data, cell, epochs, batch, seed)
    print(json.dumps({"times": times, "accuracy": acc}))


def _run_config(name, epochs, batch, seed, threads):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name,
                          "--epochs", str(epochs), "--batch-size", str(batch),
                          "--seed", str(seed), "--threads", str(threads)],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["times"], result["accuracy"]


def bench_epoch(rounds, epochs, batch, names, threads):
    if mnist_split(flat=False) is None:
        print("  MNIST test set not found; set XPNET_MNIST to its directory")
        return None
    print(f"  BLAS: {', '.join(blas())}", flush=True)
    medians, accs = {k: [] for k in names}, {k: [] for k in names}
    for r in range(rounds):
        for name in names:
            times, acc = _run_config(name, epochs, batch, r, threads)
            medians[name].append(float(np.median(times[1:] or times)))
            accs[name].append(acc)
            print(f"  round {r} {name:11s} epochs {', '.join(f'{t:.2f}' for t in times)} s, "
                  f"test accuracy {acc:.4f}", flush=True)
    results = {}
    for name in names:
        s = summarize(medians[name])
        results[name] = {"epoch_s": s, "accuracy": summarize(accs[name]),
                         "ms_per_step": s["median"] / (8000 / batch) * 1e3}
        print(f"  {name:11s} {fmt(s)} s/epoch ({results[name]['ms_per_step']:.1f} ms/step), "
              f"test accuracy after {epochs} epochs {fmt(summarize(accs[name]))}")
    for name, base in BASELINE:
        if name in names and base in names:
            ratios = [a / b for a, b in zip(medians[name], medians[base])]
            results[f"ratio_{name}_vs_{base}"] = summarize(ratios)
            print(f"  {name} / {base} epoch time (per round): {fmt(summarize(ratios))}")
    return results


_GROUPS = [  # (group, "file:function" keys in cProfile's table)
    ("recurrent products (h @ U, dz @ U.T)", ("recurrent_base.py:recur",
                                              "recurrent_base.py:recur_grad_h")),
    ("fused cell kernels (njit)", ("_cpu_recurrent.py:lstm_forward",
                                   "_cpu_recurrent.py:lstm_backward",
                                   "_cpu_recurrent.py:gru_forward",
                                   "_cpu_recurrent.py:gru_backward",
                                   "recurrent.py:lstm_forward_step",
                                   "recurrent.py:lstm_backward_step",
                                   "recurrent.py:gru_forward_step",
                                   "recurrent.py:gru_backward_step")),
    ("input product, weight gradients, dx", ("__init__.py:matmul", "threads.py:matmul",
                                             "threads.py:_matmul_into",
                                             "recurrent_base.py:project",
                                             "recurrent_base.py:project_grad",
                                             "recurrent_base.py:recur_grad_kernel",
                                             "recurrent_base.py:backward_sequence",
                                             "recurrent_base.py:run_sequence")),
    ("step loops (Python), buffers", ("recurrent.py:run", "recurrent.py:run_backward")),
    ("optimizer", ("optimizers.py:", "kernels/__init__.py:adam", "_cpu.py:adam")),
]


def bench_profile(cell="LSTM", steps=40, batch=64):
    """cProfile sees only the calling thread, so this runs fit on one of xpnet's threads
    (``XPNET_CPU_THREADS=1``): every step's work is then attributed."""
    import cProfile
    import pstats

    os.environ["XPNET_CPU_THREADS"] = "1"
    from xpnet import keras

    rng = np.random.default_rng(0)
    x = rng.random((batch * steps, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, batch * steps)
    model = keras.Sequential([keras.Input(shape=(28, 28)), getattr(keras.layers, cell)(128),
                              keras.layers.Dense(10, activation="softmax")], backend="cpu")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[:batch * 2], y[:batch * 2], batch_size=batch, verbose=0)  # compile kernels
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.enable()
    model.fit(x, y, batch_size=batch, verbose=0)
    prof.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(prof).stats
    groups = {g: 0.0 for g, _ in _GROUPS}
    rest = []
    for (file, _, func), (_, _, tottime, _, _) in stats.items():
        key = f"{os.path.basename(file)}:{func}"
        for g, keys in _GROUPS:
            if any(key == k or (k.endswith(":") and key.startswith(k)) for k in keys):
                groups[g] += tottime
                break
        else:
            rest.append((tottime, key))
    groups["everything else"] = total - sum(groups.values())
    print(f"  {cell}: {total / steps * 1e3:.2f} ms/step over {steps} steps (profiled)")
    for g, t in groups.items():
        print(f"    {g:40s} {t / steps * 1e3:7.2f} ms/step  {100 * t / total:5.1f} %")
    top = ", ".join(f"{k} {t / steps * 1e3:.2f}" for t, k in sorted(rest, reverse=True)[:4])
    print(f"    (largest of the rest, ms/step: {top})")
    return {"ms_per_step": total / steps * 1e3,
            "groups_ms_per_step": {g: t / steps * 1e3 for g, t in groups.items()}}


def bench_floor(batch=64, rounds=7, reps=50, threads=2):
    """The matrix products of one LSTM(128) training step on the MNIST rows, nothing else,
    through NumPy's BLAS at its best (``threads`` BLAS threads, whole batch, contiguous
    operands, ``out=``): 28 ``h @ U`` forward, 28 ``dz @ U.T`` backward, the input product
    and the two weight gradients over all steps. What any NumPy implementation pays at
    least; compare it with PyTorch's whole step from the epoch part."""
    from threadpoolctl import threadpool_limits

    t, f, u = 28, 28, 128
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    w, r, x, hs, dzs = a(f, 4 * u), a(u, 4 * u), a(t * batch, f), a(t * batch, u), \
        a(t * batch, 4 * u)
    rt, h, dz = np.ascontiguousarray(r.T), a(batch, u), a(batch, 4 * u)
    rz, dh = np.empty((batch, 4 * u), np.float32), np.empty((batch, u), np.float32)

    def step():
        x @ w
        for _ in range(t):
            np.matmul(h, r, out=rz)
        for _ in range(t):
            np.matmul(dz, rt, out=dh)
        hs.T @ dzs
        x.T @ dzs

    times = []
    with threadpool_limits(threads):
        step()
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(reps):
                step()
            times.append((time.perf_counter() - start) / reps * 1e3)
    s = summarize(times)
    print(f"  LSTM(128) step's matrix products alone ({threads} BLAS threads): {fmt(s)} ms")
    return {"gemm_ms_per_step": s}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="all", choices=["epoch", "profile", "floor", "all"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json")
    parser.add_argument("--worker")
    args = parser.parse_args()
    if args.worker:
        return _worker(args.worker, args.epochs, args.batch_size, args.seed, args.threads)
    out = {}
    if args.part in ("profile", "all"):
        print("profile (xpnet, one process):")
        out["profile"] = {c: bench_profile(c) for c in ("LSTM", "GRU")}
    if args.part in ("floor", "all"):
        print(f"floor: BLAS {', '.join(blas())}")
        out["floor"] = bench_floor(args.batch_size, threads=args.threads)
    if args.part in ("epoch", "all"):
        print(f"epoch: MNIST rows, batch {args.batch_size}, Adam, {args.rounds} rounds of "
              f"{args.epochs} epochs; torch on {args.threads} threads")
        out["epoch"] = bench_epoch(args.rounds, args.epochs, args.batch_size,
                                   args.configs.split(","), args.threads)
    write_json(args.json, out)


if __name__ == "__main__":
    main()
