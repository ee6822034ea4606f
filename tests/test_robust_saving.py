"""Saving and loading under faults and hostile files (issue 11, points 1-5): concurrent
writers, stale temporaries, errors that name the target, bounded reads of the header,
validation of the whole file before anything is built, and ModelCheckpoint's failures."""

import json
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc

import numpy as np
import pytest

import xpnet
from xpnet import callbacks
from xpnet import keras
from xpnet import layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model(width=8, seed=0, compiled=True):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(width, activation="relu"),
                              layers.Dropout(0.2), layers.Dense(3, activation="softmax")],
                             backend="cpu")
    if compiled:
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


def _split(data):
    """(header dict, metadata dict of parsed JSON values, tensor bytes) of a saved file."""
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    return header, data[8 + n:]


def _join(header, body):
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + body


def _with_meta(data, key, value):
    """The file ``data`` with metadata entry ``key`` replaced by the JSON of ``value``
    (``None``: removed)."""
    header, body = _split(data)
    meta = header["__metadata__"]
    if value is None:
        meta.pop(key, None)
    else:
        meta[key] = value if isinstance(value, str) and key in (
            "format", "format_version", "kind", "xpnet_version", "backend") \
            else json.dumps(value)
    return _join(header, body)


# -- 1. concurrent writers ------------------------------------------------------------------
_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from xpnet import keras, layers
    keras.utils.set_random_seed(int(sys.argv[1]))
    m = keras.Sequential([keras.Input(shape=(2500,)), layers.Dense(2500)], backend="cpu")
    for _ in range(int(sys.argv[2])):
        m.save(sys.argv[3])
""")

_READER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import xpnet
    loads = 0
    while not os.path.exists(sys.argv[2]):
        if os.path.exists(sys.argv[1]):
            m = xpnet.load_model(sys.argv[1])  # any error: a partial or broken file seen
            assert m.get_weights()[0].shape == (2500, 2500)
            loads += 1
    print(loads)
""")


def test_concurrent_saves_to_one_path(tmp_path):
    """3 processes x 10 saves of a 25 MB model to one path, a reader loading in a loop: no
    save raises, every load sees a whole file, no temporary file remains."""
    path, done = str(tmp_path / "m.xpnet"), str(tmp_path / "done")
    reader = subprocess.Popen([sys.executable, "-c", _READER.format(root=ROOT), path, done],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER.format(root=ROOT), str(k),
                                 "10", path], stderr=subprocess.PIPE, text=True)
               for k in range(3)]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    open(done, "w").close()
    out, err = reader.communicate(timeout=120)
    assert [w.returncode for w in writers] == [0, 0, 0], errors
    assert reader.returncode == 0, err
    assert int(out) > 0
    assert sorted(os.listdir(tmp_path)) == ["done", "m.xpnet"]
    assert os.path.getsize(path) > 25_000_000


def test_stale_temporaries_are_cleaned_and_live_ones_kept(tmp_path):
    model = _model()
    path = tmp_path / "m.xpnet"
    stale, live = tmp_path / ".m.xpnet.dead.xpnet-tmp", tmp_path / ".m.xpnet.live.xpnet-tmp"
    stale.write_bytes(b"x" * 100)
    live.write_bytes(b"y" * 100)
    old = time.time() - 3600
    os.utime(stale, (old, old))
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "m.xpnet"]


def test_a_failed_save_leaves_no_temporary(tmp_path, monkeypatch):
    model = _model()
    path = tmp_path / "m.xpnet"
    model.save(path)
    good = path.read_bytes()

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"m\.xpnet.*previous file .*intact") as info:
        model.save(path)
    assert "xpnet-tmp" not in str(info.value)
    monkeypatch.undo()
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.xpnet"]


