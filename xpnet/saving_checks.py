"""Validation of an xpnet file's header and metadata before anything is built from it.

A model file may come from anyone: every field is checked for its type, range and
references (required keys, unique layer names, graph references, dtypes from an allowed
list, counters and learning rates, random-generator states, nesting depth), and the first
problem raises one ``ValueError`` naming the file, the field and what was expected. Nothing
here builds a layer or allocates an array.
"""

import json
import math

__all__ = ["MAX_HEADER_BYTES", "check_header", "check_metadata", "fail", "TENSOR_DTYPES",
           "LAYER_DTYPES"]

# The JSON header of a real model is kilobytes (a ResNet-50's is ~0.2 MB); a claim beyond
# this is a corrupt or hostile file, refused before anything is read.
MAX_HEADER_BYTES = 100 * 2**20
# Nested models (a model inside a model inside ...) and JSON nesting beyond these are refused.
MAX_MODEL_DEPTH = 32
MAX_JSON_DEPTH = 64

# safetensors dtype -> bytes per element; weights and optimizer slots are floats (int ids
# for a possible integer state)
TENSOR_DTYPES = {"F16": 2, "F32": 4, "F64": 8, "I32": 4, "I64": 8}
LAYER_DTYPES = ("float16", "bfloat16", "float32", "float64", "mixed_float16",
                "mixed_bfloat16")
INPUT_DTYPES = LAYER_DTYPES + ("int32", "int64", "uint8", "bool")
_PLAIN = ("format", "format_version", "kind", "xpnet_version", "backend")


