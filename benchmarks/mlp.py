"""The classic model, 784-64-64-10 with Adam at batch 32, on the MNIST test-set split:
xpnet against PyTorch eager, side by side in one run.

    python benchmarks/mlp.py [--backend cpu|cuda] [--epochs 5] [--rounds 3] [--json out]

Each round trains a fresh model of each library for ``--epochs`` epochs and records the
median epoch time of epochs 2..N; rounds alternate the libraries, so both see the same
machine load. Reports medians and spreads over the rounds, the ratio xpnet/PyTorch, and the
test accuracy each reaches.
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


def run_xpnet(data, backend, epochs, batch, seed):
    from xpnet import keras

    (x, y), (xt, yt) = data
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.layers.Dense(64, activation="relu", input_shape=(784,)),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ], backend=backend)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
        model.backend.synchronize()
        times.append(time.perf_counter() - start)
    acc = float((model.predict(xt, verbose=0).argmax(1) == yt).mean())
    return times, acc


def run_torch(data, device, epochs, batch, seed, fused):
    import torch

    (x, y), (xt, yt) = data
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused or None)
    loss_fn = torch.nn.CrossEntropyLoss()
    xd, yd = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        perm = torch.randperm(len(xd), device=device)
        for i in range(0, len(xd), batch):
            idx = perm[i:i + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xd[idx]), yd[idx])
            loss.backward()
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        pred = model(torch.from_numpy(xt).to(device)).argmax(1).cpu().numpy()
    return times, float((pred == yt).mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--json")
    args = parser.parse_args()
    data = mnist_split()
    if data is None:
        sys.exit("MNIST test set not found; set XPNET_MNIST to its directory")
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    device = "cuda" if args.backend == "cuda" else "cpu"
    runners = {"xpnet": lambda s: run_xpnet(data, args.backend, args.epochs,
                                             args.batch_size, s)}
    if torch is not None:
        runners["torch"] = lambda s: run_torch(data, device, args.epochs, args.batch_size, s,
                                               False)
        runners["torch_fused_adam"] = lambda s: run_torch(data, device, args.epochs,
                                                          args.batch_size, s, True)
    epoch_medians = {k: [] for k in runners}
    accs = {k: [] for k in runners}
    for r in range(args.rounds):
        for name, run in runners.items():
            times, acc = run(r)
            epoch_medians[name].append(float(np.median(times[1:] or times)))
            accs[name].append(acc)
    results = {"backend": args.backend, "batch": args.batch_size, "epochs": args.epochs,
               "rounds": args.rounds}
    print(f"784-64-64-10 Adam, batch {args.batch_size}, backend {args.backend}: "
          "seconds per epoch, median [min-max] over rounds")
    for name in runners:
        s = summarize(epoch_medians[name])
        results[name] = {"epoch_s": s, "accuracy": float(np.median(accs[name])),
                         "us_per_step": s["median"] / (8000 / args.batch_size) * 1e6}
        print(f"  {name:18s} {fmt(s)} s/epoch  {results[name]['us_per_step']:.0f} us/step  "
              f"accuracy {results[name]['accuracy']:.4f}")
    for other in [k for k in runners if k != "xpnet"]:
        ratios = [a / b for a, b in zip(epoch_medians["xpnet"], epoch_medians[other])]
        results[f"ratio_vs_{other}"] = summarize(ratios)
        print(f"  xpnet / {other}: {fmt(summarize(ratios))}")
    write_json(args.json, results)


if __name__ == "__main__":
    main()
