"""Data-parallel training (xpnet.distributed) under ``mpiexec -n 2`` and ``-n 3``.

The scenarios live in tests/distributed_cases.py; each run writes rank 0's final float64
weights and logs, which are compared here with a one-process run on the same global batches.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from xpnet import distributed
from xpnet import keras
from xpnet.distributed.buckets import GradBuckets
from xpnet.distributed.runtime import Runtime
from xpnet.utils import set_random_seed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, "tests", "distributed_cases.py")


def _mpiexec():
    here = shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    return here or shutil.which("mpiexec")


try:
    import mpi4py  # noqa: F401

    REASON = None if _mpiexec() else "no mpiexec (pip install 'xpnet[mpi]')"
except ImportError:
    REASON = "mpi4py is not installed (pip install 'xpnet[mpi]')"

needs_mpi = pytest.mark.skipif(REASON is not None, reason=str(REASON))


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                "XPNET_BACKEND": "cpu", **extra})
    return env


def run(n, out, case="all", timeout=120, **env):
    """``mpiexec -n n python distributed_cases.py out case`` (n=0: plain python)."""
    os.makedirs(out, exist_ok=True)
    launcher = [] if n == 0 else [_mpiexec(), "-n", str(n)]
    proc = subprocess.run(launcher + [sys.executable, CASES, str(out), case],
                          capture_output=True, text=True, timeout=timeout, env=_env(**env))
    return proc


def ok(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def load(out, name):
    z = np.load(os.path.join(out, name + ".npz"))
    return z["weights"], float(z["spread"]), json.loads(str(z["logs"]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if REASON is not None:
        pytest.skip(REASON)
    base = tmp_path_factory.mktemp("dist")
    out = {}
    for n in (0, 2, 3):
        out[n] = str(base / f"n{n}")
        ok(run(n, out[n]))
    return out


TRAJECTORIES = ["dense-sgd", "dense-adam", "conv-sgd", "conv-adam", "dense-reg-tiny",
                "on-batch", "added-losses"]


@needs_mpi
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("name", TRAJECTORIES)
def test_same_trajectory_as_one_process(runs, name, n):
    """Float64 weights after 5+ steps equal one process's within 1e-10 (SGD with momentum
    and Adam; dense, and conv with BatchNormalization(synchronized=True); an uneven last
    batch, a last batch of one sample, weight penalties); every rank holds the same
    weights; the reduced losses and metrics equal the one-process ones."""
    w1, _, logs1 = load(runs[0], name)
    wn, spread, logsn = load(runs[n], name)
    assert spread == 0.0
    np.testing.assert_allclose(wn, w1, rtol=0, atol=1e-10)
    for key in ("history", "evaluate"):
        for metric, v1 in logs1[key].items():
            np.testing.assert_allclose(np.array(pd_values(logsn[key][metric])),
                                       np.array(pd_values(v1)), rtol=1e-9, atol=1e-12,
                                       err_msg=f"{key}[{metric}]")


def pd_values(v):
    """The numbers in a log entry (a float, a list of floats, or a list of dicts)."""
    if isinstance(v, dict):
        return [x for k in sorted(v) for x in pd_values(v[k])]
    if isinstance(v, list):
        return [x for e in v for x in pd_values(e)]
    return [v]


@needs_mpi
def test_buckets_start_during_backward(runs):
    _, _, logs = load(runs[2], "dense-adam")
    assert logs["buckets"] >= 3
    assert logs["early"] >= 2  # started before the backward pass ended


@needs_mpi
def test_local_batch_norm_differs(runs, tmp_path):
    """The check above can fail: with local (per-process) statistics the conv model leaves
    the one-process trajectory."""
    ok(run(2, tmp_path, "localbn"))
    w1, _, _ = load(runs[0], "conv-sgd")
    w2, _, _ = load(str(tmp_path), "conv-localbn")
    assert np.max(np.abs(w2 - w1)) > 1e-6


@needs_mpi
def test_dropout_streams_differ_per_rank_and_repeat(runs):
    z = np.load(os.path.join(runs[2], "dropout.npz"))
    assert bool(z["distinct"])
    np.testing.assert_array_equal(z["a"], z["b"])


@needs_mpi
def test_rank_zero_prints_and_writes(tmp_path):
    proc = ok(run(3, tmp_path, "callbacks"))
    assert proc.stdout.count("Epoch 1/3") == 1, proc.stdout
    rows = (tmp_path / "log.csv").read_text().strip().splitlines()
    assert rows[0] == "epoch,loss,val_loss" and len(rows) in (3, 4)  # early stopping
    assert (tmp_path / "ckpt.xpnet").exists() and (tmp_path / "final.xpnet").exists()
    assert not [p for p in os.listdir(tmp_path) if "tmp" in p]


@needs_mpi
def test_resume_on_another_process_count(tmp_path):
    """One epoch on 2 processes, saved; the second epoch on 3 processes from that file,
    equals two uninterrupted epochs in one process."""
    ok(run(2, tmp_path, "resume", PHASE="a"))
    ok(run(3, tmp_path, "resume", PHASE="b"))
    ok(run(0, tmp_path, "resume", PHASE="ab"))
    wb, spread, _ = load(str(tmp_path), "resume-b")
    wab, _, _ = load(str(tmp_path), "resume-ab")
    assert spread == 0.0
    np.testing.assert_allclose(wb, wab, rtol=0, atol=1e-10)


@needs_mpi
def test_a_raising_rank_stops_every_rank(tmp_path):
    start = time.monotonic()
    proc = run(3, tmp_path, "fault-raise", timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode != 0
    assert "rank 1 of 3 failed with ValueError: boom in rank 1" in proc.stderr


@needs_mpi
def test_a_killed_rank_stops_every_rank(tmp_path):
    start = time.monotonic()
    proc = run(2, tmp_path, "fault-kill", timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode != 0
    pid = proc.stdout.split("rank 1 pid ")[1].split()[0]
    assert f"PID {pid}" in proc.stdout + proc.stderr  # the launcher names the dead process


@needs_mpi
def test_a_hung_rank_is_named_after_the_timeout(tmp_path):
    start = time.monotonic()
    proc = run(3, tmp_path, "fault-hang", timeout=60, FAULT_TIMEOUT="3")
    assert time.monotonic() - start < 30
    assert proc.returncode != 0
    assert "rank(s) [1] did not arrive" in proc.stderr, proc.stderr[-2000:]


@needs_mpi
def test_ctrl_c_stops_every_rank(tmp_path):
    proc = subprocess.Popen([_mpiexec(), "-n", "2", sys.executable, CASES, str(tmp_path),
                             "fault-none"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=_env())
    try:
        for line in proc.stdout:
            if "rank 0 ready" in line:
                break
        start = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert time.monotonic() - start < 30
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10  # mpiexec may return while its children still exit
    while True:
        left = subprocess.run(["pgrep", "-f", f"{CASES} {tmp_path}"], capture_output=True,
                              text=True).stdout.split()
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left running: {left}"


# -- one process: the API, the batch split, the buckets (no launcher needed) -----------------


@pytest.fixture
def no_distribution():
    yield
    distributed.set_distribution(None)


def _mlp(seed):
    set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(5,)), keras.layers.Dense(7, activation="relu"),
                              keras.layers.BatchNormalization(synchronized=True),
                              keras.layers.Dense(2, activation="softmax")], backend="cpu")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def test_one_process_runs_unchanged(no_distribution):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 5)), rng.integers(0, 2, 30)
    plain = _mlp(1)
    plain.fit(x, y, batch_size=8, epochs=2, verbose=0)
    dp = distributed.DataParallel()
    with dp.scope():
        assert distributed.distribution() is dp
        assert distributed.active() is None  # one process: nothing to distribute
        model = _mlp(1)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert distributed.distribution() is None
    for a, b in zip(plain.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_keras_distribution_api_shapes(no_distribution):
    assert distributed.list_devices("cpu") == ["cpu:0"]
    assert distributed.list_devices("gpu") == ["gpu:0"]
    with pytest.raises(ValueError, match="device_type"):
        distributed.list_devices("tpu")
    mesh = distributed.DeviceMesh((1,), ["batch"], ["cpu:0"])
    assert distributed.DataParallel(device_mesh=mesh).batch_dim_name == "batch"
    with pytest.raises(ValueError, match="same size"):
        distributed.DeviceMesh((1,), ["a", "b"], ["cpu:0"])
    with pytest.raises(ValueError, match="number of devices"):
        distributed.DeviceMesh((2,), ["batch"], ["cpu:0"])
    with pytest.raises(ValueError, match="mpiexec -n 2"):
        distributed.DataParallel(devices=["cpu:0", "cpu:1"])
    with pytest.raises(ValueError, match="DeviceMesh"):
        distributed.DataParallel(device_mesh="batch")
    with pytest.raises(TypeError, match="Distribution"):
        distributed.set_distribution("data")
    dp = distributed.DataParallel()
    distributed.set_distribution(dp)
    assert distributed.distribution() is dp
    assert distributed.num_processes() == 1 and distributed.process_id() == 0


def test_batch_norm_synchronized_in_config():
    bn = keras.layers.BatchNormalization(synchronized=True)
    assert bn.get_config()["synchronized"] is True
    assert keras.layers.BatchNormalization.from_config(bn.get_config()).synchronized


class _FakeWorld:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_cover_each_global_batch_once(size):
    """Every sample of every global batch (the last uneven one included) goes to exactly
    one rank; a rank with no sample holds a stand-in weighted 0."""
    import numpy

    from xpnet.engine.data_adapter import take_batch

    xp, n, batch = numpy, 23, 8
    xs, ys = [numpy.arange(n, dtype=float)[:, None]], [numpy.arange(n)]
    perm = numpy.random.default_rng(0).permutation(n)
    model = type("M", (), {"dtype": "float64",
                           "backend": type("B", (), {"device": "cpu"})()})()
    for start in range(0, n, batch):
        seen, total = [], 0
        for rank in range(size):
            rt = Runtime(_FakeWorld(rank, size))
            bx, by, bw = rt.take(model, xp, xs, ys, None, perm, start, batch, n, take_batch)
            assert rt.global_count == min(batch, n - start)
            total += rt.local_count
            if rt.local_count:
                assert bw is None and len(by[0]) == rt.local_count
                seen.extend(by[0].tolist())
            else:
                assert bw.tolist() == [0.0] and len(by[0]) == 1
        assert total == min(batch, n - start)
        assert seen == perm[start:start + batch].tolist()


class _RecordingComm:
    def __init__(self):
        self.started = []

    def iallreduce(self, view):
        self.started.append((view.__array_interface__["data"][0], view.shape[0]))

    def progress(self, requests):
        pass

    def wait(self, requests, what=""):
        pass


def test_buckets_follow_the_backward_order_and_shared_layers():
    """The last layers' bucket starts first; a layer called twice waits for its first call's
    backward; together the buckets cover the flat buffer once."""
    inp = keras.Input(shape=(4,))
    d1, shared, d3 = keras.layers.Dense(4), keras.layers.Dense(4), keras.layers.Dense(4)
    out = keras.layers.Dense(2)
    y = out(shared(d3(shared(d1(inp)))))
    model = keras.Model(inp, y, backend="cpu")
    model.compile(optimizer="sgd", loss="mse")
    model._ensure_packed()  # gen: the weights are captured at the first train step (Keras)
    comm = _RecordingComm()
    buckets = GradBuckets(model, lambda a: comm, bucket_bytes=1)
    flat_g = model._flat.groups[0][0]
    base = flat_g.__array_interface__["data"][0]
    order = [la for la, *_ in model._flat.layout[0][1]]

    def started_layers():
        starts = {(a - base) // flat_g.itemsize for a, _ in comm.started}
        return {la.name for la, _, off, *_ in model._flat.layout[0][1] if off in starts}

    buckets.ready(1)  # the output layer's backward is done
    assert started_layers() == {out.name}
    buckets.ready(2)  # the second call of `shared`: not final yet
    assert started_layers() == {out.name}
    buckets.ready(3)  # d3
    assert started_layers() == {out.name, d3.name}
    buckets.ready(4)  # the first call of `shared`
    assert shared.name in started_layers() and d1.name not in started_layers()
    buckets.finish()
    assert sum(n for _, n in comm.started) == flat_g.shape[0]
    assert len(comm.started) == len(order)


def test_backend_takes_a_device_index():
    """``"cuda:N"``/``"gpu:N"`` name one GPU (one process per GPU); without that GPU the
    error says why."""
    from xpnet.backend import BackendUnavailableError
    from xpnet.backend import get_backend

    try:
        count = get_backend("cuda") and __import__("cupy").cuda.runtime.getDeviceCount()
    except BackendUnavailableError:
        count = 0
    if count:
        b = get_backend(f"gpu:{count - 1}")
        assert b.device.id == count - 1
        import cupy

        assert cupy.cuda.Device().id == count - 1
        get_backend("cuda:0")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        get_backend(f"cuda:{count}")


def test_a_dead_peer_on_this_host_is_named():
    """Where the launcher leaves the others running, a waiting rank notices that a peer's
    process is gone (its pid) and names it."""
    from xpnet.distributed.comm import DistributedError
    from xpnet.distributed.comm import MPIComm

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    comm = MPIComm.__new__(MPIComm)  # no MPI needed for the liveness check itself
    comm.rank, comm._local_peers = 0, [(2, gone.pid)]
    with pytest.raises(DistributedError, match=f"rank 2 \\(pid {gone.pid}\\) died"):
        comm._check_peers("the gradient all-reduce")
    comm._local_peers = [(1, os.getpid())]
    comm._check_peers("a barrier")  # alive: nothing


def test_metric_states_sum_over_ranks():
    """The reduction sums any metric state (a confusion matrix, counts, Python or 0-d
    totals); with one process it is the identity."""
    from xpnet.distributed.comm import LocalComm

    m = keras.metrics.MeanIoU(3, sparse_y_pred=False)
    m.update_state(np.array([0, 1, 2, 2]), np.eye(3)[[0, 2, 2, 1]])
    rt = Runtime(LocalComm())
    assert float(rt.reduced(m).result()) == pytest.approx(float(m.result()))
    mean = keras.metrics.Mean()
    mean.update_state(np.array([1.0, 3.0]))
    assert float(rt.reduced(mean).result()) == 2.0
