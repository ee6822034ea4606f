"""Saving and loading: one safetensors file holds a whole model.

Its tensors are the weights (``layers.<i>.<Class>.<weight>``, nested models adding their
own ``layers.<j>...``) and, for a model saved with :func:`save_model`, the optimizer's slots
per variable (``optimizer.<weight key>.<slot>``). Its ``__metadata__`` holds JSON: the
format and its version, the xpnet version, the architecture, the compile arguments, the
optimizer's configuration and step count, and the random states of ``fit``'s shuffling and
of the dropout and noise layers, so that training resumed from a file continues exactly as
an uninterrupted run would (bit for bit on the CPU backend).

Each save writes a temporary file of its own (created exclusively beside the target),
flushes it to disk, renames it over the target and flushes the rename: a reader sees the
old file or the new one, never a part; of concurrent writers the last rename wins; a failed
save removes its temporary and says the previous file is intact, and a temporary left by a
killed writer is removed by the next save once it is 15 minutes old. Loading reads the
header length first (refusing headers over 100 MB), checks the whole header and metadata
(:mod:`xpnet.saving_checks`) before building anything, builds without running initializers
(each declared weight shape must be one the file holds), and writes into a model only after
every check passed, so a bad file leaves the model in memory as it was. The arrays pass
through NumPy on the host (``Backend.to_numpy`` / ``Backend.asarray``), so a model saved on
one backend loads on any other.
"""

import json
import os

import safetensors
import safetensors.numpy

from xpnet import saving_checks as checks
from xpnet.saving_io import atomic_write
from xpnet.saving_io import read_parts

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "serialize_layer",
           "deserialize_layer", "register_keras_serializable", "get_registered_name",
           "get_registered_object", "FORMAT", "FORMAT_VERSION"]

FORMAT = "xpnet"
FORMAT_VERSION = 1


# -- layers and configs ----------------------------------------------------------------------
_REGISTRY = {}  # registered name -> class (keras.saving.register_keras_serializable)


def register_keras_serializable(package="Custom", name=None):
    """A class decorator: the class saves and loads under ``"package>name"`` (as Keras),
    so ``load_model`` finds it without ``custom_objects``."""
    def decorate(cls):
        key = f"{package}>{name or cls.__name__}"
        if key in _REGISTRY and _REGISTRY[key] is not cls:
            raise ValueError(f"{key!r} is already registered to {_REGISTRY[key]!r}")
        _REGISTRY[key] = cls
        cls._registered_name = key
        return cls
    return decorate


def get_registered_name(obj):
    cls = obj if isinstance(obj, type) else type(obj)
    return cls.__dict__.get("_registered_name", cls.__name__)


def get_registered_object(name, custom_objects=None):
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _REGISTRY:
        return _REGISTRY[name]
    matches = [c for k, c in _REGISTRY.items() if k.split(">", 1)[-1] == name]
    return matches[0] if len(matches) == 1 else None


def serialize_layer(layer):
    """``{"class_name", "config"}`` of a layer; a functional model is ``"Functional"``."""
    from xpnet.models import Model
    from xpnet.models import Sequential

    if type(layer) is Sequential:
        name = "Sequential"
    elif type(layer) is Model:
        name = "Functional"
    else:
        name = get_registered_name(layer)
    entry = {"class_name": name, "config": layer.get_config()}
    build = layer.get_build_config() if isinstance(layer, Model) else None
    if build is not None:
        entry["build_config"] = build
    return entry


