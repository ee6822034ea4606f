"""The config of a functional model, as Keras writes it, and the graph rebuilt from it.

Each layer's entry lists its inbound nodes. A node whose only argument is one tensor or a
list of tensors, with no keyword arguments, is written as Keras 2 and earlier xpnet files
wrote it: a list of ``[layer name, node index, tensor index]`` triples. Any other node is
written as ``{"args": [...], "kwargs": {...}}``, with each tensor replaced by
``{"__keras_tensor__": [layer name, node index, tensor index]}`` (Keras 3's form).
"""

from xpnet.engine.node import KerasTensor
from xpnet.engine.node import flatten
from xpnet.engine.node import map_structure

__all__ = ["functional_config", "functional_graph"]

_TENSOR = "__keras_tensor__"


def functional_config(model):
    """``{"name", "trainable", "layers", "input_layers", "output_layers"}`` of a functional
    model."""
    from xpnet.saving import serialize_layer

    history, entries, owners = {}, {}, {}
    for t in model.inputs:
        layer = t.node.layer
        history[id(t)] = [layer.name, 0, 0]
        entries[layer.name] = {"class_name": "InputLayer", "name": layer.name,
                               "config": layer.get_config(), "inbound_nodes": []}
    for step in model._graph:
        layer, node = step.layer, step.node
        if owners.setdefault(layer.name, layer) is not layer:
            raise ValueError(f"{model.name}: two layers are named {layer.name!r}; layer "
                             "names must be unique to save a model")
        entry = entries.setdefault(layer.name, {**serialize_layer(layer), "name": layer.name,
                                                "inbound_nodes": []})
        entry["inbound_nodes"].append(_node_entry(node, history))
        k = len(entry["inbound_nodes"]) - 1
        for j, t in enumerate(node.flat_outputs):
            history[id(t)] = [layer.name, k, j]

    def spec(tree):
        return map_structure(lambda t: history[id(t)], tree)

    def as_list(tree):  # a single tensor as a triple, a list as a list of triples
        return spec(tree) if not isinstance(tree, KerasTensor) else history[id(tree)]

    return {"name": model.name, "trainable": model.trainable, "layers": list(entries.values()),
            "input_layers": as_list(model._input_tree),
            "output_layers": as_list(model._output_tree)}


def _node_entry(node, history):
    args, kwargs = node.args, dict(node.kwargs)
    simple_arg = len(args) == 1 and (isinstance(args[0], KerasTensor) or (
        isinstance(args[0], list) and all(isinstance(t, KerasTensor) for t in args[0])))
    if simple_arg and not kwargs:
        return [history[id(t)] for t in flatten(args)]

    def enc(v):
        if isinstance(v, KerasTensor):
            return {_TENSOR: history[id(v)]}
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise ValueError(f"layer {node.layer.name!r} was called with an argument that "
                         f"cannot be saved: {v!r}")
    return {"args": [map_structure(enc, a) for a in args],
            "kwargs": {k: map_structure(enc, v) for k, v in kwargs.items()}}


def _refs(inbound):
    """The ``(layer name, node index)`` pairs an inbound-node entry reads."""
    if isinstance(inbound, dict):
        return _tensor_refs(inbound)
    return [(t[0], t[1]) for t in inbound]


def _tensor_refs(obj):
    out = []
    if isinstance(obj, dict):
        if _TENSOR in obj:
            n, k, _ = obj[_TENSOR]
            return [(n, k)]
        for v in obj.values():
            out += _tensor_refs(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _tensor_refs(v)
    return out


def functional_graph(config, custom_objects=None, backend=None):
    """The input and output tensors of the graph :func:`functional_config` describes,
    rebuilt by calling fresh layers node by node."""
    from xpnet.layers.core import InputLayer
    from xpnet.saving import deserialize_layer

    layers, outputs, pending = {}, {}, []
    for entry in config["layers"]:
        layer = deserialize_layer(entry, custom_objects, backend)
        layers[entry["name"]] = layer
        if isinstance(layer, InputLayer):
            outputs[(entry["name"], 0)] = [layer.output]
        pending += [(entry["name"], k, inbound)
                    for k, inbound in enumerate(entry.get("inbound_nodes", []))]
    while pending:
        ready = [p for p in pending if all(r in outputs for r in _refs(p[2]))]
        if not ready:
            raise ValueError(f"model config {config.get('name')!r}: the inbound nodes of "
                             f"{sorted({p[0] for p in pending})} refer to missing layers")
        for name, k, inbound in ready:
            out = _call_node(layers[name], inbound, outputs)
            outputs[(name, k)] = flatten(out)
            pending.remove((name, k, inbound))

    def tensor(triple):
        return _output(outputs, *triple)

    def pick(spec):
        if isinstance(spec, dict):
            return {key: pick(v) for key, v in spec.items()}
        if spec and isinstance(spec[0], list):
            return [pick(s) for s in spec]
        return tensor(spec)

    return pick(config["input_layers"]), pick(config["output_layers"])


def _call_node(layer, inbound, outputs):
    def dec(v):
        if isinstance(v, dict) and _TENSOR in v:
            return _output(outputs, *v[_TENSOR])
        if isinstance(v, dict):
            return {key: dec(x) for key, x in v.items()}
        if isinstance(v, list):
            return [dec(x) for x in v]
        return v
    if isinstance(inbound, dict):
        args = [dec(a) for a in inbound.get("args", [])]
        kwargs = {k: dec(v) for k, v in inbound.get("kwargs", {}).items()}
        return layer(*args, **kwargs)
    xs = [_output(outputs, n, k, j) for n, k, j in inbound]
    return layer(xs if len(xs) > 1 else xs[0])


def _output(outputs, name, node, index):
    outs = outputs[(name, node)]
    if not 0 <= index < len(outs):
        raise ValueError(f"model config: layer {name!r} node {node} has {len(outs)} "
                         f"output(s); the config reads output {index}")
    return outs[index]