# -- 4. errors name the target ------------------------------------------------------------
def test_save_errors_name_the_target(tmp_path):
    model = _model()
    target = tmp_path / "no" / "such" / "m.xpnet"
    with pytest.raises(FileNotFoundError) as info:
        model.save(target)
    message = str(info.value)
    assert str(target) in message and "xpnet-tmp" not in message
    with pytest.raises(FileNotFoundError, match="m.weights.*intact"):
        model.save_weights(tmp_path / "no" / "m.weights")


# -- 2. bounded header, declared shapes checked before building ---------------------------
def test_header_length_is_read_first(tmp_path):
    model = _model()
    huge = tmp_path / "huge.xpnet"
    huge.write_bytes((10**12).to_bytes(8, "little") + b"{}")
    for path in (huge, "/dev/zero"):
        with pytest.raises(ValueError, match="header"):
            xpnet.load_model(path)
        with pytest.raises(ValueError, match="header"):
            model.load_weights(path)
    if os.path.exists("/dev/urandom"):  # a stream: read 8 bytes, refuse the claimed size
        with pytest.raises(ValueError, match="urandom"):
            xpnet.load_model("/dev/urandom")


def _bomb(tmp_path):
    """A 4 KB file declaring Dense(8192) on 8192 inputs, with a 1x1 tensor table."""
    model = keras.Sequential([keras.Input(shape=(1,)), layers.Dense(1)], backend="cpu")
    model.save(tmp_path / "small.xpnet")
    data = (tmp_path / "small.xpnet").read_bytes()
    header, body = _split(data)
    config = json.loads(header["__metadata__"]["config"])
    config["config"]["layers"][0]["config"]["shape"] = [8192]
    config["config"]["layers"][1]["config"]["units"] = 8192
    header["__metadata__"]["config"] = json.dumps(config)
    out = _join(header, body)
    assert len(out) < 4096
    return out


def test_a_small_file_declaring_a_huge_model_fails_fast(tmp_path):
    path = tmp_path / "bomb.xpnet"
    path.write_bytes(_bomb(tmp_path))
    tracemalloc.start()
    try:
        start = time.perf_counter()
        with pytest.raises(ValueError, match=r"bomb\.xpnet.*\(8192, 8192\)"):
            xpnet.load_model(path)
        took = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert took < 0.1, took
    assert peak < 50 * 2**20, peak


def test_loading_runs_no_initializer(tmp_path, monkeypatch):
    """The file supplies every weight: the random initializers are never drawn."""
    model = _model(width=16)
    model.save(tmp_path / "m.xpnet")
    from xpnet import initializers

    def refuse(self, shape, dtype, backend):
        raise AssertionError("an initializer ran while loading")

    monkeypatch.setattr(initializers.VarianceScaling, "__call__", refuse)
    loaded = xpnet.load_model(tmp_path / "m.xpnet")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- 3. the whole structure validated first -----------------------------------------------
def _config(data):
    header, _ = _split(data)
    return json.loads(header["__metadata__"]["config"])


