"""xpnet's CPU threads (kernels/threads.py): chunking, results, errors, nesting, the
products split over them, and the policy ``fit`` applies."""

import os
import threading
import time

import numpy as np
import pytest

from xpnet import keras
from xpnet.kernels import threads


@pytest.mark.parametrize("total, parts", [(0, 2), (1, 3), (7, 3), (64, 4), (5, 5), (3, 8)])
def test_split_covers_the_range_evenly(total, parts):
    bounds = threads.split(total, parts)
    covered = [i for a, b in bounds for i in range(a, b)]
    assert covered == list(range(total))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1
    assert len(bounds) == max(1, min(parts, total))


def test_run_returns_results_in_chunk_order_from_several_threads():
    seen = set()

    def chunk(i, j):
        seen.add(threading.get_ident())
        time.sleep(0.002)  # long enough that the helper takes chunks too
        return list(range(i, j))

    with threads.using(3):
        assert threads.count() == 3
        parts = threads.run(chunk, 50)
    assert [i for p in parts for i in p] == list(range(50))
    assert len(parts) == 6  # two chunks a thread, taken from one queue
    assert len(seen) > 1
    assert threads.count() == 1  # restored


def test_run_outside_using_is_one_call_on_the_caller():
    calls = []
    assert threads.run(lambda i, j: calls.append((i, j, threading.get_ident())), 10) == [None]
    assert calls == [(0, 10, threading.get_ident())]


def test_min_chunk_limits_the_split():
    with threads.using(4):
        assert len(threads.run(lambda i, j: j - i, 100, min_chunk=60)) == 1
        assert len(threads.run(lambda i, j: j - i, 100, min_chunk=30)) == 3


def test_an_error_is_raised_after_every_chunk_has_finished():
    finished = []

    def chunk(i, j):
        if i == 0:
            raise ValueError("first chunk")
        time.sleep(0.005)
        finished.append(i)

    with threads.using(2):
        with pytest.raises(ValueError, match="first chunk"):
            threads.run(chunk, 8)
        # nothing runs on after run() returned: the other thread's chunks are done
        done = list(finished)
        time.sleep(0.02)
        assert finished == done and finished
        assert threads.run(lambda i, j: j - i, 8) == [2, 2, 2, 2]  # the team still works


def test_nested_runs_and_concurrent_callers_fall_back_to_serial():
    def inner(i, j):
        return len(threads.run(lambda a, b: b - a, 40))

    with threads.using(2):
        # inside a chunk: the caller's nested run finds the team busy, a helper's is serial
        assert threads.run(inner, 4) == [1, 1, 1, 1]
        results = []

        def caller():
            results.append(sum(threads.run(lambda i, j: j - i, 100)))

        others = [threading.Thread(target=caller) for _ in range(4)]
        for t in others:
            t.start()
        for t in others:
            t.join()
        assert results == [100] * 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_wait_for_the_parents_threads():
    with threads.using(2):
        threads.run(lambda i, j: None, 4)  # the team exists
        pid = os.fork()
        if pid == 0:  # child: would hang if it handed chunks to threads it does not have
            try:
                with threads.using(2):
                    ok = threads.run(lambda i, j: j - i, 10) == [3, 3, 2, 2]
            finally:
                os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


@pytest.mark.parametrize("m, k, n", [(512, 300, 256), (40, 3000, 600), (4, 8, 5)])
def test_split_products_equal_the_plain_ones(m, k, n):
    rng = np.random.default_rng(m)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    c = rng.standard_normal((n, k))
    with threads.using(2):
        np.testing.assert_allclose(threads.matmul(a, b), a @ b, rtol=1e-12)
        np.testing.assert_allclose(threads.matmul(a.T[:k].T, c.T), a @ c.T, rtol=1e-12)
        first, second = threads.matmuls([(a, b), (a.T, a)])
    np.testing.assert_allclose(first, a @ b, rtol=1e-12)
    np.testing.assert_allclose(second, a.T @ a, rtol=1e-12)


class Probe(keras.layers.Layer):
    """Records (xpnet's thread count, BLAS's thread counts) at each forward in ``seen``."""

    seen = []

    def forward(self, x, training=False):
        from threadpoolctl import threadpool_info

        blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
        self.seen.append((threads.count(), blas))
        return x, None

    def backward(self, ctx, dy):
        return dy


