"""Models: the functional ``Model(inputs, outputs)``, ``Sequential``, and models written by
subclassing ``Model`` with a ``call()``.

A functional model is a graph of nodes (one per layer call) between ``Input`` tensors and
outputs; a node may take several arguments, keyword arguments (masks, ``initial_state``)
and give several outputs. ``forward`` runs the nodes in topological order and keeps each
node's ctx; ``backward`` runs them in reverse, adding gradients where a tensor fans out.
This static path is a pre-recorded tape: no per-op bookkeeping. A subclassed model runs its
``call`` under a tape instead (:mod:`xpnet.engine.calls`). A model is itself a layer, so
models nest (a GAN's generator and discriminator inside the combined model).
"""

from xpnet.backend import get_backend
from xpnet.engine import calls
from xpnet.engine import functional
from xpnet.engine.node import KerasTensor
from xpnet.engine.node import flatten
from xpnet.engine.node import map_structure
from xpnet.engine.node import pack_as
from xpnet.engine.tape import unwrap
from xpnet.engine.trainer import Trainer
from xpnet.layers.base import Layer
from xpnet.layers.core import Input
from xpnet.layers.core import InputLayer

__all__ = ["Model", "Sequential", "Input", "load_model", "save_model", "clone_model"]


class _Slot:
    """A place in the graph's value list, standing for a tensor in a node's arguments."""

    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


class _Step:
    """One node of the compiled graph: its layer, its arguments with slots in place of
    tensors, and the slots of its outputs."""

    __slots__ = ("layer", "args", "kwargs", "ins", "n_args", "kw_counts", "outs", "out_tree",
                 "simple", "data_only", "fused", "nested", "training", "need_dx", "node")

    def __init__(self, node, slot, n_inputs):
        layer = node.layer
        self.layer, self.node = layer, node
        kwargs = dict(node.kwargs)
        self.training = kwargs.pop("training", None)

        def to_slot(t):
            return _Slot(slot[id(t)]) if isinstance(t, KerasTensor) else t
        self.args = [map_structure(to_slot, a) for a in node.args]
        self.kwargs = {k: map_structure(to_slot, v) for k, v in kwargs.items()}
        flat_args = flatten(self.args)
        self.n_args = len(flat_args)
        self.kw_counts = [(k, len(flatten(v))) for k, v in self.kwargs.items()]
        self.ins = [s.i if isinstance(s, _Slot) else None
                    for s in flat_args + flatten(self.kwargs)]
        self.out_tree = node.outputs
        self.outs = [slot.setdefault(id(t), len(slot)) for t in node.flat_outputs]
        self.simple = (len(self.args) == 1 and isinstance(self.args[0], _Slot)
                       and not self.kwargs and isinstance(node.outputs, KerasTensor)
                       and self.training is None)
        self.data_only = all(i is None or i < n_inputs for i in self.ins)
        self.fused = False
        self.nested = isinstance(layer, Model) or calls.is_call_based(layer)
        self.need_dx = calls.signature(layer, "backward").need_dx


def _topological(inputs, outputs):
    """Nodes between ``inputs`` and ``outputs``, each after the nodes it reads from."""
    order, seen, stack_ids = [], set(), set()
    input_ids = {id(t) for t in inputs}

    def visit(tensor):
        if id(tensor) in input_ids:
            return
        node = tensor.node
        if node is None:
            raise ValueError(f"tensor {tensor} was not produced by a layer")
        if node.id in seen:
            return
        if isinstance(node.layer, InputLayer):
            raise ValueError(
                f"the outputs depend on input {node.layer.name!r} {tensor.shape}, which is "
                f"not among the model's inputs {[t.name for t in inputs]}"
            )
        if node.id in stack_ids:
            raise ValueError("the graph has a cycle")
        stack_ids.add(node.id)
        for t in node.inputs:
            visit(t)
        stack_ids.discard(node.id)
        seen.add(node.id)
        order.append(node)

    for t in outputs:
        visit(t)
    return order