def _bad_files(data):
    """(what, file bytes) for each malformed structure the issue lists, and more."""
    config = _config(data)
    cases = []

    def with_config(what, edit):
        c = json.loads(json.dumps(config))
        edit(c)
        cases.append((what, _with_meta(data, "config", c)))

    with_config("list for dict", lambda c: c.__setitem__("config", [1, 2]))
    with_config("missing layers", lambda c: c["config"].pop("layers"))
    with_config("duplicate names",
                lambda c: c["config"]["layers"][3]["config"].__setitem__(
                    "name", c["config"]["layers"][1]["config"]["name"]))
    for dtype in ("ones", "__class__", "int8", "bool", 3):
        with_config(f"dtype {dtype}",
                    lambda c, d=dtype: c["config"]["layers"][1]["config"].__setitem__("dtype", d))
    with_config("abstract Layer",
                lambda c: c["config"]["layers"][2].__setitem__("class_name", "Layer"))
    with_config("units as text",
                lambda c: c["config"]["layers"][1]["config"].__setitem__("units", "many"))
    deep = "[" * 100_000 + "]" * 100_000
    header, body = _split(data)
    header["__metadata__"]["config"] = deep
    cases.append(("nesting", _join(header, body)))
    cases.append(("format_version abc", _with_meta(data, "format_version", "abc")))
    opt = json.loads(_split(data)[0]["__metadata__"]["optimizer"])
    for field, value in [("iterations", -1), ("iterations", 1.5), ("iterations", True)]:
        o = {**opt, field: value}
        cases.append((f"{field}={value}", _with_meta(data, "optimizer", o)))
    for lr in (-1.0, "fast", float("nan")):
        o = {**opt, "config": {**opt["config"], "learning_rate": lr}}
        cases.append((f"learning_rate={lr}", _with_meta(data, "optimizer", o)))
    rng = json.loads(_split(data)[0]["__metadata__"]["rng"])
    r = json.loads(json.dumps(rng))
    r["fit"]["state"]["state"] = [1, 2]
    cases.append(("rng state", _with_meta(data, "rng", r)))
    r = json.loads(json.dumps(rng))
    r["layers"] = {"layers.9.Nothing": r["fit"]}
    cases.append(("rng layer", _with_meta(data, "rng", r)))
    cases.append(("compile list", _with_meta(data, "compile", [1])))
    return cases


def _functional_bad_files(tmp_path):
    inp = keras.Input(shape=(4,))
    h = layers.Dense(3, name="d0")(inp)
    model = keras.Model(inp, layers.Dense(2, name="d1")(h), backend="cpu")
    model.save(tmp_path / "f.xpnet")
    data = (tmp_path / "f.xpnet").read_bytes()
    config = _config(data)
    cases = []
    c = json.loads(json.dumps(config))
    c["config"]["output_layers"] = ["nowhere", 0, 0]
    cases.append(("missing output", _with_meta(data, "config", c)))
    c = json.loads(json.dumps(config))
    c["config"]["layers"][2]["inbound_nodes"] = [[["d1", 1, 0]]]
    cases.append(("bad reference", _with_meta(data, "config", c)))
    c = json.loads(json.dumps(config))
    c["config"]["layers"][1]["name"] = "d1"
    c["config"]["layers"][1]["config"]["name"] = "d1"
    cases.append(("duplicate functional names", _with_meta(data, "config", c)))
    return cases