def deserialize_layer(entry, custom_objects=None, backend=None):
    """A layer (or model) from :func:`serialize_layer`'s dict; classes are looked up in
    ``custom_objects``, the registry, then ``xpnet.layers``."""
    from xpnet.layers.base import Layer
    from xpnet.models import Model
    from xpnet.models import Sequential

    name, config = entry.get("class_name"), entry.get("config", {})
    cls = _layer_class(name, custom_objects)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"unknown layer class {name!r} in the model config; pass its class "
                         f"in custom_objects={{{name!r}: ...}} or decorate it with "
                         "keras.saving.register_keras_serializable()")
    if _abstract(cls):
        raise ValueError(f"layer class {name!r} in the model config is abstract (it has "
                         "neither call nor forward)")
    try:
        if cls in (Model, Sequential) or (issubclass(cls, Model) and "layers" in config
                                          and "input_layers" in config):
            return cls.from_config(config, custom_objects=custom_objects, backend=backend)
        obj = cls.from_config(config)
    except TypeError as e:
        raise ValueError(f"cannot rebuild layer {config.get('name')!r} ({name}) from its "
                         f"config: {e}") from None
    if isinstance(obj, Model) and entry.get("build_config"):
        obj.build_from_config(entry["build_config"], backend)
    return obj


def _layer_class(name, custom_objects=None):
    """The class a config's ``class_name`` names: ``custom_objects`` first, then the models,
    then ``xpnet.layers``; None when there is none."""
    from xpnet import layers as layers_module
    from xpnet.models import Model
    from xpnet.models import Sequential

    if not isinstance(name, str):
        return None
    cls = get_registered_object(name, custom_objects)
    if cls is None:
        cls = {"Sequential": Sequential, "Functional": Model, "Model": Model}.get(name) or \
            getattr(layers_module, name, None)
    return cls


def _abstract(cls):
    """Whether a Layer class can compute nothing: neither ``call`` nor ``forward`` is its
    own (the base ``Layer`` itself, in a file that names it)."""
    from xpnet.layers.base import Layer
    from xpnet.models import Model

    if issubclass(cls, Model):
        return False
    return cls is Layer or (getattr(cls, "forward", None) is Layer.forward and
                            getattr(cls, "call", None) is getattr(Layer, "call", None))


def _walk(model, prefix="layers"):
    """``(key, layer)`` for every layer of ``model`` and the layers they hold, in a stable
    order that depends on the architecture only (not on the layers' names)."""
    out = [("model", model)] if prefix == "layers" and model.params else []
    for i, layer in enumerate(model._sublayers()):
        key = f"{prefix}.{i}.{type(layer).__name__}"
        out.append((key, layer))
        out += _walk(layer, key + ".layers")
    return out


def _weight_tensors(model):
    """``{key: NumPy array}`` of every weight, and ``{(layer id, name): key}``."""
    tensors, keys = {}, {}
    for prefix, layer in _walk(model):
        for name in layer.weight_names():
            key = f"{prefix}.{name}"
            tensors[key] = _host(layer, layer.params[name])
            keys[(id(layer), name)] = key
    return tensors, keys


def _host(layer, a):
    return layer.backend.to_numpy(layer.backend.xp.asarray(a, copy=True))


def _require_built(model, what):
    built = model.built
    if not built:
        raise ValueError(f"{model.name}: {what} needs a built model; give it an input shape "
                         "or call it on data first")


# -- writing ------------------------------------------------------------------------------
def _refuse_code(model):
    from xpnet.layers.lambda_layer import Lambda

    for _, layer in _walk(model):
        if isinstance(layer, Lambda):
            raise NotImplementedError(
                f"{model.name}: layer {layer.name!r} is a Lambda, whose function cannot be "
                "saved (xpnet never stores code in a model file); write a layer class with "
                "call() and keras.saving.register_keras_serializable() instead, or save "
                "the weights alone with save_weights")


def _metadata(kind, model, **extra):
    import xpnet

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": kind,
            "xpnet_version": xpnet.__version__, "backend": model.backend.name,
            "architecture": json.dumps([type(la).__name__ for _, la in _walk(model)])}
    meta.update({k: json.dumps(v) for k, v in extra.items()})
    return meta


def save_weights(model, filepath, overwrite=True):
    """Write the model's weights (safetensors with xpnet metadata), atomically."""
    _require_built(model, "save_weights")
    tensors, _ = _weight_tensors(model)
    data = safetensors.numpy.save(tensors, metadata=_metadata("weights", model))
    atomic_write(filepath, data, overwrite)


