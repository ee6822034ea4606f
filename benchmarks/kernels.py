"""Each fused kernel against the array-API composition it replaces, at small, medium and
large sizes, and the seed model's training step with and without the kernels.

    python benchmarks/kernels.py [--backend cpu|cuda] [--json out.json] [--quick]

On the GPU it also reports achieved memory bandwidth as a fraction of a device-to-device
copy of the same number of bytes. Times are medians of repeated runs with [min-max].
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import mnist_split  # noqa: E402
from common import write_json  # noqa: E402

from xpnet import kernels  # noqa: E402
from xpnet.backend import get_backend  # noqa: E402
from xpnet.kernels import reference  # noqa: E402


def timed(f, backend, repeats, number):
    """Median and spread (seconds per call) over ``repeats`` runs of ``number`` calls."""
    f()
    backend.synchronize()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            f()
        backend.synchronize()
        runs.append((time.perf_counter() - start) / number)
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def _number(size, gpu):
    return 20 if gpu else max(3, min(2000, int(3e6 / max(size, 1))))


def _copy_time(backend, nbytes, repeats):
    """A device-to-device copy of ``nbytes`` (read + write): the bandwidth ceiling."""
    xp = backend.xp
    a = xp.zeros((nbytes // 8,), dtype=xp.float32, device=backend.device)
    b = xp.empty_like(a)
    return timed(lambda: b.__setitem__(slice(None), a), backend, repeats, 20)["median"]


def compare(name, shape, fused, composed, backend, repeats, traffic_bytes=None):
    size = int(np.prod(shape))
    gpu = backend.name == "cuda"
    t_k = timed(fused, backend, repeats, _number(size, gpu))
    kernels.enabled(False)
    t_c = timed(composed, backend, repeats, _number(size, gpu))
    kernels.enabled(True)
    row = {"op": name, "shape": list(shape), "kernel_s": t_k, "composition_s": t_c,
           "speedup": t_c["median"] / t_k["median"]}
    if gpu and traffic_bytes:
        copy = _copy_time(backend, traffic_bytes, repeats)
        row["bandwidth_fraction_of_copy"] = copy / t_k["median"]
        row["kernel_GBps"] = traffic_bytes / t_k["median"] / 1e9
    line = (f"{name:28s} {str(shape):16s} kernel {t_k['median'] * 1e6:10.1f} us "
            f"[{t_k['min'] * 1e6:.1f}-{t_k['max'] * 1e6:.1f}]  composition "
            f"{t_c['median'] * 1e6:10.1f} us  speedup {row['speedup']:5.2f}x")
    if "bandwidth_fraction_of_copy" in row:
        line += f"  {row['bandwidth_fraction_of_copy']:.0%} of copy bandwidth"
    print(line, flush=True)
    return row


def bench_activation(backend, repeats, quick):
    xp, rows = backend.xp, []
    rng = backend.rng(0)
    shapes = [(32, 64), (256, 1024)] + ([] if quick else [(4096, 1024)])
    if backend.name == "cuda":
        shapes.append((65536, 1024))
    for kind in ["relu", "gelu", "sigmoid", "tanh"]:
        for shape in shapes:
            dy = rng.normal(shape, xp.float32)
            z = rng.normal(shape, xp.float32)
            saved = z if kernels.SAVES[kind] == "z" else reference.activation(kind, z, xp)
            rows.append(compare(
                f"activation_grad[{kind}]", shape,
                lambda: kernels.activation_grad(kind, dy, saved),
                lambda: reference.activation_grad(kind, dy, saved, xp),
                backend, repeats, traffic_bytes=3 * 4 * int(np.prod(shape))))
    return rows


def bench_softmax_ce(backend, repeats, quick):
    xp, rows = backend.xp, []
    rng = backend.rng(1)
    shapes = [(32, 10), (256, 10), (256, 1000)] + ([] if quick else [(4096, 1000)])
    if backend.name == "cuda":
        shapes.append((65536, 1000))
    for n, c in shapes:
        z = rng.normal((n, c), xp.float32)
        labels = rng.integers(0, c, (n,))
        rows.append(compare(
            "softmax_cross_entropy", (n, c),
            lambda: kernels.softmax_cross_entropy(z, labels),
            lambda: reference.softmax_cross_entropy(z, labels, xp),
            backend, repeats, traffic_bytes=2 * 4 * n * c))
    return rows


def bench_adam(backend, repeats, quick):
    xp, rows = backend.xp, []
    rng = backend.rng(2)
    sizes = [55050, 1_000_000] + ([] if quick or backend.name != "cuda" else [50_000_000])
    for n in sizes:
        p, g = rng.normal((n,), xp.float32), rng.normal((n,), xp.float32)
        m, v = xp.zeros_like(p), xp.zeros_like(p)
        kw = dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=10)
        rows.append(compare(
            "adam", (n,), lambda: kernels.adam(p, g, m, v, **kw),
            lambda: reference.adam(p, g, m, v, xp, **kw), backend, repeats,
            traffic_bytes=7 * 4 * n))
    return rows


def bench_training_step(backend_name, repeats):
    """Seconds per epoch of the seed model (784-64-64-10, Adam, batch 32) with the kernels
    and with the composition, alternating, on the MNIST split (or random data)."""
    from xpnet import keras

    data = mnist_split()
    if data is None:
        rng = np.random.default_rng(0)
        x, y = rng.random((8000, 784), np.float32), rng.integers(0, 10, 8000)
    else:
        (x, y), _ = data
    times = {"kernels": [], "composition": []}
    for r in range(repeats):
        for mode in ("kernels", "composition"):
            kernels.enabled(mode == "kernels")
            keras.utils.set_random_seed(r)
            model = keras.Sequential([
                keras.layers.Dense(64, activation="relu", input_shape=(784,)),
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dense(10, activation="softmax")], backend=backend_name)
            model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                          metrics=["accuracy"])
            model.fit(x, y, epochs=1, verbose=0)  # warm-up: compile, caches
            start = time.perf_counter()
            model.fit(x, y, epochs=2, verbose=0)
            model.backend.synchronize()
            times[mode].append((time.perf_counter() - start) / 2)
    kernels.enabled(True)
    k, c = statistics.median(times["kernels"]), statistics.median(times["composition"])
    print(f"training step 784-64-64-10 b32: kernels {k:.4f} s/epoch "
          f"[{min(times['kernels']):.4f}-{max(times['kernels']):.4f}], composition {c:.4f} "
          f"s/epoch [{min(times['composition']):.4f}-{max(times['composition']):.4f}], "
          f"speedup {c / k:.2f}x", flush=True)
    return {"kernels_s_per_epoch": times["kernels"], "composition_s_per_epoch":
            times["composition"], "speedup": c / k}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the largest sizes")
    parser.add_argument("--json")
    args = parser.parse_args()
    backend = get_backend(args.backend)
    print(f"backend {backend.name}; times per call, median [min-max] of {args.repeats} runs")
    results = {"backend": backend.name}
    for name, bench in [("activation_grad", bench_activation),
                        ("softmax_cross_entropy", bench_softmax_ce), ("adam", bench_adam)]:
        try:
            results[name] = bench(backend, args.repeats, args.quick)
        except Exception as e:  # one failing part still lets the others report
            print(f"{name}: FAILED {type(e).__name__}: {e}", flush=True)
            results[name] = {"error": f"{type(e).__name__}: {e}"}
    try:
        results["training_step"] = bench_training_step(backend.name, max(3, args.repeats // 2))
    except Exception as e:
        print(f"training step: FAILED {type(e).__name__}: {e}", flush=True)
        results["training_step"] = {"error": f"{type(e).__name__}: {e}"}
    write_json(args.json, results)


if __name__ == "__main__":
    main()