class GraphContext:
    """What a functional model's ``forward`` hands its ``backward``: each node's ctx, whether
    the heads ran fused, the summed penalties (activity regularizers and added losses), the
    activity-regularized outputs, and the outputs' Keras masks."""

    __slots__ = ("ctxs", "fused", "penalty", "act", "masks")

    def __init__(self, ctxs, fused, penalty, act, masks):
        self.ctxs, self.fused, self.penalty, self.act, self.masks = \
            ctxs, fused, penalty, act, masks


class Model(Trainer, Layer):
    """A model: functional, ``Model(inputs, outputs)`` from tensors made by calling layers
    on ``Input`` tensors; or subclassed, with layers made in ``__init__`` and a ``call``.

    Parameters
    ----------
    inputs, outputs : KerasTensor, or a list or dict of them
    backend : str or Backend, default=None
        Where the weights live: "cpu", "cuda", "auto", or None for the default
        (:func:`xpnet.set_backend`, ``$XPNET_BACKEND``, else "auto").
    """

    def __init__(self, inputs=None, outputs=None, name=None, backend=None, **kwargs):
        Layer.__init__(self, name=name, **kwargs)
        Trainer.__init__(self)
        self._backend_spec = backend
        self._graph = None
        if inputs is not None or outputs is not None:
            if inputs is None or outputs is None:
                raise ValueError(f"{self.name}: give both inputs and outputs")
            self._set_graph(inputs, outputs)
            self.build_on(get_backend(backend), self._input_shapes_arg())

    # -- graph ---------------------------------------------------------------------------
    def _set_graph(self, inputs, outputs):
        self._input_tree, self._output_tree = inputs, outputs
        self._multi_in = not isinstance(inputs, KerasTensor)
        self._multi_out = not isinstance(outputs, KerasTensor)
        self.inputs, self.outputs = flatten(inputs), flatten(outputs)
        for t in self.inputs + self.outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"{self.name}: inputs and outputs must be tensors from "
                                f"keras.Input and layer calls, got {t!r}")
        nodes = _topological(self.inputs, self.outputs)
        slot = {id(t): i for i, t in enumerate(self.inputs)}
        self._graph = [_Step(node, slot, len(self.inputs)) for node in nodes]
        self._n_slots = len(slot)
        self._output_slots = [slot[id(t)] for t in self.outputs]
        input_layers = [t.node.layer for t in self.inputs if t.node is not None]
        layers, seen = [], set()
        for layer in input_layers + [s.layer for s in self._graph]:
            if id(layer) not in seen:
                seen.add(id(layer))
                layers.append(layer)
        self._layers = layers
        self._masked = any(type(s.layer).compute_mask is not Layer.compute_mask
                           for s in self._graph)

    def _input_shapes_arg(self):
        shapes = [t.shape for t in self.inputs]
        return shapes if self._multi_in else shapes[0]

    def _sublayers(self):
        if self._graph is not None:
            return [la for la in self._layers if not isinstance(la, InputLayer)]
        return Layer._sublayers(self)

    @property
    def layers(self):
        if self._graph is not None:
            return list(self._layers)
        return Layer._sublayers(self)

    def get_layer(self, name=None, index=None):
        """A layer by name or by index in ``layers``."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers: "
                         f"{[la.name for la in self.layers]}")

    @property
    def input(self):
        self._require_graph("model.input")
        return self._input_tree

    @property
    def output(self):
        self._require_graph("model.output")
        return self._output_tree

    def build(self, input_shape):
        if self._graph is None:
            return
        for step in self._graph:
            if step.simple:
                step.layer.build_on(self.backend, self.inputs_shape_of(step.node.args[0]))
            else:
                _build_node(step.node, self.backend)

    @staticmethod
    def inputs_shape_of(arg):
        return map_structure(lambda t: tuple(t.shape), arg)

    def check_input_shape(self, input_shape):
        if self._graph is None:
            return
        shapes = input_shape if self._multi_in else [input_shape]
        if len(shapes) != len(self.inputs):
            raise ValueError(f"{self.name}: expects {len(self.inputs)} input(s), "
                             f"got {len(shapes)}")
        for t, s in zip(self.inputs, shapes):
            if len(s) != len(t.shape) or any(a is not None and b is not None and a != b
                                             for a, b in zip(s[1:], t.shape[1:])):
                raise ValueError(f"{self.name}: input {t.name!r} expects shape {t.shape}, "
                                 f"got {tuple(s)}")

    def compute_output_shape(self, input_shape):
        if self._graph is None:
            raise NotImplementedError  # a subclassed model: found by calling it
        return map_structure(lambda t: tuple(t.shape), self._output_tree)

    # -- weights -------------------------------------------------------------------------
    def macs(self, input_shape=None):
        """Multiply-adds per sample of one forward pass, summed over the graph's nodes."""
        if self._graph is None:
            return self.count_params()
        total = 0
        for step in self._graph:
            args = step.node.args
            shapes = [map_structure(lambda t: tuple(t.shape) if hasattr(t, "shape") else t, a)
                      for a in args]
            total += step.layer.macs(shapes[0] if len(shapes) == 1 else shapes)
        return total

    # -- computation ---------------------------------------------------------------------
    def forward(self, x, training=False, fused=False):
        """``(outputs, ctx)``. With ``fused``, heads marked by ``compile`` return logits.

        ``ctx.penalty`` is the sum of the layers' activity penalties and added losses, so
        the loss can include it without any host sync.
        """
        if self._graph is None:
            if not calls.is_call_based(self):
                self._require_graph("forward")
            return calls.forward_by_tape(self, [x], {}, training)
        vals = [None] * self._n_slots
        xs = [x] if not self._multi_in else flatten(x)
        vals[:len(xs)] = xs
        masks = [None] * self._n_slots if self._masked else None
        ctxs, penalty, act = [], 0.0, None
        for k, step in enumerate(self._graph):
            layer = step.layer
            if step.simple:
                xin = vals[step.args[0].i]
                if fused and step.fused:
                    y, inner = layer.forward_z(xin, training)
                    ctx = (inner, None)
                    if masks is not None:  # the loss and metrics weigh by the head's mask
                        _set_output_masks(step, [xin], _incoming_mask(step, masks), masks)
                elif masks is not None:
                    y, ctx = _forward_masked(step, [xin], {}, masks, training)
                else:
                    y, ctx = layer.forward(xin, training=training)
                vals[step.outs[0]] = y
            else:
                y, ctx = self._forward_step(step, vals, masks, training)
            if step.nested:
                penalty = penalty + ctx.penalty
            reg = layer.activity_regularizer
            if reg is not None:
                penalty = penalty + reg(y)
                act = act or {}
                act[k] = (reg, y)
            ctxs.append(ctx)
        outs = [vals[i] for i in self._output_slots]
        out_masks = None if masks is None else [masks[i] for i in self._output_slots]
        y = pack_as(self._output_tree, outs) if self._multi_out else outs[0]
        return y, GraphContext(ctxs, fused, penalty, act, out_masks)

    def _forward_step(self, step, vals, masks, training):
        def fill(s):
            return vals[s.i] if isinstance(s, _Slot) else s
        args = [map_structure(fill, a) for a in step.args]
        kwargs = {k: map_structure(fill, v) for k, v in step.kwargs.items()}
        tr = training if step.training is None else step.training
        if masks is not None:
            y, ctx = _forward_masked(step, args, kwargs, masks, tr)
        else:
            y, ctx = step.layer.forward(*args, training=tr, **kwargs)
        flat = [y] if len(step.outs) == 1 and not isinstance(y, (list, tuple, dict)) \
            else flatten(y)
        for s, v in zip(step.outs, flat):
            vals[s] = v
        return y, ctx

    @staticmethod
    def activity_penalty(ctx):
        """The activity-regularisation penalty (and added losses) of the forward pass that
        returned ``ctx`` (0.0 when there are none)."""
        return ctx.penalty

    def backward(self, ctx, dy, need_dx=True):
        """Gradients into every layer's ``grads``; returns ``dL/dinputs``."""
        if isinstance(ctx, calls.TapeContext):
            return calls.backward_by_tape(self, ctx, dy, need_dx)
        grads = [None] * self._n_slots
        for i, d in zip(self._output_slots, flatten(dy) if self._multi_out else [dy]):
            if d is not None:
                grads[i] = d if grads[i] is None else grads[i] + d
        last = len(ctx.ctxs) - 1
        act, fused = ctx.act, ctx.fused
        ready = getattr(self, "_grad_ready", None)  # distributed: starts bucket all-reduces
        for k, (step, c) in enumerate(zip(reversed(self._graph), reversed(ctx.ctxs))):
            if ready is not None:  # distributed: k reverse steps are done
                ready(k)
            if step.simple:
                d = grads[step.outs[0]]
                if act is not None and last - k in act:
                    reg, y = act[last - k]
                    d = reg.grad(y) if d is None else d + reg.grad(y)
                if d is None and not (step.nested and _carries_losses(c)):
                    continue
                grads[step.outs[0]] = None
                if fused and step.fused:
                    dx = step.layer.backward_z(c[0], d, need_dx or not step.data_only)
                elif step.data_only and not need_dx:
                    if step.need_dx:
                        step.layer.backward(c, d, need_dx=False)
                    else:
                        step.layer.backward(c, d)
                    continue
                else:
                    dx = step.layer.backward(c, d)
                i = step.ins[0]
                if dx is not None:
                    grads[i] = dx if grads[i] is None else grads[i] + dx
                continue
            self._backward_step(step, c, grads, need_dx)
        if ready is not None:  # distributed: the whole backward pass is done
            ready(len(ctx.ctxs))
        dxs = grads[:len(self.inputs)]
        return pack_as(self._input_tree, dxs) if self._multi_in else dxs[0]

    def _backward_step(self, step, c, grads, need_dx):
        dys = [grads[s] for s in step.outs]
        if all(d is None for d in dys) and not (step.nested and _carries_losses(c)):
            return
        for s in step.outs:
            grads[s] = None
        dy = dys[0] if isinstance(step.out_tree, KerasTensor) else pack_as(step.out_tree, dys)
        want_dx = need_dx or not step.data_only
        g = step.layer.backward(c, dy, need_dx=want_dx) if step.need_dx else \
            step.layer.backward(c, dy)
        flat = calls._align_grads(step.layer, g, step.args, step.n_args, step.kw_counts)
        for i, gi in zip(step.ins, flat):
            if i is not None and gi is not None:
                grads[i] = gi if grads[i] is None else grads[i] + gi

    def get_rng_state(self):
        """The random states of the layers, in order (None where a layer has none)."""
        return [Layer.get_rng_state(la) for la in self._all_layers()]

    def set_rng_state(self, state):
        if state is not None:
            for la, s in zip(self._all_layers(), state):
                Layer.set_rng_state(la, s)

    def __call__(self, *args, **kwargs):
        if not args or calls.has_keras_tensor(args, kwargs):
            return Layer.__call__(self, *args, **kwargs)
        if self._graph is None and not calls.is_call_based(self):
            self._build_from_data(args[0])
        with self._call_threads(args[0]):  # the threads predict would choose
            return Layer.__call__(self, *args, **kwargs)

    def _build_from_data(self, inputs):
        if calls.is_call_based(self):
            return self._build_call_based(inputs)
        self._require_graph("a call")

    def _build_call_based(self, x):
        """Build a subclassed model by calling it on (a slice of) its data, and record its
        input and output specs for ``fit``."""
        if getattr(self, "_specs_known", False):
            return
        backend = self.backend or get_backend(self._backend_spec)
        self.backend = backend

        xp = backend.xp

        def head(a):
            a = unwrap(a)
            a = backend.asarray(a[:2, ...] if hasattr(a, "shape") and a.ndim else a)
            if xp.isdtype(a.dtype, "real floating") and a.dtype != getattr(xp, self.dtype):
                a = xp.astype(a, getattr(xp, self.dtype))  # float data computes in float32
            return a
        sample = map_structure(head, x)
        st = calls.state()
        st.stack.append(self)
        try:
            out = self(sample, training=False)
        finally:
            st.stack.pop()
        self._input_tree = map_structure(lambda a: KerasTensor(
            (None,) + tuple(a.shape[1:]), _dtype_name(a.dtype), name="input"), sample)
        self._output_tree = map_structure(lambda a: KerasTensor(
            (None,) + tuple(unwrap(a).shape[1:]), _dtype_name(unwrap(a).dtype),
            name="output"), out)
        self._multi_in = not isinstance(self._input_tree, KerasTensor)
        self._multi_out = not isinstance(self._output_tree, KerasTensor)
        self.inputs, self.outputs = flatten(self._input_tree), flatten(self._output_tree)
        for k, t in enumerate(self.outputs):
            t.name = "output" if len(self.outputs) == 1 else f"output_{k + 1}"
        self._specs_known = True
        self.built = True

    def _ensure_graph(self, input_shape=None):
        if self._graph is None and not getattr(self, "_specs_known", False):
            self._require_graph("this")

    def get_build_config(self):
        """A subclassed model's input specs once it is built (Keras 3's build config), so a
        loaded copy can be built the same way; None for a functional model or Sequential,
        whose config holds its graph."""
        if self._graph is not None or not getattr(self, "_specs_known", False):
            return None
        return {"input": map_structure(lambda t: {"shape": list(t.shape), "dtype": t.dtype},
                                       self._input_tree)}

    def build_from_config(self, config, backend=None):
        """Build a subclassed model from :meth:`get_build_config`: by calling it on zeros
        of those specs (batch 2), on ``backend``."""
        backend = get_backend(backend)
        xp = backend.xp
        self.backend = backend

        def zeros(spec):
            if isinstance(spec, dict) and set(spec) == {"shape", "dtype"}:
                return xp.zeros((2,) + tuple(spec["shape"][1:]),
                                dtype=getattr(xp, spec["dtype"]), device=backend.device)
            if isinstance(spec, dict):
                return {k: zeros(v) for k, v in spec.items()}
            return [zeros(v) for v in spec]
        self._build_call_based(zeros(config["input"]))

    # -- description ---------------------------------------------------------------------
    def summary(self, print_fn=print, line_length=80):
        """Print each layer's output shape and parameter count, then the totals."""
        if self._graph is None and not getattr(self, "_specs_known", False):
            self._require_graph("summary")
        cols = (int(line_length * 0.45), int(line_length * 0.33))
        lines = [f'Model: "{self.name}"', "=" * line_length,
                 f"{'Layer (type)':<{cols[0]}}{'Output Shape':<{cols[1]}}Param #",
                 "=" * line_length]
        for layer in self.layers:
            if isinstance(layer, InputLayer) and isinstance(self, Sequential):
                continue
            shape = layer.output.shape if isinstance(layer, InputLayer) else \
                _output_shape(layer)
            label = f"{layer.name} ({type(layer).__name__})"
            if len(label) >= cols[0]:
                label = label[:cols[0] - 2] + "…"
            lines.append(f"{label:<{cols[0]}}{str(shape):<{cols[1]}}{layer.count_params():,}")
        trainable = sum(v.size for v in self.trainable_weights)
        total = self.count_params()
        lines += ["=" * line_length, f"Total params: {total:,}",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        print_fn("\n".join(lines))

    # -- configuration and saving ----------------------------------------------------------
    def get_config(self):
        """The graph as Keras writes it: each layer's config with its inbound nodes, and the
        model's inputs and outputs; :meth:`from_config` rebuilds it. A subclassed model
        returns its own ``get_config`` (or its constructor's arguments)."""
        if self._graph is None:
            return calls.auto_config(self)
        return functional.functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None, backend=None):
        """Rebuild a functional model from :meth:`get_config` (layer classes by name from
        ``xpnet.layers``, the registry, or ``custom_objects``), on ``backend``."""
        if "layers" not in config or "input_layers" not in config:
            return cls(**config)
        inputs, outputs = functional.functional_graph(config, custom_objects, backend)
        return cls(inputs, outputs, name=config.get("name"), backend=backend,
                   trainable=config.get("trainable", True))

    def to_json(self, **kwargs):
        """The architecture as a JSON string (``keras.models.model_from_json`` reads it)."""
        import json

        from xpnet import saving

        return json.dumps(saving.serialize_layer(self), **kwargs)

    def save(self, filepath, overwrite=True):
        """Save the architecture, weights, optimizer state and random state in one file;
        see :func:`xpnet.saving.save_model`."""
        from xpnet import saving

        saving.save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Save the weights alone (safetensors), atomically."""
        from xpnet import saving

        saving.save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath):
        """Load weights saved by :meth:`save_weights` or :meth:`save` into this model.
        Everything is checked before anything is written: on any error the model is
        unchanged."""
        from xpnet import saving

        saving.load_weights(self, filepath)

    def _require_graph(self, what):
        if self._graph is None:
            if calls.is_call_based(self):
                raise ValueError(f"{self.name}: {what} needs the model built; call it on "
                                 "data first (model(x)), or fit/predict")
            raise ValueError(f"{self.name}: {what} needs the input shape; give the first "
                             "layer input_shape=..., start with keras.Input(shape=...), "
                             "or call fit/predict first")


def _carries_losses(ctx):
    """Whether a nested step added losses whose gradient must flow even where its outputs
    get none."""
    if isinstance(ctx, calls.TapeContext):
        return bool(ctx.losses)
    if isinstance(ctx, GraphContext):
        return not isinstance(ctx.penalty, float)
    return False


def _dtype_name(dtype):
    name = str(dtype)
    return name.rsplit(".", 1)[-1] if "." in name else name


def _output_shape(layer):
    if layer._inbound_nodes:
        outs = layer._inbound_nodes[-1].outputs
        return map_structure(lambda t: t.shape, outs)
    return layer.output_shape


def _build_node(node, backend):
    """Build the layer of a node from its arguments' symbolic shapes."""
    def shape_of(t):
        return tuple(t.shape) if hasattr(t, "shape") else t
    if node.layer.built:
        node.layer.build_on(backend, map_structure(shape_of, node.args[0]) if node.args
                            else None)
        return
    calls.build_from_args(node.layer, backend, node.args, node.kwargs, shape_of)


