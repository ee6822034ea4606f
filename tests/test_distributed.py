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


TRAJECTORIES = ["dense-sgd", "dense-adam", "conv-sgd", "conv-adam", "dense-reg-tiny"]


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
            np.testing.assert_allclose(logsn[key][metric], v1, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{key}[{metric}]")


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
    proc = run(3, tmp_path, "fault-hang", timeout=60, XPNET_DIST_TIMEOUT="2")
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
    left = subprocess.run(["pgrep", "-f", f"{CASES} {tmp_path}"], capture_output=True,
                          text=True).stdout.split()
    assert not left, f"processes left running: {left}"
