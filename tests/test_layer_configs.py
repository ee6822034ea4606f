"""get_config/from_config round trip for every layer class xpnet.layers exports, and a
Keras ``.keras`` archive handed to load_model (issue 10, point 14)."""

import inspect
import json
import zipfile

import pytest

from xpnet import keras
from xpnet import layers
from xpnet.layers.base import Layer

# Simple values for the required constructor arguments; a new layer with another required
# argument makes test_every_layer_round_trips fail until it is added here.
ARGS = {"units": 3, "filters": 2, "kernel_size": 3, "rate": 0.25, "stddev": 0.1,
        "activation": "relu", "height": 4, "width": 5, "axes": 1, "dims": (2, 1),
        "factor": 0.1, "height_factor": 0.2, "width_factor": 0.1, "n": 2, "scale": 0.5,
        "target_shape": (2, 3), "shape": (3,), "num_tokens": 4, "output_dim": 2,
        "input_dim": 5, "num_heads": 2, "key_dim": 4, "groups": 1, "cropping": 1,
        "padding": 1, "size": 2, "data_format": "channels_last", "cell": None,
        "layer": None, "function": None}

NOT_SAVABLE = {"Lambda"}  # by design: code is never stored in a file


def _classes():
    out = {}
    for name in dir(layers):
        obj = getattr(layers, name)
        if isinstance(obj, type) and issubclass(obj, Layer) and not name.startswith("_"):
            out[name] = obj
    return out


def _make(name, cls):
    sig = inspect.signature(cls.__init__)
    kwargs = {}
    for p in list(sig.parameters.values())[1:]:
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL,
                                                                   p.VAR_KEYWORD):
            assert p.name in ARGS, f"{name}: add a simple value for {p.name!r} to ARGS"
            kwargs[p.name] = ARGS[p.name]
    if name == "InputLayer":
        kwargs["shape"] = (3,)
    if name in ("Bidirectional", "TimeDistributed", "Wrapper"):
        kwargs["layer"] = layers.Dense(2)
    if "cell" in kwargs:
        kwargs["cell"] = getattr(layers, "SimpleRNNCell", layers.Dense)(2)  # RNN(cell) once merged
    return cls(**kwargs)


def test_every_layer_round_trips():
    classes = _classes()
    assert len(classes) >= 70
    checked = []
    for name, cls in sorted(classes.items()):
        if name in NOT_SAVABLE:  # the config holds the function: in memory only
            fn = lambda x: x  # noqa: E731
            again = cls.from_config(cls(fn).get_config())
            assert again.function is fn
            continue
        layer = _make(name, cls)
        config = layer.get_config()
        json.dumps(config)  # JSON-serialisable, as Keras's
        again = type(layer).from_config(config)
        assert type(again) is type(layer), name
        assert again.get_config() == config, name
        checked.append(name)
    assert {"Dense", "Conv2D", "Dropout", "Normalization", "Resizing", "PReLU"} <= \
        set(checked)


def test_non_default_arguments_survive():
    layer = layers.Dense(7, activation="tanh", use_bias=False, name="d7")
    again = layers.Dense.from_config(layer.get_config())
    assert (again.units, again.use_bias, again.name) == (7, False, "d7")
    conv = layers.Conv2D(4, (3, 2), strides=2, padding="same", dilation_rate=1)
    c2 = layers.Conv2D.from_config(conv.get_config())
    assert c2.get_config() == conv.get_config()
    assert tuple(c2.get_config()["kernel_size"]) == (3, 2)


def test_keras_archive_is_named(tmp_path):
    # A Keras 3 .keras file is a zip holding metadata.json, config.json and
    # model.weights.h5 (keras/src/saving/saving_lib.py)
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        z.writestr("config.json", json.dumps({"class_name": "Sequential"}))
        z.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match=r"is a Keras archive \(\.keras zip\).*does not "
                                         r"read Keras's \.keras format"):
        keras.models.load_model(path)
    h5 = tmp_path / "model.h5"
    h5.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(ValueError, match="HDF5"):
        keras.models.load_model(h5)


def _functional():
    keras.utils.set_random_seed(0)
    inp = keras.Input(shape=(4,), name="x")
    h = layers.Dense(5, activation="relu", name="h")(inp)
    a = layers.Dense(1, name="a")(h)
    b = layers.Dense(3, activation="softmax", name="b")(layers.Dropout(0.2)(h))
    return keras.Model(inp, [a, b], backend="cpu")


def test_clone_model_and_json_round_trip():
    import numpy as np

    for model in (_functional(), keras.Sequential([keras.Input(shape=(4,)),
                                                   layers.Dense(3, name="d")],
                                                  backend="cpu")):
        clone = keras.models.clone_model(model)
        # Keras: same architecture, new layers with freshly initialised weights
        assert clone is not model and clone.get_config() == model.get_config()
        assert [w.shape for w in clone.get_weights()] == \
            [w.shape for w in model.get_weights()]
        assert any(not np.array_equal(a, b) for a, b in
                   zip(clone.get_weights(), model.get_weights()))
        again = keras.models.model_from_json(model.to_json())
        assert again.get_config() == model.get_config()
        again.set_weights(model.get_weights())
        x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
        for p, q in zip(_as_list(again.predict(x, verbose=0)),
                        _as_list(model.predict(x, verbose=0))):
            np.testing.assert_allclose(p, q, rtol=1e-6)
    with pytest.raises(NotImplementedError, match="clone_function"):
        keras.models.clone_model(model, clone_function=lambda la: la)


def _as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]