def _forward_masked(step, args, kwargs, masks, training):
    """A node's forward with Keras masks: the incoming mask handed to a layer that takes
    ``mask`` (or ``<arg>_mask``), and the output mask computed for the next node."""
    layer = step.layer
    mask_in = _incoming_mask(step, masks)
    sig = calls.signature(layer, "call" if calls.is_call_based(layer) else "forward")
    kwargs = dict(kwargs)
    if sig.mask and "mask" not in kwargs and mask_in is not None:
        kwargs["mask"] = mask_in
    for name in sig.mask_args:
        base = name[:-5]
        src = step.kwargs.get(base)
        if src is None and base in sig.positional and sig.positional.index(base) < len(step.args):
            src = step.args[sig.positional.index(base)]
        if name not in kwargs and isinstance(src, _Slot) and masks[src.i] is not None:
            kwargs[name] = masks[src.i]
    y, ctx = layer.forward(*args, training=training, **kwargs)
    _set_output_masks(step, args, mask_in, masks)
    return y, ctx


def _incoming_mask(step, masks):
    """The Keras mask of a node's first argument (a list of masks for a list argument)."""
    flat_in = [masks[s.i] if isinstance(s, _Slot) else None for s in flatten(step.args[:1])]
    return flat_in[0] if len(flat_in) == 1 and isinstance(step.args[0], _Slot) else \
        (flat_in if any(m is not None for m in flat_in) else None)


