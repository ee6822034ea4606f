"""Saving and loading: round trips of Sequential, functional and nested models, atomic
writes, bit-identical resumption, cross-backend loading, and clear errors that leave the
model in memory untouched."""

import os

import numpy as np
import pytest
from conftest import make_backend

import xpnet
from xpnet import keras
from xpnet import layers


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    return x, (x[:, 0] - x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)


def _sequential(backend="cpu", seed=0, width=16):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=(6,)),
        layers.Dense(width, activation="relu", kernel_regularizer="l2"),
        layers.BatchNormalization(),
        layers.Dropout(0.3),
        layers.Dense(3, activation="softmax"),
    ], backend=backend)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def _functional(backend="cpu", seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input(shape=(6,), name="features")
    shared = layers.Dense(6, activation="tanh", name="shared")
    h = shared(shared(inp))  # one layer, two nodes
    inner = keras.Sequential([keras.Input(shape=(6,)), layers.Dense(4, activation="relu"),
                              layers.LayerNormalization()], name="inner", backend=backend)
    cat = layers.Concatenate()([layers.Add()([h, inp]), inner(h)])
    out = layers.Dense(3, activation="softmax", name="head")(layers.GaussianNoise(0.1)(cat))
    model = keras.Model(inp, out, backend=backend)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_round_trip(tmp_path, build):
    x, y = _data()
    model = build()
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    path = tmp_path / "model.xpnet"
    model.save(path)
    loaded = xpnet.load_model(path)
    assert type(loaded) is type(model)
    assert [type(la).__name__ for la in loaded.layers] == \
        [type(la).__name__ for la in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations == 6
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    assert not any(p.name.endswith(".xpnet-tmp") for p in tmp_path.iterdir())


@pytest.mark.parametrize("build", [_sequential, _functional], ids=["sequential", "functional"])
def test_resume_is_bit_identical(tmp_path, build):
    """2 epochs, save, load, 2 more == 4 uninterrupted epochs: weights, optimizer slots,
    the step count, the shuffling and the dropout/noise random streams all carry over."""
    x, y = _data()
    whole = build(seed=3)
    whole.fit(x, y, epochs=4, batch_size=16, verbose=0)
    first = build(seed=3)
    first.fit(x, y, epochs=2, batch_size=16, verbose=0)
    first.save(tmp_path / "half.xpnet")
    keras.utils.set_random_seed(99)  # whatever the global seed is now
    resumed = xpnet.load_model(tmp_path / "half.xpnet")
    resumed.fit(x, y, epochs=2, batch_size=16, verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert resumed.optimizer.iterations == whole.optimizer.iterations


def test_weights_only_and_untouched_on_error(tmp_path):
    x, y = _data()
    model = _sequential()
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights")
    other = _sequential(seed=1)
    before = other.get_weights()
    other.load_weights(tmp_path / "w.weights")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="holds only weights"):
        xpnet.load_model(tmp_path / "w.weights")
    # another architecture: the model in memory keeps its weights
    wide = _sequential(seed=2, width=8)
    kept = wide.get_weights()
    with pytest.raises(ValueError, match=r"incompatible architecture .*dense(_\d+)?\.kernel: "
                                         r"the model has shape \(6, 8\), the file \(6, 16\)"):
        wide.load_weights(tmp_path / "w.weights")
    for a, b in zip(kept, wide.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(before[0], other.get_weights()[0])


def test_bad_files_leave_the_model_untouched(tmp_path):
    x, y = _data()
    model = _sequential()
    model.save(tmp_path / "good.xpnet")
    kept = model.get_weights()
    data = open(tmp_path / "good.xpnet", "rb").read()
    (tmp_path / "text.xpnet").write_text("hello, I am not a model\n")
    (tmp_path / "cut.xpnet").write_bytes(data[:len(data) // 2])
    (tmp_path / "head.xpnet").write_bytes(data[:100])
    import safetensors.numpy

    (tmp_path / "plain.safetensors").write_bytes(safetensors.numpy.save(
        {"a": np.zeros(3, np.float32)}))
    cases = [("text.xpnet", "not an xpnet model file"), ("cut.xpnet", "truncated"),
             ("head.xpnet", "truncated"), ("plain.safetensors", "not an xpnet model file")]
    for name, message in cases:
        with pytest.raises(ValueError, match=message):
            model.load_weights(tmp_path / name)
        with pytest.raises(ValueError, match=message):
            xpnet.load_model(tmp_path / name)
    for a, b in zip(kept, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError):
        xpnet.load_model(tmp_path / "absent.xpnet")


def test_a_crash_mid_save_keeps_the_previous_file(tmp_path, monkeypatch):
    x, y = _data()
    model = _sequential()
    path = tmp_path / "ckpt.xpnet"
    model.save(path)
    good = open(path, "rb").read()
    model.fit(x, y, epochs=1, verbose=0)

    def crash(fd):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(path)
    monkeypatch.undo()
    assert open(path, "rb").read() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.xpnet"]
    # a save killed outright leaves its temporary; the next save removes it once it is old
    stale = tmp_path / ".ckpt.xpnet.k1ll3d.xpnet-tmp"
    stale.write_bytes(good[:50])
    os.utime(stale, (0, 0))
    model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.xpnet"]
    np.testing.assert_array_equal(xpnet.load_model(path).get_weights()[0],
                                  model.get_weights()[0])
    with pytest.raises(FileExistsError):
        model.save(path, overwrite=False)


@pytest.mark.parametrize("direction", ["cpu_to_strict", "strict_to_cpu"])
def test_cross_backend(tmp_path, direction):
    """The file holds host arrays: a model saved on one backend loads on another (the
    strict backend stands in for CUDA here)."""
    strict = make_backend("strict")
    src, dst = ("cpu", strict) if direction == "cpu_to_strict" else (strict, "cpu")
    x, y = _data()
    model = _sequential(backend=src)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.save(tmp_path / "m.xpnet")
    loaded = xpnet.load_model(tmp_path / "m.xpnet", backend=dst)
    assert loaded.backend is xpnet.get_backend(dst)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    h = loaded.fit(x, y, epochs=1, batch_size=32, verbose=0)  # and trains on from there
    assert np.isfinite(h.history["loss"][0])


def test_custom_objects_and_unknown_layers(tmp_path):
    class Scale(layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def forward(self, x, training=False):
            return x * self.factor, None

        def backward(self, ctx, dy):
            return dy * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = keras.Sequential([keras.Input(shape=(3,)), Scale(3.0), layers.Dense(2)],
                             backend="cpu")
    model.save(tmp_path / "c.xpnet")
    with pytest.raises(ValueError, match=r"unknown layer class 'Scale'.*custom_objects"):
        xpnet.load_model(tmp_path / "c.xpnet")
    loaded = keras.models.load_model(tmp_path / "c.xpnet", custom_objects={"Scale": Scale})
    assert loaded.layers[0].factor == 3.0
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_schedule_and_uncompiled_models_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(4,)), layers.Dense(2)], backend="cpu")
    model.save(tmp_path / "raw.xpnet")  # not compiled
    assert not xpnet.load_model(tmp_path / "raw.xpnet").compiled
    sched = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=10, warmup_target=0.2,
                                                   warmup_steps=3)
    model.compile(optimizer=keras.optimizers.AdamW(sched, clipnorm=1.0), loss="mse")
    x = np.ones((8, 4), np.float32)
    model.fit(x, np.zeros((8, 2), np.float32), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "sched.xpnet")
    loaded = xpnet.load_model(tmp_path / "sched.xpnet")
    assert loaded.optimizer.learning_rate == model.optimizer.learning_rate == sched(2)
    for (p1, _), (p2, _) in zip(model._optimizer_layout(), loaded._optimizer_layout()):
        for k, v in model.optimizer.get_slots(p1).items():
            np.testing.assert_array_equal(v, loaded.optimizer.get_slots(p2)[k])


def test_two_outputs_with_per_output_losses(tmp_path):
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(4,))
    h = layers.Dense(8, activation="relu")(inp)
    model = keras.Model(inp, [layers.Dense(1, name="reg")(h),
                              layers.Dense(3, activation="softmax", name="cls")(h)],
                        backend="cpu")
    model.compile(optimizer="rmsprop",
                  loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
                  loss_weights=[1.0, 0.5], metrics=[[], ["accuracy"]])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    ys = [x.sum(1, keepdims=True), (x[:, 0] > 0).astype(np.int64)]
    model.fit(x, ys, epochs=1, verbose=0)
    model.save(tmp_path / "two.xpnet")
    loaded = xpnet.load_model(tmp_path / "two.xpnet")
    assert loaded.metrics_names == model.metrics_names
    np.testing.assert_allclose(loaded.evaluate(x, ys, verbose=0),
                               model.evaluate(x, ys, verbose=0), rtol=1e-6)
    for a, b in zip(loaded.predict(x, verbose=0), model.predict(x, verbose=0)):
        np.testing.assert_array_equal(a, b)
