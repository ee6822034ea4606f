"""Convolutions: xpnet against PyTorch eager on the CPU, side by side in one run.

    python benchmarks/conv.py [--part layers|epoch|all] [--rounds 3] [--epochs 4] [--json out]

``layers``: one Conv2D forward + backward (input and weight gradients) at several shapes,
timed alternately for xpnet (channels-last, Keras's layout) and ``torch.nn.functional.conv2d``
(NCHW, PyTorch's default); medians and [min-max] over the repetitions.

``epoch``: the MNIST-split CNN Conv2D(32,3,relu) > MaxPool2 > Conv2D(64,3,relu) > MaxPool2 >
Flatten > Dense(128,relu) > Dense(10) with Adam at batch 64 on the first 8,000 test images.
Each round trains a fresh model of each library for ``--epochs`` epochs and keeps the median
of epochs 2..N; rounds alternate the libraries so both see the same machine load. Reports
medians and spreads over the rounds, the ratio xpnet/PyTorch, and the test accuracies.

PyTorch runs on ``--threads`` threads (2); NumPy's BLAS keeps its default (all cores) unless
``--blas-threads`` is given.
"""

import argparse
import os
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

    n, h, w, c, f, k, s, p = shape
    rng = np.random.default_rng(seed)
    layer = layers.Conv2D(f, k, strides=s, padding=p)
    layer.build_on(get_backend("cpu"), (None, h, w, c))
    x = rng.standard_normal((n, h, w, c), dtype=np.float32)
    y, ctx = layer.forward(x)
    dy = rng.standard_normal(y.shape, dtype=np.float32)

    def step():
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


def bench_epoch(rounds, epochs, batch, have_torch):
    data = mnist_split(flat=False)
    if data is None:
        print("  MNIST test set not found; set XPNET_MNIST to its directory")
        return None
    runners = {"xpnet": run_xpnet}
    if have_torch:
        runners["torch"] = run_torch
    medians, accs, firsts = ({k: [] for k in runners} for _ in range(3))
    for r in range(rounds):
        for name, run in runners.items():
            times, acc = run(data, epochs, batch, r)
            medians[name].append(float(np.median(times[1:] or times)))
            firsts[name].append(times[0])
            accs[name].append(acc)
            print(f"  round {r} {name:6s} epochs {', '.join(f'{t:.2f}' for t in times)} s, "
                  f"test accuracy {acc:.4f}", flush=True)
    results = {}
    for name in runners:
        s = summarize(medians[name])
        results[name] = {"epoch_s": s, "first_epoch_s": summarize(firsts[name]),
                         "accuracy": summarize(accs[name]),
                         "ms_per_step": s["median"] / (8000 / batch) * 1e3}
        print(f"  {name:6s} {fmt(s)} s/epoch ({results[name]['ms_per_step']:.1f} ms/step), "
              f"test accuracy after {epochs} epochs {fmt(summarize(accs[name]))}")
    if have_torch:
        ratios = [a / b for a, b in zip(medians["xpnet"], medians["torch"])]
        results["ratio"] = summarize(ratios)
        print(f"  xpnet / torch epoch time: {fmt(results['ratio'])}")
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="all", choices=["layers", "epoch", "all"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--reps", type=int, default=30, help="repetitions per layer shape")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--blas-threads", type=int, default=None)
    parser.add_argument("--json")
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(args.threads)
        have_torch = True
    except ImportError:
        have_torch = False
    if args.blas_threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads)
    results = {"rounds": args.rounds, "epochs": args.epochs, "batch": args.batch_size,
               "torch_threads": args.threads}
    if args.part in ("layers", "all"):
        print("Conv2D forward + backward (dx, dkernel, dbias), ms, median [min-max]:")
        results["layers"] = bench_layers(args.reps, have_torch)
    if args.part in ("epoch", "all"):
        print(f"MNIST-split CNN, Adam, batch {args.batch_size}: seconds per epoch (median of "
              f"epochs 2..{args.epochs}), median [min-max] over {args.rounds} rounds:")
        results["epoch"] = bench_epoch(args.rounds, args.epochs, args.batch_size, have_torch)
    write_json(args.json, results)


if __name__ == "__main__":
    main()
