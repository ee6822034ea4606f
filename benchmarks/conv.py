"""Convolutions: xpnet against PyTorch eager on the CPU, side by side in one run.

    python benchmarks/conv.py [--part layers|epoch|all] [--rounds 3] [--epochs 4] [--json out]

``layers``: one Conv2D forward + backward (input and weight gradients) at several shapes,
timed alternately for xpnet (channels-last, Keras's layout) and ``torch.nn.functional.conv2d``
(NCHW, PyTorch's default); medians and [min-max] over the repetitions.

``epoch``: the MNIST-split CNN Conv2D(32,3,relu) > MaxPool2 > Conv2D(64,3,relu) > MaxPool2 >
Flatten > Dense(128,relu) > Dense(10) with Adam at batch 64 on the first 8,000 test images.
Each round trains a fresh model of each configuration, each in its own process (so each gets
its own environment), for ``--epochs`` epochs and keeps the median of epochs 2..N; rounds
alternate the configurations so all see the same machine load. Reports medians and spreads
over the rounds, the per-round ratios to PyTorch, and the test accuracies. Configurations
(``--configs``): ``xpnet`` and ``torch`` (the default), and ``xpnet_1thread`` and
``torch_1thread``, one core each.

PyTorch runs on ``--threads`` threads (2). xpnet runs as ``fit`` runs it: its own threads,
one per core, with BLAS on one thread (kernels/threads.py).
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import fmt  # noqa: E402
from common import mnist_split  # noqa: E402
from common import summarize  # noqa: E402
from common import write_json  # noqa: E402

# (batch, height, width, in channels, filters, kernel, stride, padding)
SHAPES = [
    (64, 28, 28, 1, 32, 3, 1, "valid"),     # the MNIST CNN's first layer
    (64, 13, 13, 32, 64, 3, 1, "valid"),    # ... and its second
    (32, 32, 32, 16, 32, 3, 1, "same"),     # CIFAR-sized
    (32, 32, 32, 32, 64, 3, 2, "same"),     # a strided downsampling layer
    (16, 28, 28, 64, 64, 1, 1, "valid"),    # a pointwise (1x1) layer
]


def _xpnet_conv(shape, seed):
    from xpnet import layers
    from xpnet.backend import get_backend
    from xpnet.kernels import threads

    n, h, w, c, f, k, s, p = shape
    rng = np.random.default_rng(seed)
    layer = layers.Conv2D(f, k, strides=s, padding=p)
    layer.build_on(get_backend("cpu"), (None, h, w, c))
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    y, ctx = layer.forward(x)
    dy = rng.standard_normal(y.shape, dtype=np.float32)

    backend, n = get_backend("cpu"), threads.available()

    def step():  # as fit runs it: BLAS on one thread, the batch split over xpnet's threads
        with backend.limit_threads(1), threads.using(n):
            y, ctx = layer.forward(x)
            layer.backward(ctx, dy)
    return step


def _torch_conv(shape, seed):
    import torch

    n, h, w, c, f, k, s, p = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g, requires_grad=True)
    weight = torch.randn(f, c, k, k, generator=g, requires_grad=True)
    bias = torch.zeros(f, requires_grad=True)
    pad = 0 if p == "valid" else (k - 1) // 2  # symmetric: equal to Keras's for odd kernels
    y = torch.nn.functional.conv2d(x, weight, bias, stride=s, padding=pad)
    dy = torch.randn(y.shape, generator=g)

    def step():
        x.grad = weight.grad = bias.grad = None
        torch.nn.functional.conv2d(x, weight, bias, stride=s, padding=pad).backward(dy)
    return step


def bench_layers(reps, have_torch):
    results = []
    for shape in SHAPES:
        steps = {"xpnet": _xpnet_conv(shape, 0)}
        if have_torch:
            steps["torch"] = _torch_conv(shape, 0)
        times = {k: [] for k in steps}
        for step in steps.values():
            step()  # warm up: compile, allocate
        for _ in range(reps):
            for name, step in steps.items():
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
        row = {"shape": shape, **{k: summarize([t * 1e3 for t in v]) for k, v in times.items()}}
        label = "x".join(map(str, shape[:4])) + f" -> {shape[4]}, k{shape[5]} s{shape[6]} " \
            f"{shape[7]}"
        line = f"  {label:36s} xpnet {fmt(row['xpnet'])} ms"
        if have_torch:
            ratios = [a / b for a, b in zip(times["xpnet"], times["torch"])]
            row["ratio"] = summarize(ratios)
            line += f"   torch {fmt(row['torch'])} ms   ratio {fmt(row['ratio'])}"
        print(line, flush=True)
        results.append(row)
    return results


def run_xpnet(data, epochs, batch, seed):
    from xpnet import keras

    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(28, 28, 1)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], backend="cpu")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        times.append(time.perf_counter() - start)
    acc = float((model.predict(xt, batch_size=500, verbose=0).argmax(1) == yt).mean())
    return times, acc


def run_torch(data, epochs, batch, seed):
    import torch

    (x, y), (xt, yt) = data
    torch.manual_seed(seed)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(1600, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    xd = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yd = torch.from_numpy(y)
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
        xt_t = torch.from_numpy(np.ascontiguousarray(xt.transpose(0, 3, 1, 2)))
        pred = model(xt_t).argmax(1).numpy()
    return times, float((pred == yt).mean())


CONFIGS = {
    # name: (library, extra environment, threads: None for --threads)
    "xpnet": ("xpnet", {}, None),
    "torch": ("torch", {}, None),
    # one core each (not run by default)
    "xpnet_1thread": ("xpnet", {"XPNET_CPU_THREADS": "1"}, None),
    "torch_1thread": ("torch", {}, 1),
}
DEFAULT_CONFIGS = ("xpnet", "torch")
# which configuration each is compared with
BASELINE = {"xpnet": "torch", "xpnet_1thread": "torch_1thread"}


def _worker(lib, epochs, batch, seed, threads):
    """Train once in this process and print the epoch times and accuracy as JSON."""
    data = mnist_split(flat=False)
    if lib == "torch":
        import torch

        torch.set_num_threads(threads)
        times, acc = run_torch(data, epochs, batch, seed)
    else:
        times, acc = run_xpnet(data, epochs, batch, seed)
    print(json.dumps({"times": times, "accuracy": acc}))


def _run_config(name, epochs, batch, seed, threads):
    lib, env, own_threads = CONFIGS[name]
    threads = own_threads or threads
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", lib,
                          "--epochs", str(epochs), "--batch-size", str(batch),
                          "--seed", str(seed), "--threads", str(threads)],
                         env={**os.environ, **env}, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result["times"], result["accuracy"]


def bench_epoch(rounds, epochs, batch, names, threads):
    if mnist_split(flat=False) is None:
        print("  MNIST test set not found; set XPNET_MNIST to its directory")
        return None
    medians, accs, firsts = ({k: [] for k in names} for _ in range(3))
    for r in range(rounds):
        for name in names:
            times, acc = _run_config(name, epochs, batch, r, threads)
            medians[name].append(float(np.median(times[1:] or times)))
            firsts[name].append(times[0])
            accs[name].append(acc)
            print(f"  round {r} {name:12s} epochs {', '.join(f'{t:.2f}' for t in times)} s, "
                  f"test accuracy {acc:.4f}", flush=True)
    results = {}
    for name in names:
        s = summarize(medians[name])
        results[name] = {"epoch_s": s, "first_epoch_s": summarize(firsts[name]),
                         "accuracy": summarize(accs[name]),
                         "ms_per_step": s["median"] / (8000 / batch) * 1e3,
                         "environment": CONFIGS[name][1],
                         "threads": CONFIGS[name][2] or threads}
        print(f"  {name:12s} {fmt(s)} s/epoch ({results[name]['ms_per_step']:.1f} ms/step), "
              f"test accuracy after {epochs} epochs {fmt(summarize(accs[name]))}")
    for name, base in BASELINE.items():
        if name in names and base in names:
            ratios = [a / b for a, b in zip(medians[name], medians[base])]
            results[f"ratio_{name}_vs_{base}"] = summarize(ratios)
            print(f"  {name} / {base} epoch time (per round): {fmt(summarize(ratios))}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="all", choices=["layers", "epoch", "all"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--reps", type=int, default=30, help="repetitions per layer shape")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                        help=f"epoch part: which of {', '.join(CONFIGS)}")
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return _worker(args.worker, args.epochs, args.batch_size, args.seed, args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        have_torch = True
    except ImportError:
        have_torch = False
    results = {"rounds": args.rounds, "epochs": args.epochs, "batch": args.batch_size,
               "torch_threads": args.threads}
    if args.part in ("layers", "all"):
        print("Conv2D forward + backward (dx, dkernel, dbias), ms, median [min-max]:")
        results["layers"] = bench_layers(args.reps, have_torch)
    if args.part in ("epoch", "all"):
        print(f"MNIST-split CNN, Adam, batch {args.batch_size}: seconds per epoch (median of "
              f"epochs 2..{args.epochs}), median [min-max] over {args.rounds} rounds:")
        names = [n for n in args.configs.split(",") if have_torch or n != "torch"]
        results["epoch"] = bench_epoch(args.rounds, args.epochs, args.batch_size, names,
                                       args.threads)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
