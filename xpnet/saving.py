"""Saving and loading: one safetensors file holds a whole model.

Its tensors are the weights (``layers.<i>.<Class>.<weight>``, nested models adding their
own ``layers.<j>...``) and, for a model saved with :func:`save_model`, the optimizer's slots
per variable (``optimizer.<weight key>.<slot>``). Its ``__metadata__`` holds JSON: the
format and its version, the xpnet version, the architecture, the compile arguments, the
optimizer's configuration and step count, and the random states of ``fit``'s shuffling and
of the dropout and noise layers, so that training resumed from a file continues exactly as
an uninterrupted run would (bit for bit on the CPU backend).

Files are written to a temporary file beside the target, flushed to disk and renamed into
place: a crash mid-save leaves the previous file intact, and the temporary name is fixed,
so a killed save leaves no pile of temporaries behind (the next save reuses the name).
Loading checks everything (format, architecture, weight names, shapes) before it touches
a model, so a bad file leaves the model in memory as it was. The arrays pass through NumPy
on the host (``Backend.to_numpy`` / ``Backend.asarray``), so a model saved on one backend
loads on any other.
"""

import json
import os

import safetensors
import safetensors.numpy

__all__ = ["save_model", "load_model", "save_weights", "load_weights", "serialize_layer",
           "deserialize_layer", "functional_config", "functional_graph", "FORMAT",
           "FORMAT_VERSION"]

FORMAT = "xpnet"
FORMAT_VERSION = 1


# -- layers and configs ----------------------------------------------------------------------
def serialize_layer(layer):
    """``{"class_name", "config"}`` of a layer; a functional model is ``"Functional"``."""
    from xpnet.models import Model
    from xpnet.models import Sequential

    if isinstance(layer, Sequential):
        name = "Sequential"
    elif isinstance(layer, Model):
        name = "Functional" if type(layer) is Model else type(layer).__name__
    else:
        name = type(layer).__name__
    return {"class_name": name, "config": layer.get_config()}


def deserialize_layer(entry, custom_objects=None, backend=None):
    """A layer (or model) from :func:`serialize_layer`'s dict; classes are looked up in
    ``custom_objects`` first, then in ``xpnet.layers``."""
    from xpnet import layers as layers_module
    from xpnet.layers.base import Layer
    from xpnet.models import Model
    from xpnet.models import Sequential

    name, config = entry.get("class_name"), entry.get("config", {})
    cls = (custom_objects or {}).get(name)
    if cls is None:
        cls = {"Sequential": Sequential, "Functional": Model, "Model": Model}.get(name) or \
            getattr(layers_module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"unknown layer class {name!r} in the model config; pass its class "
                         f"in custom_objects={{{name!r}: ...}}")
    if issubclass(cls, Model):
        return cls.from_config(config, custom_objects=custom_objects, backend=backend)
    try:
        return cls.from_config(config)
    except TypeError as e:
        raise ValueError(f"cannot rebuild layer {config.get('name')!r} ({name}) from its "
                         f"config: {e}") from None


def _walk(model, prefix="layers"):
    """``(key, layer)`` for every layer of ``model``, nested models descended into, in a
    stable order that depends on the architecture only (not on the layers' names)."""
    from xpnet.models import Model

    out = []
    for i, layer in enumerate(model._unique_layers()):
        key = f"{prefix}.{i}.{type(layer).__name__}"
        if isinstance(layer, Model):
            out += _walk(layer, key + ".layers")
        else:
            out.append((key, layer))
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
    if not model.built or getattr(model, "_graph", None) is None:
        raise ValueError(f"{model.name}: {what} needs a built model; give it an input shape "
                         "or call it on data first")


# -- writing ------------------------------------------------------------------------------
def _atomic_write(path, data, overwrite):
    from xpnet import distributed

    dist = distributed.active()
    if dist is not None:  # distributed: rank 0 writes; every rank waits for it
        return dist.chief_only(_write_file, path, data, overwrite)
    return _write_file(path, data, overwrite)


def _write_file(path, data, overwrite):
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.xpnet-tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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
    _atomic_write(filepath, data, overwrite)


def save_model(model, filepath, overwrite=True):
    """Write architecture, weights, compile arguments, optimizer state and random state to
    one file, atomically (see the module's docstring)."""
    _require_built(model, "save")
    tensors, keys = _weight_tensors(model)
    extra = {"config": serialize_layer(model)}
    if getattr(model, "compiled", False):
        extra["compile"] = _compile_config(model)
        optimizer = model.optimizer
        extra["optimizer"] = {"class_name": type(optimizer).__name__,
                              "config": optimizer.get_config(),
                              "iterations": optimizer.iterations}
        if getattr(model, "_compiled_graph", None) is not None:
            tensors.update(_optimizer_tensors(model, keys))
    rng = {prefix: layer.get_rng_state() for prefix, layer in _walk(model)
           if layer.get_rng_state() is not None}
    extra["rng"] = {"layers": rng,
                    "fit": None if model._rng is None else model._rng.get_state()}
    data = safetensors.numpy.save(tensors, metadata=_metadata("model", model, **extra))
    _atomic_write(filepath, data, overwrite)


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

    return {"loss": loss_spec(model._loss_spec), "loss_weights": model._loss_weights_spec,
            "metrics": metric_spec(model._metrics_spec)}