def fail(path, field, expected, got=None):
    """Raise the one ValueError of a malformed file."""
    got_text = "" if got is None else f", got {_short(got)}"
    raise ValueError(f"{path}: malformed xpnet file: {field}: expected {expected}{got_text}")


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int(value, low=0, high=None):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low and \
        (high is None or value < high)


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _depth(value, limit):
    """Whether ``value`` nests deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            return True
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return False


def parse_json(path, field, text):
    """``json.loads`` whose every failure (syntax, nesting, non-finite numbers) is a
    ValueError naming the file and the field."""
    def constant(name):  # NaN, Infinity: not JSON, and never written by xpnet
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=constant)
    except (ValueError, RecursionError, UnicodeDecodeError, TypeError):
        fail(path, field, "valid JSON")
    if _depth(value, MAX_JSON_DEPTH):
        fail(path, field, f"JSON nested at most {MAX_JSON_DEPTH} deep")
    return value


# -- the safetensors header -----------------------------------------------------------------
def check_header(path, raw):
    """``(metadata dict of str, {key: (dtype, shape, (begin, end))})`` from the JSON header."""
    header = parse_json(path, "header", raw)
    if not isinstance(header, dict):
        fail(path, "header", "a JSON object", type(header).__name__)
    meta = header.pop("__metadata__", None)
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise ValueError(f"{path} is a safetensors file but not an xpnet model file (no "
                         "xpnet metadata)")
    table = {}
    for key, entry in header.items():
        field = f"tensor {key!r}"
        if not isinstance(entry, dict):
            fail(path, field, "an object with dtype, shape and data_offsets", entry)
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), \
            entry.get("data_offsets")
        if not isinstance(dtype, str) or dtype not in TENSOR_DTYPES:
            fail(path, f"{field}.dtype", f"one of {sorted(TENSOR_DTYPES)}", dtype)
        if not isinstance(shape, list) or len(shape) > 8 or \
                not all(_int(d, 0, 2**40) for d in shape):
            fail(path, f"{field}.shape", "a list of at most 8 non-negative ints", shape)
        if not (isinstance(offsets, list) and len(offsets) == 2 and
                all(_int(o, 0, 2**62) for o in offsets) and offsets[0] <= offsets[1]):
            fail(path, f"{field}.data_offsets", "[begin, end] with 0 <= begin <= end", offsets)
        if offsets[1] - offsets[0] != math.prod(shape) * TENSOR_DTYPES[dtype]:
            fail(path, f"{field}.data_offsets", f"{math.prod(shape) * TENSOR_DTYPES[dtype]} "
                 f"bytes for shape {tuple(shape)} of {dtype}", offsets)
        table[key] = (dtype, tuple(shape), tuple(offsets))
    return meta, table


# -- the xpnet metadata -----------------------------------------------------------------------
def check_metadata(path, meta, format_name, format_version):
    """The parsed metadata (JSON fields decoded), every field checked."""
    if meta.get("format") != format_name:
        raise ValueError(f"{path} is a safetensors file but not an xpnet model file (no "
                         "xpnet metadata)")
    version = meta.get("format_version")
    if not (isinstance(version, str) and version.isdigit() and len(version) < 6):
        fail(path, "format_version", "a positive integer in a string", version)
    if int(version) > format_version:
        raise ValueError(f"{path} was written in xpnet file format {version}, newer than "
                         f"this xpnet reads ({format_version}); upgrade xpnet")
    if meta.get("kind") not in ("weights", "model"):
        fail(path, "kind", "'weights' or 'model'", meta.get("kind"))
    out = {k: v if k in _PLAIN else parse_json(path, k, v) for k, v in meta.items()}
    arch = out.get("architecture")
    if arch is not None and not (isinstance(arch, list) and
                                 all(isinstance(a, str) for a in arch)):
        fail(path, "architecture", "a list of layer class names", arch)
    if out.get("compile") is not None and not isinstance(out.get("optimizer"), dict):
        fail(path, "optimizer", "the optimizer of a compiled model", out.get("optimizer"))
    for key, check in (("compile", _check_compile), ("optimizer", _check_optimizer),
                       ("rng", _check_rng)):
        if out.get(key) is not None:
            check(path, out[key])
    return out


def _check_compile(path, spec):
    if not isinstance(spec, dict):
        fail(path, "compile", "an object with loss, loss_weights and metrics", spec)
    _check_spec(path, "compile.loss", spec.get("loss"), loss=True)
    _check_spec(path, "compile.metrics", spec.get("metrics"), loss=False)
    weights = spec.get("loss_weights")
    values = weights.values() if isinstance(weights, dict) else \
        weights if isinstance(weights, list) else None
    if weights is not None and (values is None or not all(_number(w) for w in values)):
        fail(path, "compile.loss_weights", "null, or a list or object of finite numbers",
             weights)


def _check_spec(path, field, spec, loss):
    if spec is None or isinstance(spec, str):
        return
    if isinstance(spec, list):
        for i, s in enumerate(spec):
            _check_spec(path, f"{field}[{i}]", s, loss)
        return
    if isinstance(spec, dict) and isinstance(spec.get("__per_output__"), dict):
        for k, s in spec["__per_output__"].items():
            _check_spec(path, f"{field}.{k}", s, loss)
        return
    if loss and isinstance(spec, dict) and isinstance(spec.get("class_name"), str) and \
            isinstance(spec.get("config", {}), dict):
        return
    fail(path, field, "a name, null, a list, a per-output object or a {class_name, config}",
         spec)


def _check_optimizer(path, opt):
    if not isinstance(opt, dict):
        fail(path, "optimizer", "an object with class_name, config and iterations", opt)
    if not isinstance(opt.get("class_name"), str):
        fail(path, "optimizer.class_name", "a string", opt.get("class_name"))
    config = opt.get("config")
    if not isinstance(config, dict):
        fail(path, "optimizer.config", "an object", config)
    if not _int(opt.get("iterations", 0), 0, 2**53):
        fail(path, "optimizer.iterations", "an int in [0, 2**53)", opt.get("iterations"))
    scale = opt.get("loss_scale")
    if scale is not None and not (isinstance(scale, list) and len(scale) == 2 and
                                  _number(scale[0]) and scale[0] > 0 and _int(scale[1])):
        fail(path, "optimizer.loss_scale", "[scale > 0, finite steps >= 0]", scale)
    if "inner_optimizer" in config:  # LossScaleOptimizer: its scale, then the inner one
        for key in ("initial_scale", "dynamic_growth_steps"):
            if not (_number(config.get(key)) and config.get(key) > 0):
                fail(path, f"optimizer.config.{key}", "a finite number > 0", config.get(key))
        _check_optimizer(path, {**(config["inner_optimizer"] if isinstance(
            config["inner_optimizer"], dict) else {"class_name": None}), "iterations": 0})
        return
    lr = config.get("learning_rate")
    if isinstance(lr, dict):  # a schedule: its numbers must be finite
        if not isinstance(lr.get("class_name"), str) or \
                not isinstance(lr.get("config", {}), dict):
            fail(path, "optimizer.config.learning_rate", "a number or a schedule "
                 "{class_name, config}", lr)
        _finite_numbers(path, "optimizer.config.learning_rate.config", lr.get("config", {}))
    elif not (_number(lr) and lr >= 0):
        fail(path, "optimizer.config.learning_rate", "a finite number >= 0 or a schedule", lr)
    _finite_numbers(path, "optimizer.config", {k: v for k, v in config.items()
                                               if k != "learning_rate"})
    for key in ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay"):
        value = config.get(key)
        if value is not None and not (_number(value) and value >= 0):
            fail(path, f"optimizer.config.{key}", "null or a finite number >= 0", value)


def _finite_numbers(path, field, config):
    for key, value in config.items():
        if isinstance(value, float) and not math.isfinite(value):
            fail(path, f"{field}.{key}", "a finite number", value)


def _check_rng(path, rng):
    if not isinstance(rng, dict) or not isinstance(rng.get("layers", {}), dict):
        fail(path, "rng", "an object with 'layers' (an object) and 'fit'", rng)
    for key, state in rng.get("layers", {}).items():
        check_rng_state(path, f"rng.layers.{key}", state)
    if rng.get("fit") is not None:
        check_rng_state(path, "rng.fit", rng["fit"])


def check_rng_state(path, field, state):
    """A :meth:`xpnet.backend.RNG.get_state` snapshot: NumPy's PCG64 or CuPy's seed/count."""
    if not isinstance(state, dict):
        fail(path, field, "a random-generator state object", state)
    if state.get("kind") == "cupy":
        if not (state.get("seed") is None or _int(state.get("seed"), 0, 2**64)) or \
                not _int(state.get("calls"), 0, 2**63):
            fail(path, field, "{kind: 'cupy', seed: int >= 0, calls: int >= 0}", state)
        return
    inner = state.get("state")
    bits = inner.get("state") if isinstance(inner, dict) else None
    if state.get("kind") != "numpy" or not isinstance(inner, dict) or \
            inner.get("bit_generator") != "PCG64" or not isinstance(bits, dict) or \
            not _int(bits.get("state"), 0, 2**128) or not _int(bits.get("inc"), 0, 2**128) or \
            inner.get("has_uint32") not in (0, 1) or \
            not _int(inner.get("uinteger"), 0, 2**32):
        fail(path, field, "NumPy's PCG64 state {kind: 'numpy', state: {bit_generator: "
             "'PCG64', state: {state, inc: ints < 2**128}, has_uint32: 0 or 1, uinteger}}",
             state)


# -- the architecture -----------------------------------------------------------------------
def check_model_config(path, entry, resolve, field="config", depth=0):
    """A serialized layer or model (:func:`xpnet.saving.serialize_layer`), recursively;
    ``resolve(class_name)`` gives the class or None."""
    if depth > MAX_MODEL_DEPTH:
        fail(path, field, f"models nested at most {MAX_MODEL_DEPTH} deep")
    if not isinstance(entry, dict):
        fail(path, field, "an object with class_name and config", entry)
    name, config = entry.get("class_name"), entry.get("config", {})
    if not isinstance(name, str):
        fail(path, f"{field}.class_name", "a string", name)
    if not isinstance(config, dict):
        fail(path, f"{field}.config", "an object", config)
    cls = resolve(name)
    from xpnet.layers.base import Layer
    from xpnet.models import Model
    from xpnet.models import Sequential
    from xpnet.saving import _abstract

    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"{path}: unknown layer class {name!r} in the model config "
                         f"({field}); pass its class in custom_objects={{{name!r}: ...}}")
    if _abstract(cls):
        fail(path, f"{field}.class_name", "a layer class with a call or forward (not the "
             "abstract Layer)", name)
    _check_layer_fields(path, f"{field}.config", config, name)
    if cls is Sequential:
        _check_sequential(path, f"{field}.config", config, resolve, depth)
    elif cls is Model or (issubclass(cls, Model) and "layers" in config and
                          "input_layers" in config):  # a graph (else a subclassed model)
        _check_functional(path, f"{field}.config", config, resolve, depth)


def _check_layer_fields(path, field, config, class_name):
    if "name" in config and not isinstance(config["name"], str):
        fail(path, f"{field}.name", "a string", config["name"])
    if "trainable" in config and not isinstance(config["trainable"], bool):
        fail(path, f"{field}.trainable", "true or false", config["trainable"])
    allowed = INPUT_DTYPES if class_name == "InputLayer" else LAYER_DTYPES
    dtype = config.get("dtype")
    if dtype is not None and dtype not in allowed:
        fail(path, f"{field}.dtype", f"one of {list(allowed)}", dtype)


def _check_sequential(path, field, config, resolve, depth):
    entries = config.get("layers")
    if not isinstance(entries, list):
        fail(path, f"{field}.layers", "a list of layers", entries)
    names = []
    for i, e in enumerate(entries):
        check_model_config(path, e, resolve, f"{field}.layers[{i}]", depth + 1)
        if e.get("class_name") == "InputLayer" and i > 0:
            fail(path, f"{field}.layers[{i}]", "an InputLayer only as the first layer")
        names.append(e.get("config", {}).get("name"))
    _unique(path, f"{field}.layers", [n for n in names if n is not None])


def _unique(path, field, names):
    seen = set()
    for n in names:
        if n in seen:
            fail(path, field, "unique layer names", f"{n!r} twice")
        seen.add(n)


def _check_functional(path, field, config, resolve, depth):
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        fail(path, f"{field}.layers", "a non-empty list of layers", entries)
    nodes = {}
    for i, e in enumerate(entries):
        where = f"{field}.layers[{i}]"
        check_model_config(path, e, resolve, where, depth + 1)
        if not isinstance(e.get("name"), str):
            fail(path, f"{where}.name", "a string", e.get("name"))
        if e["name"] in nodes:
            fail(path, f"{field}.layers", "unique layer names", f"{e['name']!r} twice")
        inbound = e.get("inbound_nodes", [])
        if not isinstance(inbound, list) or (e.get("class_name") == "InputLayer") != \
                (not inbound):
            fail(path, f"{where}.inbound_nodes", "no nodes for an InputLayer, a list of "
                 "nodes for any other layer", inbound)
        nodes[e["name"]] = max(1, len(inbound))
    for i, e in enumerate(entries):
        for k, node in enumerate(e.get("inbound_nodes", [])):
            where = f"{field}.layers[{i}].inbound_nodes[{k}]"
            if isinstance(node, dict):  # {"args": [...], "kwargs": {...}} (Keras 3's form)
                refs = _node_refs(path, where, node)
            elif isinstance(node, list) and node:
                refs = node
            else:
                fail(path, where, "a list of [layer, node, tensor] references or "
                     "{\"args\", \"kwargs\"}", node)
            for ref in refs:
                _check_ref(path, where, ref, nodes)
    for key in ("input_layers", "output_layers"):
        for ref in _spec_refs(path, f"{field}.{key}", config.get(key)):
            _check_ref(path, f"{field}.{key}", ref, nodes)
    inputs = {e["name"] for e in entries if e.get("class_name") == "InputLayer"}
    spec = config.get("input_layers")
    if any(r[0] not in inputs for r in _spec_refs(path, f"{field}.input_layers", spec)):
        fail(path, f"{field}.input_layers", "references to InputLayers", spec)


def _spec_refs(path, field, spec):
    """The tensor references of ``input_layers``/``output_layers``: one, a list, a dict."""
    if isinstance(spec, dict):
        return [r for v in spec.values() for r in _spec_refs(path, field, v)]
    if isinstance(spec, list) and spec and isinstance(spec[0], (list, dict)):
        return [r for v in spec for r in _spec_refs(path, field, v)]
    return [spec]


def _node_refs(path, field, node, depth=0):
    """The tensor references inside a node's ``args``/``kwargs`` (plain JSON values around
    them)."""
    if depth > 16:
        fail(path, field, "arguments nested at most 16 deep")
    if depth == 0 and (set(node) - {"args", "kwargs"} or
                       not isinstance(node.get("args", []), list) or
                       not isinstance(node.get("kwargs", {}), dict)):
        fail(path, field, "{\"args\": [...], \"kwargs\": {...}}", node)
    if isinstance(node, dict):
        if "__keras_tensor__" in node:
            if len(node) != 1:
                fail(path, field, "a {\"__keras_tensor__\": reference}", node)
            return [node["__keras_tensor__"]]
        return [r for v in node.values() for r in _node_refs(path, field, v, depth + 1)]
    if isinstance(node, list):
        return [r for v in node for r in _node_refs(path, field, v, depth + 1)]
    if node is None or isinstance(node, (bool, int, float, str)):
        return []
    fail(path, field, "JSON values and tensor references", node)


def _check_ref(path, field, ref, nodes):
    if not (isinstance(ref, list) and len(ref) == 3 and isinstance(ref[0], str) and
            _int(ref[1]) and _int(ref[2])):
        fail(path, field, "a [layer name, node index, tensor index] reference", ref)
    if ref[0] not in nodes:
        fail(path, field, "a reference to a layer of the model", ref)
    if ref[1] >= nodes[ref[0]]:
        fail(path, field, f"a node index below {nodes[ref[0]]} for layer {ref[0]!r}", ref)