def save_model(model, filepath, overwrite=True):
    """Write architecture, weights, compile arguments, optimizer state and random state to
    one file, atomically (see the module's docstring)."""
    _require_built(model, "save")
    _refuse_code(model)
    tensors, keys = _weight_tensors(model)
    extra = {"config": serialize_layer(model)}
    if getattr(model, "compiled", False):
        extra["compile"] = _compile_config(model)
        optimizer = model.optimizer
        extra["optimizer"] = {"class_name": type(optimizer).__name__,
                              "config": optimizer.get_config(),
                              "iterations": optimizer.iterations}
        if hasattr(optimizer, "dynamic_scale"):  # LossScaleOptimizer: where scaling stands
            extra["optimizer"]["loss_scale"] = [optimizer.dynamic_scale,
                                                optimizer.step_counter]
        if getattr(model, "_compiled_graph", None) is not None:
            tensors.update(_optimizer_tensors(model, keys))
    from xpnet.layers.base import Layer

    rng = {prefix: Layer.get_rng_state(layer) for prefix, layer in _walk(model)
           if Layer.get_rng_state(layer) is not None}
    extra["rng"] = {"layers": rng,
                    "fit": model.get_fit_rng_state()}
    data = safetensors.numpy.save(tensors, metadata=_metadata("model", model, **extra))
    atomic_write(filepath, data, overwrite)


def _compile_config(model):
    from xpnet import losses

    def loss_spec(spec):
        if isinstance(spec, (list, tuple)):
            return [loss_spec(s) for s in spec]
        if isinstance(spec, dict):
            return {"__per_output__": {k: loss_spec(v) for k, v in spec.items()}}
        return spec if isinstance(spec, str) or spec is None else \
            losses.serialize(losses.get(spec))

    def metric_spec(spec):
        if isinstance(spec, (list, tuple)):
            return [metric_spec(s) for s in spec]
        if isinstance(spec, dict):
            return {"__per_output__": {k: metric_spec(v) for k, v in spec.items()}}
        return spec if isinstance(spec, str) or spec is None else getattr(spec, "name", None)

    config = model.get_compile_config()
    return {"loss": loss_spec(config["loss"]), "loss_weights": config["loss_weights"],
            "metrics": metric_spec(config["metrics"]),
            "weighted_metrics": metric_spec(config["weighted_metrics"])}


def _optimizer_tensors(model, keys):
    out = {}
    for param, entries in model.optimizer_layout():
        slots = model.optimizer.get_slots(param)
        if not slots:
            continue
        xp = model.backend.xp
        for slot_name, slot in slots.items():
            flat = xp.reshape(slot, (-1,))
            for layer, name, offset, n, shape in entries:
                piece = xp.reshape(flat[offset:offset + n], shape)
                out[f"optimizer.{keys[(id(layer), name)]}.{slot_name}"] = _host(layer, piece)
    return out


# -- reading ------------------------------------------------------------------------------
class _File:
    """A parsed, validated xpnet file: metadata and NumPy tensors.

    The 8-byte header length is read first and a claim over
    :data:`~xpnet.saving_checks.MAX_HEADER_BYTES` is refused; then the header is read and
    checked (:mod:`xpnet.saving_checks`), and only then the tensor data it declares, so a
    stream (``/dev/zero``) or a lying length never makes xpnet read more than it must."""

    def __init__(self, filepath):
        path = os.fspath(filepath)
        with open(path, "rb") as f:
            head, raw, body, meta, self.table = read_parts(f, path)
        self.meta = checks.check_metadata(path, meta, FORMAT, FORMAT_VERSION)
        try:
            self.tensors = safetensors.numpy.load(head + raw + body)
        except Exception as e:  # SafetensorError: overlapping or missing data
            raise ValueError(f"{path} is truncated or corrupted: {e}") from None
        self.path, self.kind = path, self.meta.get("kind")

    def weight_shapes(self):
        """The shapes of the model's weights in the file (optimizer slots excluded)."""
        return [shape for key, (_, shape, _) in self.table.items()
                if not key.startswith("optimizer.")]