def _optimizer_tensors(model, keys):
    out = {}
    for param, entries in model._optimizer_layout():
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
    """A parsed, validated xpnet file: metadata and NumPy tensors."""

    def __init__(self, filepath):
        path = os.fspath(filepath)
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 8:
            raise ValueError(f"{path} is not an xpnet model file: {len(data)} bytes")
        size = int.from_bytes(data[:8], "little")
        if size > len(data) - 8:
            raise ValueError(f"{path} is not an xpnet model file, or it is truncated: its "
                             f"header claims {size} bytes, the file has {len(data) - 8}")
        try:
            header = json.loads(data[8:8 + size])
            meta = header.get("__metadata__") or {}
        except (ValueError, AttributeError):
            raise ValueError(f"{path} is not an xpnet model file (no safetensors header)") \
                from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is a safetensors file but not an xpnet model file (no "
                             "xpnet metadata)")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path} was written in xpnet file format "
                             f"{meta['format_version']}, newer than this xpnet reads "
                             f"({FORMAT_VERSION}); upgrade xpnet")
        try:
            self.tensors = safetensors.numpy.load(data)
        except Exception as e:  # SafetensorError: truncated or corrupted data
            raise ValueError(f"{path} is truncated or corrupted: {e}") from None
        self.path, self.kind = path, meta.get("kind")
        try:
            self.meta = {k: json.loads(v) if k not in ("format", "kind", "xpnet_version",
                                                       "backend", "format_version") else v
                         for k, v in meta.items()}
        except ValueError:
            raise ValueError(f"{path}: the xpnet metadata is corrupted") from None


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


def load_model(filepath, custom_objects=None, compile=True, backend=None):
    """The model saved in ``filepath`` by :func:`save_model`, on ``backend`` (any backend,
    whatever the one it was saved from), compiled as it was, with its optimizer state and
    random state restored so that ``fit`` continues where it stopped."""
    file = _File(filepath)
    if file.kind != "model" or "config" not in file.meta:
        raise ValueError(f"{file.path} holds only weights (save_weights); build the model "
                         "and call model.load_weights on it")
    from xpnet.backend import get_backend

    backend = get_backend(backend)
    model = deserialize_layer(file.meta["config"], custom_objects, backend)
    _write_weights(_plan_weights(model, file))
    if compile and file.meta.get("compile") is not None:
        _restore_training(model, file, custom_objects)
    rng = file.meta.get("rng") or {}
    for prefix, layer in _walk(model):
        layer.set_rng_state(rng.get("layers", {}).get(prefix))
    if rng.get("fit") is not None:
        model._rng = model.backend.rng(None)
        model._rng.set_state(rng["fit"])
    return model


def _restore_training(model, file, custom_objects):
    from xpnet import losses
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
                  metrics=unpack(spec.get("metrics"), lambda s: s))
    model._sync_compile()
    _, keys = _weight_tensors(model)
    xp = model.backend.xp
    for param, entries in model._optimizer_layout():
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


# -- functional graphs ----------------------------------------------------------------------
def functional_config(model):
    """The config of a functional model: layers with their inbound nodes (Keras's form)."""
    src, entries, owners = {}, {}, {}
    for i, t in enumerate(model.inputs):
        layer = t.node.layer
        src[i] = [layer.name, 0, 0]
        entries[layer.name] = {"class_name": "InputLayer", "name": layer.name,
                               "config": layer.get_config(), "inbound_nodes": []}
    for step in model._graph:
        layer = step.layer
        if owners.setdefault(layer.name, layer) is not layer:
            raise ValueError(f"{model.name}: two layers are named {layer.name!r}; layer "
                             "names must be unique to save a model")
        entry = entries.setdefault(layer.name, {**serialize_layer(layer), "name": layer.name,
                                                "inbound_nodes": []})
        entry["inbound_nodes"].append([src[i] for i in step.ins])
        src[step.out] = [layer.name, len(entry["inbound_nodes"]) - 1, 0]
    ins = [src[i] for i in range(len(model.inputs))]
    outs = [src[i] for i in model._output_slots]
    return {"name": model.name, "trainable": model.trainable, "layers": list(entries.values()),
            "input_layers": ins if model._multi_in else ins[0],
            "output_layers": outs if model._multi_out else outs[0]}


def functional_graph(config, custom_objects=None, backend=None):
    """The input and output tensors of the graph that :func:`functional_config` describes,
    rebuilt by calling fresh layers node by node."""
    from xpnet.layers.core import InputLayer

    layers, tensors, pending = {}, {}, []
    for entry in config["layers"]:
        layer = deserialize_layer(entry, custom_objects, backend)
        layers[entry["name"]] = layer
        if isinstance(layer, InputLayer):
            tensors[(entry["name"], 0)] = layer.output
        pending += [(entry["name"], k, inbound)
                    for k, inbound in enumerate(entry.get("inbound_nodes", []))]
    while pending:
        ready = [p for p in pending if all((n, k) in tensors for n, k, _ in p[2])]
        if not ready:
            raise ValueError(f"model config {config.get('name')!r}: the inbound nodes of "
                             f"{sorted({p[0] for p in pending})} refer to missing layers")
        for name, k, inbound in ready:
            xs = [tensors[(n, j)] for n, j, _ in inbound]
            tensors[(name, k)] = layers[name](xs if len(xs) > 1 else xs[0])
            pending.remove((name, k, inbound))

    def pick(spec):
        if spec and isinstance(spec[0], list):
            return [tensors[(n, k)] for n, k, _ in spec]
        return tensors[(spec[0], spec[1])]

    return pick(config["input_layers"]), pick(config["output_layers"])
