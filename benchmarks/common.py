"""Shared helpers for the benchmarks: data, timing statistics, reporting."""

import json
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
MNIST = os.environ.get("XPNET_MNIST", os.path.join(HERE, "..", "..", "shared", "data", "mnist"))


def mnist_split(flat=True):
    """The MNIST test set split as the benchmarks use it: first 8,000 train, last 2,000
    test, scaled to [0, 1]; None where the files are absent."""
    from xpnet import datasets

    if not os.path.exists(os.path.join(MNIST, "t10k-images-idx3-ubyte.gz")):
        return None
    x, y = datasets.load_mnist(MNIST, subset="test")  # the test set, even beside train files
    x = (x.reshape(len(x), -1) if flat else x[..., None]).astype("float32") / 255.0
    y = y.astype("int64")
    return (x[:8000], y[:8000]), (x[8000:], y[8000:])


def summarize(times):
    """Median and [min, max] of a list of seconds."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "n": len(times)}


def fmt(s):
    return f"{s['median']:.4f} [{s['min']:.4f}-{s['max']:.4f}]"


def write_json(path, payload):
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)


def blas():
    """The BLAS libraries NumPy loaded and the kernels they run ("openblas 0.3.31 SkylakeX").

    This machine's environment pins ``OPENBLAS_CORETYPE=Haswell`` (with ``OPENBLAS_L2_SIZE``)
    for old OpenBLAS builds; a user's NumPy runs its AVX-512 kernels here. Benchmarks that
    compare with PyTorch run under ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``, and print
    this so the kernel is on record.
    """
    from threadpoolctl import threadpool_info

    return [f"{m['internal_api']} {m.get('version')} {m.get('architecture')}"
            for m in threadpool_info() if m["user_api"] == "blas"]