def _plan_weights(model, file, strict=True):
    """``[(layer, name, device array)]`` for every weight of ``model``, checked against the
    file (architecture, names, shapes) before anything is written."""
    _require_built(model, "load_weights")
    found = {k: v for k, v in file.tensors.items() if k.startswith("layers.")}
    plan, missing, wrong = [], [], []
    for prefix, layer in _walk(model):
        for name in layer.weight_names():
            key = f"{prefix}.{name}"
            value = found.pop(key, None)
            old = layer.params[name]
            if value is None:
                missing.append(key)
            elif tuple(value.shape) != tuple(old.shape):
                wrong.append(f"{layer.name}.{name}: the model has shape {tuple(old.shape)}, "
                             f"the file {tuple(value.shape)}")
            else:
                plan.append((layer, name, value))
    if missing or wrong or (found and strict):
        saved = file.meta.get("architecture")
        here = [type(la).__name__ for _, la in _walk(model)]
        detail = "; ".join(wrong[:5] + ([f"weights missing from the file: {missing[:5]}"]
                                        if missing else [])
                           + ([f"weights in the file that the model lacks: {sorted(found)[:5]}"]
                              if found else []))
        raise ValueError(f"{file.path}: incompatible architecture for model {model.name!r} "
                         f"(file: {saved}; model: {here}): {detail}")
    out = []
    for layer, name, value in plan:
        xp = layer.backend.xp
        old = layer.params[name]
        out.append((layer, name, xp.astype(layer.backend.asarray(value), old.dtype)))
    return out


def _write_weights(plan):
    for layer, name, value in plan:
        layer.params[name][...] = value


def load_weights(model, filepath):
    """Load the weights of a :func:`save_weights` or :func:`save_model` file into
    ``model``; on any error (not an xpnet file, truncated, another architecture) the model
    is left as it was."""
    file = _File(filepath)
    _write_weights(_plan_weights(model, file))


# What rebuilding a model from a checked config can still raise on values only the layer
# constructors check (units="many"); each becomes one ValueError naming the file.
_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError,
                 OverflowError, RecursionError, NotImplementedError)


def load_model(filepath, custom_objects=None, compile=True, backend=None):
    """The model saved in ``filepath`` by :func:`save_model`, on ``backend`` (any backend,
    whatever the one it was saved from), compiled as it was, with its optimizer state and
    random state restored so that ``fit`` continues where it stopped.

    The whole file is checked before anything is built (:mod:`xpnet.saving_checks`); the
    layers are then built without running their initializers, each declared weight shape
    checked against the file's tensors before it is allocated."""
    from xpnet import initializers
    from xpnet.backend import get_backend

    file = _File(filepath)
    if file.kind != "model" or "config" not in file.meta:
        raise ValueError(f"{file.path} holds only weights (save_weights); build the model "
                         "and call model.load_weights on it")
    checks.check_model_config(file.path, file.meta["config"],
                              lambda name: _layer_class(name, custom_objects))
    backend = get_backend(backend)
    try:
        with initializers.supplied(file.weight_shapes(), file.path):
            model = deserialize_layer(file.meta["config"], custom_objects, backend)
        _write_weights(_plan_weights(model, file))
        if compile and file.meta.get("compile") is not None:
            _restore_training(model, file, custom_objects)
        _restore_rng(model, file)
    except _BUILD_ERRORS as e:
        if isinstance(e, ValueError) and file.path in str(e):
            raise
        raise ValueError(f"{file.path}: cannot rebuild the model it describes: "
                         f"{type(e).__name__}: {e}") from e
    return model


def _restore_rng(model, file):
    from xpnet.layers.base import Layer

    rng = file.meta.get("rng") or {}
    prefixes = {prefix: layer for prefix, layer in _walk(model)}
    unknown = sorted(set(rng.get("layers", {})) - set(prefixes))
    if unknown:
        checks.fail(file.path, "rng.layers", f"states of layers of the model "
                    f"({sorted(prefixes)})", unknown)
    for prefix, layer in prefixes.items():
        Layer.set_rng_state(layer, rng.get("layers", {}).get(prefix))
    if rng.get("fit") is not None:
        model.set_fit_rng_state(rng["fit"])