def _set_output_masks(step, args, mask_in, masks):
    """The masks of a node's outputs, from its layer's ``compute_mask``."""
    layer = step.layer
    custom = type(layer).compute_mask is not Layer.compute_mask
    if custom or (layer.supports_masking and mask_in is not None):
        m = layer.compute_mask(args[0] if args else None, mask_in)
        outs = step.outs
        ms = m if isinstance(m, (list, tuple)) and len(outs) > 1 else [m] * len(outs)
        for s, mk in zip(outs, ms):
            masks[s] = mk


class Sequential(Model):
    """A linear stack of layers: ``Sequential([Input(shape), Dense(64), ...])``.

    The input shape comes from a leading ``keras.Input``, from ``input_shape=`` on the first
    layer, or, failing both, from the data at the first ``fit``/``predict`` (as Keras).
    """

    def __init__(self, layers=None, name=None, backend=None, trainable=True):
        Model.__init__(self, name=name, backend=backend, trainable=trainable)
        self._stack, self._input = [], None
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._input is not None:
            self._ensure_graph()

    def add(self, layer, rebuild=True):
        """Append a layer (or a leading ``keras.Input``); builds once the input is known."""
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._stack or self._input is not None:
                raise ValueError(f"{self.name}: an Input can only be the first element")
            self._input = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"{self.name}: add expects a Layer, got {layer!r}")
        self._stack.append(layer)
        self._graph = None
        self.built = False
        if self._input is None and len(self._stack) == 1 and layer._input_shape_arg:
            self._input = InputLayer(shape=layer._input_shape_arg)
        if rebuild and self._input is not None:
            self._ensure_graph()

    def pop(self):
        """Remove the last layer."""
        layer = self._stack.pop()
        self._graph = None
        self.built = False
        if self._input is not None and self._stack:
            self._ensure_graph()
        return layer

    @property
    def layers(self):
        return list(self._stack)

    def _sublayers(self):
        if self._graph is None and self._input is not None:
            self._ensure_graph()
        return list(self._stack)

    def check_input_shape(self, input_shape):
        if self._graph is not None:
            super().check_input_shape(input_shape)

    def _ensure_graph(self, input_shape=None):
        if self._graph is not None:
            return
        if self._input is None:
            if input_shape is None:
                self._require_graph("this")
            self._input = InputLayer(shape=tuple(input_shape[1:]))
        x = self._input.output
        for layer in self._stack:
            x = layer(x)
        self._set_graph(self._input.output, x)
        self._layers = [self._input] + [la for la in self._stack]
        backend = self.backend or get_backend(self._backend_spec)
        self.built = False
        Layer.build_on(self, backend, self._input.output.shape)

    def _build_from_data(self, inputs):
        self._ensure_graph(tuple(unwrap(inputs).shape))

    def build_on(self, backend, input_shape):
        if self._graph is None and self._input is None:
            self._input = InputLayer(shape=tuple(input_shape[1:]))
        if self._graph is None:
            self._backend_spec = backend
            self._ensure_graph()
            return
        Layer.build_on(self, backend, input_shape)

    def compute_output_shape(self, input_shape):
        if self._graph is None:
            shape = input_shape
            for layer in self._stack:
                shape = layer.compute_output_shape(shape)
            return shape
        return super().compute_output_shape(input_shape)

    def summary(self, print_fn=print, line_length=80):
        self._ensure_graph()
        super().summary(print_fn, line_length)

    @classmethod
    def from_config(cls, config, custom_objects=None, backend=None):
        """Rebuild a Sequential from :meth:`get_config` on ``backend``."""
        from xpnet import saving

        layers = [saving.deserialize_layer(e, custom_objects, backend)
                  for e in config["layers"]]
        return cls(layers, name=config.get("name"), backend=backend,
                   trainable=config.get("trainable", True))

    def get_config(self):
        from xpnet import saving

        config = {"name": self.name, "trainable": self.trainable, "layers": []}
        if self._input is not None:
            config["layers"].append({"class_name": "InputLayer",
                                     "config": self._input.get_config()})
        for layer in self._stack:
            config["layers"].append(saving.serialize_layer(layer))
        return config


def load_model(filepath, custom_objects=None, compile=True, backend=None):
    """A model saved by :meth:`Model.save`; see :func:`xpnet.saving.load_model`."""
    from xpnet import saving

    return saving.load_model(filepath, custom_objects=custom_objects, compile=compile,
                             backend=backend)


def save_model(model, filepath, overwrite=True):
    """``model.save(filepath)``, as ``keras.models.save_model``."""
    model.save(filepath, overwrite=overwrite)


def clone_model(model, input_tensors=None, clone_function=None):
    """A new model with the same architecture and freshly initialised weights (as
    ``keras.models.clone_model``): rebuilt from its config."""
    from xpnet import saving

    if input_tensors is not None or clone_function is not None:
        raise NotImplementedError("clone_model: input_tensors and clone_function are not "
                                  "supported yet")
    return saving.deserialize_layer(saving.serialize_layer(model), None, model.backend)


def model_from_json(json_string, custom_objects=None):
    """The model a :meth:`Model.to_json` string describes (untrained)."""
    import json

    from xpnet import saving

    return saving.deserialize_layer(json.loads(json_string), custom_objects)
