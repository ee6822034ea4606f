"""Attention against PyTorch (2 threads), side by side in one run.

    python benchmarks/attention.py                    # both parts
    python benchmarks/attention.py --part kernel --lengths 256 1024
    python benchmarks/attention.py --part encoder --rounds 3

1. kernel: fused attention forward + backward at batch 1, 8 heads, head size 64, float32,
   for each length: xpnet's fused kernel (njit, xpnet's threads, BLAS on one thread), the
   array-API composition (softmax(QK^T)V with full score matrices) and
   ``torch.nn.functional.scaled_dot_product_attention``; median time over rounds and the
   peak memory growth of one forward+backward (max RSS, each in a fresh process).
2. encoder: one training epoch of a 2-layer Transformer encoder classifier (width 128, 4
   heads, feed-forward 256, length 64, batch 32, token + position embeddings, mean pooling,
   Adam) in xpnet (a Keras functional model of TokenAndPositionEmbedding, TransformerEncoder,
   GlobalAveragePooling1D and Dense, one ``fit`` epoch) and in PyTorch (nn.Embedding x2,
   nn.TransformerEncoder, nn.Linear, a plain loop), alternating, several rounds.

The machine is shared: compare ratios from one run, not absolute times across runs.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def _qkvd(length, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 8, length, 64)).astype(np.float32) for _ in range(4)]


def _runner(method, length):
    """A function running one forward + backward of ``method`` at ``length``."""
    q, k, v, d = _qkvd(length)
    if method == "torch":
        import torch

        torch.set_num_threads(2)
        tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
        td = torch.tensor(d)

        def run():
            for t in (tq, tk, tv):
                t.grad = None
            torch.nn.functional.scaled_dot_product_attention(tq, tk, tv).backward(td)
        return run
    from xpnet.kernels import attention

    weights = method == "composition"

    def run():
        _, _, ctx = attention.attention(q, k, v, return_weights=weights)
        attention.attention_grad(ctx, d)
    return run


def _context(method):
    if method == "torch":
        import contextlib

        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    from xpnet.kernels import threads

    class Both:
        def __enter__(self):
            self.a, self.b = threadpool_limits(1), threads.using(2)
            self.a.__enter__()
            self.b.__enter__()

        def __exit__(self, *exc):
            self.b.__exit__(*exc)
            self.a.__exit__(*exc)
    return Both()


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_child(method, length):
    """In a fresh process: peak resident-memory growth (MB) of one forward + backward
    beyond its inputs (Linux: the high-water mark is reset through /proc/self/clear_refs
    after the warm-up, which compiles and so peaks high)."""
    _runner(method, 64)()  # compile and warm up on a small size
    run = _runner(method, length)
    with _context(method):
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kb("VmRSS")
        run()
        after = _status_kb("VmHWM")
    print(json.dumps({"peak_mb": (after - before) / 1024.0}))


def peak_memory(method, length):
    out = subprocess.run([sys.executable, __file__, "--peak-child", method, str(length)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return float("nan")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def kernel_part(lengths, rounds, comp_max):
    rows = []
    for length in lengths:
        methods = ["fused", "torch"] + (["composition"] if length <= comp_max else [])
        runs = {m: _runner(m, length) for m in methods}
        times = {m: [] for m in methods}
        for m in methods:
            with _context(m):
                runs[m]()  # warm-up (and compile)
        for _ in range(rounds):
            for m in methods:
                with _context(m):
                    t = time.perf_counter()
                    runs[m]()
                    times[m].append(time.perf_counter() - t)
        row = {"length": length}
        for m in methods:
            row[m + "_ms"] = 1e3 * statistics.median(times[m])
            row[m + "_range_ms"] = [1e3 * min(times[m]), 1e3 * max(times[m])]
            row[m + "_peak_mb"] = peak_memory(m, length)
        ratios = [f / t for f, t in zip(times["fused"], times["torch"])]
        row["fused_over_torch"] = statistics.median(ratios)
        row["fused_over_torch_range"] = [min(ratios), max(ratios)]
        if "composition" in methods:
            row["fused_over_composition"] = statistics.median(
                [f / c for f, c in zip(times["fused"], times["composition"])])
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _torch_classifier(vocab, length, width, heads, ff):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(length, width)
            layer = nn.TransformerEncoderLayer(width, heads, ff, dropout=0.0,
                                               batch_first=True)
            self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.out = nn.Linear(width, 2)

        def forward(self, x):
            h = self.tok(x) + self.pos(torch.arange(x.shape[1]))[None]
            return self.out(self.enc(h).mean(dim=1))
    return Net()


def encoder_part(rounds, sequences, batch=32, length=64, width=128, heads=4, ff=256,
                 vocab=1000, torch_threads=2):
    import torch

    from xpnet import keras

    torch.set_num_threads(torch_threads)
    rng = np.random.default_rng(0)
    x = rng.integers(1, vocab, size=(sequences, length))
    y = rng.integers(0, 2, size=sequences)
    keras.utils.set_random_seed(0)
    ids = keras.Input((length,), dtype="int64")
    h = keras.layers.TokenAndPositionEmbedding(vocab, length, width)(ids)
    for _ in range(2):
        h = keras.layers.TransformerEncoder(ff, heads)(h)
    logits = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(ids, logits)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    def xp_epoch():  # fit picks its threads: BLAS on one, xpnet's own by the step's size
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)

    net = _torch_classifier(vocab, length, width, heads, ff)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    tx, ty = torch.tensor(x), torch.tensor(y)

    def torch_epoch():
        order = torch.randperm(sequences)
        for i in range(0, sequences, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(tx[idx]), ty[idx])
            loss.backward()
            opt.step()

    xp_epoch()  # warm-up: compile, first allocations
    torch_epoch()
    times = {"xpnet": [], "torch": []}
    for _ in range(rounds):
        for name, fn in (("xpnet", xp_epoch), ("torch", torch_epoch)):
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ratios = [a / b for a, b in zip(times["xpnet"], times["torch"])]
    row = {"sequences": sequences, "torch_threads": torch_threads, "xpnet_s": times["xpnet"],
           "torch_s": times["torch"],
           "ratio_median": statistics.median(ratios), "ratio_range": [min(ratios),
                                                                     max(ratios)]}
    print(json.dumps(row), flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["kernel", "encoder", "both"], default="both")
    parser.add_argument("--lengths", type=int, nargs="+",
                        default=[256, 512, 1024, 2048, 4096])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--composition-max", type=int, default=2048,
                        help="longest length for the composition (its scores: 8 L^2 floats)")
    parser.add_argument("--sequences", type=int, default=2048)
    parser.add_argument("--torch-threads", type=int, default=2,
                        help="PyTorch's threads in the encoder part")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--peak-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_child:
        return _peak_child(args.peak_child[0], int(args.peak_child[1]))
    out = {}
    if args.part in ("kernel", "both"):
        out["kernel"] = kernel_part(args.lengths, args.rounds, args.composition_max)
    if args.part in ("encoder", "both"):
        out["encoder"] = encoder_part(args.rounds, args.sequences,
                                      torch_threads=args.torch_threads)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