def test_fit_runs_large_steps_on_the_threads_with_one_blas_thread(monkeypatch):
    """The policy: BLAS on one thread inside fit, and xpnet's threads for large steps only
    (XPNET_CPU_THREADS sets their number)."""
    seen = Probe.seen
    monkeypatch.setenv("XPNET_CPU_THREADS", "3")
    x = np.random.default_rng(0).standard_normal((64, 8, 8, 2)).astype(np.float32)
    y = np.zeros(64, dtype=np.int64)
    for filters, want in ((64, 3), (1, 3)):  # the variable sets the count for any step
        model = keras.Sequential([keras.Input((8, 8, 2)), Probe(),
                                  keras.layers.Conv2D(filters, 3), keras.layers.Flatten(),
                                  keras.layers.Dense(2)])
        model.compile("sgd", "sparse_categorical_crossentropy")
        seen.clear()
        model.fit(x, y, batch_size=64, epochs=1, verbose=0)
        assert seen and all(c == want and all(b == 1 for b in blas) for c, blas in seen)
    monkeypatch.delenv("XPNET_CPU_THREADS")
    model = keras.Sequential([keras.Input((8, 8, 2)), Probe(), keras.layers.Flatten(),
                              keras.layers.Dense(2)])  # 256 multiply-adds a sample: small
    model.compile("sgd", "sparse_categorical_crossentropy")
    seen.clear()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    assert seen and all(c == 1 for c, _ in seen)
    big = keras.Sequential([keras.Input((8, 8, 2)), Probe(), keras.layers.Conv2D(256, 3),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    big.compile("sgd", "sparse_categorical_crossentropy")
    seen.clear()
    big.predict(x, batch_size=64, verbose=0)
    assert seen and all(c == threads.available() for c, _ in seen)


def test_an_eager_model_call_picks_its_threads_as_predict_does():
    """``model(x)`` a step at a time (greedy decoding, sampling) runs BLAS on one thread, as
    predict does; a model called inside another's call keeps the outer model's choice."""
    from threadpoolctl import threadpool_info

    def blas():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas()
    inner = keras.Sequential([keras.Input((8, 8, 2)), Probe(), keras.layers.Conv2D(256, 3)])

    class Outer(keras.Model):
        def __init__(self):
            super().__init__()
            self.inner, self.probe = inner, Probe()

        def call(self, x):
            return self.probe(self.inner(x))

    x = np.zeros((64, 8, 8, 2), np.float32)
    Probe.seen.clear()
    inner(x)
    inner(x[:1])  # small: xpnet's threads too drop to one
    assert Probe.seen == [(threads.available(), [1] * len(before)), (1, [1] * len(before))]
    assert blas() == before  # restored after the call
    Probe.seen.clear()
    Outer()(x[:1])  # built on a slice of the data first, then called
    assert Probe.seen and all(s == (1, [1] * len(before)) for s in Probe.seen)


def test_a_container_quota_caps_the_thread_count(tmp_path, monkeypatch):
    assert threads._cgroup_cpus(str(tmp_path)) is None  # no files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads._cgroup_cpus(str(tmp_path)) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads._cgroup_cpus(str(tmp_path)) == 2
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads._cgroup_cpus(str(tmp_path)) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    assert threads._cgroup_cpus(str(tmp_path)) == 1
    monkeypatch.delenv("XPNET_CPU_THREADS", raising=False)
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: 1)
    assert threads.available() == 1
    monkeypatch.setenv("XPNET_CPU_THREADS", "3")
    assert threads.available() == 3


@pytest.mark.parametrize("name, kwargs, slots", [
    ("adam", dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3, decay=1e-4),
     ("m", "v")),
    ("adam", dict(lr=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, step=3), ("m", "v", "vhat")),
    ("rmsprop", dict(lr=1e-3, rho=0.9, epsilon=1e-7), ("v",)),
    ("rmsprop", dict(lr=1e-3, rho=0.9, epsilon=1e-7, momentum=0.5), ("v", "momentum_buf", "mg")),
    ("sgd", dict(lr=1e-2), ()),
    ("sgd", dict(lr=1e-2, momentum=0.9, nesterov=True), ("velocity",)),
    ("adagrad", dict(lr=1e-2, epsilon=1e-7), ("acc",)),
])
def test_optimizer_updates_split_over_threads_equal_one_thread(name, kwargs, slots):
    """Elementwise updates over chunks of a flat buffer: the same numbers, bit for bit."""
    from xpnet import kernels

    n = 3 * kernels._SPLIT_MIN + 17
    rng = np.random.default_rng(0)
    start = {k: rng.random(n, dtype=np.float32) for k in ("param", "grad") + slots}
    results = []
    for count in (1, 3):
        arrays = {k: v.copy() for k, v in start.items()}
        param, grad = arrays.pop("param"), arrays.pop("grad")
        positional = [arrays.pop(k) for k in ("m", "v", "acc") if k in arrays]
        with threads.using(count):
            getattr(kernels, name)(param, grad, *positional, **arrays, **kwargs)
        results.append([param, *positional, *arrays.values()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(results[0][0], start["param"])


def test_ctrl_c_while_waiting_for_a_helper_leaves_the_team_in_step():
    """A KeyboardInterrupt that reaches the caller while it waits for the other thread is
    raised only once that thread has finished its chunk, and the next runs are complete."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals go to the main thread")

    helper_started = threading.Event()

    def chunk(i, j):
        if threading.current_thread() is threading.main_thread():
            helper_started.wait(5)  # so that the helper holds the other chunk
        else:
            helper_started.set()
            time.sleep(0.3)
        return (i, j)

    timer = threading.Timer(0.1, lambda: signal.pthread_kill(threading.main_thread().ident,
                                                            signal.SIGINT))
    with threads.using(2):
        threads._CHUNKS_PER_THREAD, before = 1, threads._CHUNKS_PER_THREAD
        try:
            start = time.perf_counter()
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                threads.run(chunk, 2)
            assert time.perf_counter() - start >= 0.29  # waited for the helper's chunk
        finally:
            threads._CHUNKS_PER_THREAD = before
            timer.cancel()
        for _ in range(3):
            assert threads.run(lambda i, j: (i, j), 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_the_thread_count_belongs_to_the_thread_that_set_it():
    seen = {}
    entered, leave = threading.Event(), threading.Event()

    def other():
        with threads.using(3):
            entered.set()
            leave.wait(5)
            seen["inner"] = threads.count()
        seen["after"] = threads.count()

    t = threading.Thread(target=other)
    t.start()
    entered.wait(5)
    seen["main while other inside"] = threads.count()
    with threads.using(2):
        leave.set()
        t.join()
        seen["main inside"] = threads.count()
    seen["main after"] = threads.count()
    assert seen == {"inner": 3, "after": 1, "main while other inside": 1, "main inside": 2,
                    "main after": 1}
