"""Data parallelism on this machine: 2 processes x 1 thread (``mpiexec -n 2``, xpnet's
gradient all-reduce) against 1 process x 2 threads (xpnet's threads splitting each batch),
for the wide MLP (784-1024-1024-10, batch 256) and the MNIST CNN of benchmarks/conv.py
(batch 64); the time per step spent waiting for the all-reduce, with and without overlap;
the MPI all-reduce's latency and bandwidth; and the ring all-reduce time those predict at
8, 64 and 512 processes.

    python benchmarks/distributed.py [--rounds 3] [--steps 30] [--json out.json]

Every configuration runs in fresh processes, alternating, several rounds; medians and
[min-max] over the rounds. The machine is shared: expect noise.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import mnist_split  # noqa: E402
from common import summarize  # noqa: E402
from common import write_json  # noqa: E402

ROOT = os.path.dirname(HERE)
MODELS = {"mlp": 256, "cnn": 64}  # model -> global batch


def build(name):
    from xpnet import keras

    keras.utils.set_random_seed(0)
    if name == "mlp":
        layers = [keras.Input(shape=(784,)), keras.layers.Dense(1024, activation="relu"),
                  keras.layers.Dense(1024, activation="relu"),
                  keras.layers.Dense(10, activation="softmax")]
    else:
        layers = [keras.Input(shape=(28, 28, 1)),
                  keras.layers.Conv2D(32, 3, activation="relu"),
                  keras.layers.MaxPooling2D(2),
                  keras.layers.Conv2D(64, 3, activation="relu"),
                  keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                  keras.layers.Dense(128, activation="relu"),
                  keras.layers.Dense(10, activation="softmax")]
    model = keras.Sequential(layers, backend="cpu")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def data(name, n):
    split = mnist_split(flat=name == "mlp")
    if split is None:  # timing does not depend on the values
        rng = np.random.default_rng(0)
        shape = (784,) if name == "mlp" else (28, 28, 1)
        return rng.random((n,) + shape, dtype=np.float32), rng.integers(0, 10, n)
    (x, y), _ = split
    return x[:n], y[:n]


# -- worker: one configuration, in its own process(es) --------------------------------------
def worker(name, steps, overlap):
    from xpnet import distributed
    from xpnet.distributed import runtime

    distributed.set_distribution(distributed.DataParallel())
    rt = distributed.active()
    waits = []
    if rt is not None:
        if not overlap:  # every bucket starts after the backward pass
            runtime.Runtime._ready = lambda self, buckets, done: None
        reduce = runtime.Runtime.reduce_gradients

        def timed(self, model):
            start = time.perf_counter()
            reduce(self, model)
            waits.append(time.perf_counter() - start)

        runtime.Runtime.reduce_gradients = timed
    batch = MODELS[name]
    model = build(name)
    x, y = data(name, batch * (steps + 5))
    model.fit(x[:batch * 5], y[:batch * 5], batch_size=batch, epochs=1, verbose=0,
              shuffle=False)  # warm-up: compilation, buffers
    waits.clear()
    start = time.perf_counter()
    model.fit(x[batch * 5:], y[batch * 5:], batch_size=batch, epochs=1, verbose=0,
              shuffle=False)
    per_step = (time.perf_counter() - start) / steps
    out = {"step_ms": per_step * 1e3, "rank": distributed.process_id()}
    if rt is not None:
        out["allreduce_wait_ms"] = float(np.median(waits)) * 1e3
        flat = model._flat
        out["grad_bytes"] = int(sum(g.nbytes for g, _ in flat.groups))
        out["buckets"] = len(rt._buckets[model].buckets)
        out.update(bandwidth(rt.world, out["grad_bytes"]))
    if out["rank"] == 0:
        print("RESULT " + json.dumps(out), flush=True)


def bandwidth(comm, grad_bytes):
    """All-reduce time of float32 buffers from 8 B to 64 MiB, and of the gradient size."""
    sizes = [2, 1 << 10, 1 << 14, 1 << 18, 1 << 20, 1 << 22, 1 << 24, grad_bytes // 4]
    table = {}
    for n in sizes:
        buf = np.ones(n, dtype=np.float32)
        reps = 50 if n < (1 << 20) else 8
        comm.allreduce(buf)
        times = []
        for _ in range(reps):
            comm.barrier()
            start = time.perf_counter()
            comm.allreduce(buf)
            times.append(time.perf_counter() - start)
        table[n * 4] = float(np.median(times))
    return {"allreduce_s_by_bytes": table}


# -- driver ---------------------------------------------------------------------------------------
def run_config(name, procs, threads, steps, overlap=True):
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               XPNET_CPU_THREADS=str(threads), XPNET_BACKEND="cpu",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cmd = [sys.executable, __file__, "--worker", name, "--steps", str(steps)]
    if not overlap:
        cmd.append("--no-overlap")
    if procs > 1:
        cmd = [mpiexec, "-n", str(procs)] + cmd
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
    if out.returncode or not line:
        raise RuntimeError(out.stdout[-2000:] + out.stderr[-2000:])
    return json.loads(line[0][len("RESULT "):])


def ring_prediction(latency_s, bus_bw, grad_bytes, n):
    """Ring all-reduce: 2(N-1) steps, each moving 1/N of the buffer: ``2(N-1) alpha +
    2(N-1)/N * bytes / bandwidth``."""
    return 2 * (n - 1) * latency_s + 2 * (n - 1) / n * grad_bytes / bus_bw


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-overlap", action="store_true")
    parser.add_argument("--json")
    parser.add_argument("--report", help="recompute the report from a --json file's rows")
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, not args.no_overlap)
    if args.report:
        with open(args.report) as f:
            saved = json.load(f)
        results = {name: report(name, saved[name]["raw"]) for name in saved}
        write_json(args.json, results)
        return
    results = {}
    for name in MODELS:
        rows = {"2x1": [], "2x1-no-overlap": [], "1x2": [], "1x1": []}
        for _ in range(args.rounds):
            rows["1x1"].append(run_config(name, 1, 1, args.steps))
            rows["2x1"].append(run_config(name, 2, 1, args.steps))
            rows["2x1-no-overlap"].append(run_config(name, 2, 1, args.steps, overlap=False))
            rows["1x2"].append(run_config(name, 1, 2, args.steps))
        results[name] = report(name, rows)
    write_json(args.json, results)


def report(name, rows):
    s = {k: summarize([r["step_ms"] for r in v]) for k, v in rows.items()}
    ratio = summarize([a["step_ms"] / b["step_ms"] for a, b in zip(rows["2x1"], rows["1x2"])])
    wait = {k: summarize([r["allreduce_wait_ms"] for r in rows[k]])
            for k in ("2x1", "2x1-no-overlap")}
    grad = rows["2x1"][0]["grad_bytes"]
    table = {}
    for r in rows["2x1"]:
        for b, t in r["allreduce_s_by_bytes"].items():
            table.setdefault(int(b), []).append(t)
    table = {b: float(np.median(t)) for b, t in sorted(table.items())}
    latency = table[min(table)]
    big = max(b for b in table if b != grad)
    bus_bw = grad / table[grad]  # N = 2: 2(N-1)/N = 1; measured at the gradients' size
    print(f"\n{name} (global batch {MODELS[name]}), ms/step median [min-max] over "
          f"{len(rows['1x2'])} rounds; gradients {grad / 2**20:.2f} MiB in "
          f"{rows['2x1'][0]['buckets']} buckets")
    for k, v in s.items():
        print(f"  {k:16s} {v['median']:8.2f} [{v['min']:.2f}-{v['max']:.2f}]")
    print(f"  2x1 / 1x2 time ratio {ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}]")
    for k, v in wait.items():
        print(f"  all-reduce wait before the optimizer ({k}): {v['median']:.2f} ms "
              f"[{v['min']:.2f}-{v['max']:.2f}]")
    print(f"  MPI all-reduce (2 procs): latency {latency * 1e6:.1f} us; the gradients "
          f"{table[grad] * 1e3:.2f} ms = bus bandwidth {bus_bw / 1e9:.2f} GB/s; "
          f"{big / 2**20:.0f} MiB in {table[big] * 1e3:.2f} ms = "
          f"{big / table[big] / 1e9:.2f} GB/s")
    # weak scaling: every process keeps the 2x1 run's local batch (half the global one)
    compute = s["2x1"]["median"] - wait["2x1"]["median"]
    backward = compute * 2 / 3  # the part of a step that overlap can hide the all-reduce in
    alpha = latency / 2  # a 2-process all-reduce is 2 ring steps
    predicted = {}
    for n in (2, 8, 64, 512):  # each process on its own link of the measured bandwidth
        t = ring_prediction(alpha, bus_bw, grad, n) * 1e3
        exposed = max(0.0, t - backward)
        predicted[n] = {"allreduce_ms": t, "efficiency_no_overlap": compute / (compute + t),
                        "efficiency_overlap": compute / (compute + exposed)}
        print(f"  ring all-reduce at N={n:3d}: {t:7.2f} ms/step against {compute:.1f} ms of "
              f"compute at local batch {MODELS[name] // 2}: efficiency "
              f"{predicted[n]['efficiency_no_overlap']:.0%} without overlap, "
              f"{predicted[n]['efficiency_overlap']:.0%} with (backward {backward:.1f} ms)")
    return {"step_ms": s, "ratio_2x1_over_1x2": ratio, "allreduce_wait_ms": wait,
            "grad_bytes": grad, "allreduce_s_by_bytes": table, "latency_s": latency,
            "bus_bandwidth_Bps": bus_bw, "predicted": predicted, "raw": rows}


if __name__ == "__main__":
    main()