def _restore_training(model, file, custom_objects):
    from xpnet import losses
    from xpnet import mixed_precision  # noqa: F401 - registers LossScaleOptimizer
    from xpnet import optimizers

    spec = file.meta["compile"]
    opt = file.meta["optimizer"]
    cls = (custom_objects or {}).get(opt["class_name"]) or \
        optimizers._BY_NAME.get(opt["class_name"].lower())
    if cls is None:
        raise ValueError(f"{file.path}: unknown optimizer {opt['class_name']!r}; pass it in "
                         "custom_objects")
    optimizer = cls.from_config(opt["config"], custom_objects)

    def unpack(s, leaf):
        if isinstance(s, list):
            return [unpack(v, leaf) for v in s]
        if isinstance(s, dict) and "__per_output__" in s:
            return {k: unpack(v, leaf) for k, v in s["__per_output__"].items()}
        return leaf(s)

    def loss_leaf(s):
        if isinstance(s, dict) and (custom_objects or {}).get(s.get("class_name")):
            return custom_objects[s["class_name"]].from_config(s.get("config", {}))
        return losses.get(s) if s is not None else None

    model.compile(optimizer=optimizer, loss=unpack(spec["loss"], loss_leaf),
                  loss_weights=spec.get("loss_weights"),
                  metrics=unpack(spec.get("metrics"), lambda s: s),
                  weighted_metrics=unpack(spec.get("weighted_metrics"), lambda s: s))
    _restore_slots(model, file, optimizer)


def restore_training_state(model, filepath):
    """Load a :func:`save_model` file's weights, optimizer state (slots and iterations)
    and random states into ``model``, compiled already, in place (BackupAndRestore)."""
    file = _File(filepath)
    _write_weights(_plan_weights(model, file))
    if file.meta.get("optimizer") is not None:
        _restore_slots(model, file, model.optimizer)
    rng = file.meta.get("rng") or {}
    from xpnet.layers.base import Layer

    for prefix, layer in _walk(model):
        Layer.set_rng_state(layer, rng.get("layers", {}).get(prefix))
    if rng.get("fit") is not None:
        model.set_fit_rng_state(rng["fit"])


def _restore_slots(model, file, optimizer):
    opt = file.meta["optimizer"]
    _, keys = _weight_tensors(model)
    xp = model.backend.xp
    for param, entries in model.optimizer_layout():
        names = [(f"optimizer.{keys[(id(la), k)]}", off, n) for la, k, off, n, _ in entries]
        prefix = names[0][0] + "."
        slot_names = [k[len(prefix):] for k in file.tensors if k.startswith(prefix)]
        if not slot_names:
            continue
        slots = optimizer.build_slots(param)
        if set(slots) != set(slot_names):
            raise ValueError(f"{file.path}: optimizer slots {sorted(slot_names)} do not match "
                             f"{type(optimizer).__name__}'s {sorted(slots)}")
        for slot_name, slot in slots.items():
            for key, off, n in names:
                value = file.tensors.get(f"{key}.{slot_name}")
                if value is None or value.size != n:
                    raise ValueError(f"{file.path}: optimizer slot {key}.{slot_name} is "
                                     "missing or has the wrong size")
                value = xp.astype(model.backend.asarray(value), slot.dtype)
                if len(entries) == 1:  # the slot is this one variable's
                    slot[...] = xp.reshape(value, tuple(slot.shape))
                else:  # a segment of a flat buffer's slot (1-D)
                    slot[off:off + n] = xp.reshape(value, (n,))
        optimizer.set_slots(param, slots)
    optimizer.iterations = int(opt.get("iterations", 0))
    if opt.get("loss_scale") is not None and hasattr(optimizer, "dynamic_scale"):
        optimizer.dynamic_scale, optimizer.step_counter = opt["loss_scale"]


# -- functional graphs (kept here for code that imported them from saving) -----------------
def functional_config(model):
    from xpnet.engine.functional import functional_config as config

    return config(model)


def functional_graph(config, custom_objects=None, backend=None):
    from xpnet.engine.functional import functional_graph as graph

    return graph(config, custom_objects, backend)