def test_malformed_structures_raise_one_value_error_naming_the_file(tmp_path):
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "good.xpnet")
    data = (tmp_path / "good.xpnet").read_bytes()
    kept = model.get_weights()
    for what, bad in _bad_files(data) + _functional_bad_files(tmp_path):
        path = tmp_path / "bad.xpnet"
        path.write_bytes(bad)
        with pytest.raises(ValueError, match=r"bad\.xpnet") as info:
            loaded = xpnet.load_model(path)
            x_ = np.ones((2,) + tuple(loaded.inputs[0].shape[1:]), np.float32)
            loaded.predict(x_, verbose=0)  # an abstract layer would fail only here
        assert type(info.value) is ValueError, (what, info.value)
        if what in ("format_version abc", "compile list", "rng state") or what.startswith(
                ("iterations", "learning_rate")):
            # load_weights reads no architecture, but every other field is checked
            with pytest.raises(ValueError, match=r"bad\.xpnet"):
                model.load_weights(path)
    for a, b in zip(kept, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# -- fuzz: mutated headers and JSON --------------------------------------------------------
def test_fuzzed_files_raise_value_errors_naming_the_file(tmp_path_factory):
    from hypothesis import HealthCheck
    from hypothesis import given
    from hypothesis import settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("fuzz")
    model = _model()
    x, y = _data()
    model.fit(x, y, epochs=1, verbose=0)
    model.save(folder / "good.xpnet")
    data = (folder / "good.xpnet").read_bytes()
    n = int.from_bytes(data[:8], "little")
    live = _model(seed=5)
    kept = live.get_weights()
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                    max_size=3),
        max_leaves=6)

    def mutate_json(draw_path, value, doc):
        """Replace the value at a random path inside ``doc`` with ``value``."""
        node = doc
        for step in draw_path[:-1]:
            if isinstance(node, dict) and node:
                node = node[sorted(node)[step % len(node)]]
            elif isinstance(node, list) and node:
                node = node[step % len(node)]
        last = draw_path[-1]
        if isinstance(node, dict) and node:
            node[sorted(node)[last % len(node)]] = value
        elif isinstance(node, list) and node:
            node[last % len(node)] = value

    @settings(max_examples=120, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(kind=st.sampled_from(["bytes", "meta", "header"]),
           where=st.integers(0, 10**6), byte=st.integers(0, 255),
           steps=st.lists(st.integers(0, 50), min_size=1, max_size=8), value=json_values)
    def check(kind, where, byte, steps, value):
        if kind == "bytes":  # a byte of the length or of the JSON header
            k = where % (8 + n)
            bad = data[:k] + bytes([byte]) + data[k + 1:]
        else:
            header, body = _split(data)
            if kind == "meta":
                meta = header["__metadata__"]
                key = sorted(meta)[where % len(meta)]
                try:
                    doc = {"v": json.loads(meta[key])}
                except ValueError:
                    doc = {"v": meta[key]}
                mutate_json(steps, value, doc)
                meta[key] = doc["v"] if isinstance(doc["v"], str) else json.dumps(doc["v"])
            else:
                mutate_json(steps, value, header)
            try:
                bad = _join(header, body)
            except (TypeError, ValueError):  # the mutation made JSON that cannot be written
                return
        path = folder / "fuzz.xpnet"
        path.write_bytes(bad)
        for load in (lambda: xpnet.load_model(path), lambda: live.load_weights(path)):
            try:
                load()
            except ValueError as e:
                assert "fuzz.xpnet" in str(e), e
                assert type(e) is ValueError, e
                for a, b in zip(kept, live.get_weights()):  # a failed load wrote nothing
                    np.testing.assert_array_equal(a, b)
            else:
                live.set_weights(kept)  # a harmless mutation: the load succeeded

    check()


# -- 5. ModelCheckpoint --------------------------------------------------------------------
def test_checkpoint_pattern_is_checked_at_train_begin(tmp_path):
    model = _model()
    x, y = _data()
    seen = []

    class Spy(callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    ck = callbacks.ModelCheckpoint(str(tmp_path / "ck-{val_loss:.2f}.xpnet"))
    with pytest.raises(ValueError, match=r"val_loss.*validation"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[ck, Spy()])
    assert seen == []
    ck = callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch}-{acc:.2f}.xpnet"))
    with pytest.raises(ValueError, match=r"'acc'.*accuracy"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ck])
    ck = callbacks.ModelCheckpoint(str(tmp_path / "ck-{epoch:02d}-{val_loss:.2f}.xpnet"))
    model.fit(x, y, epochs=2, verbose=0, validation_split=0.25, callbacks=[ck])
    assert len(list(tmp_path.glob("ck-0*.xpnet"))) == 2


def test_checkpoint_failure_keeps_best_and_ends_training(tmp_path):
    model = _model()
    x, y = _data()
    ended = []

    class End(callbacks.Callback):
        def on_train_end(self, logs=None):
            ended.append(True)

    folder = tmp_path / "ck"
    folder.mkdir()
    ck = callbacks.ModelCheckpoint(str(folder / "best.xpnet"), monitor="loss",
                                   save_best_only=True)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ck])
    best = ck.best
    assert np.isfinite(best)
    ck.best = best + 10.0  # the next epoch improves on it
    before = ck.best
    folder.rename(tmp_path / "gone")  # the next save fails
    with pytest.raises(OSError, match=r"best\.xpnet"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[ck, End()])
    assert ck.best == before
    assert ended == [True]
