"""Models: the functional ``Model(inputs, outputs)`` and ``Sequential``, on one engine.

A model is a graph of nodes (one per layer call) between ``Input`` tensors and outputs.
``forward`` runs the nodes in topological order and keeps each node's ctx; ``backward`` runs
them in reverse, adding gradients where a tensor fans out. A model is itself a layer, so
models nest (a GAN's generator and discriminator inside the combined model).
"""

from xpnet.backend import get_backend
from xpnet.layers.base import KerasTensor
from xpnet.layers.base import Layer
from xpnet.layers.core import Input
from xpnet.layers.core import InputLayer
from xpnet.training import Trainer

__all__ = ["Model", "Sequential", "Input", "load_model", "save_model"]


class _Step:
    """One node of the compiled graph: which slots it reads and writes."""

    __slots__ = ("layer", "ins", "out", "multi", "data_only", "fused", "nested")

    def __init__(self, layer, ins, out, multi, data_only):
        self.layer, self.ins, self.out, self.multi = layer, ins, out, multi
        self.data_only, self.fused = data_only, False
        self.nested = isinstance(layer, Model)


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


class Model(Trainer, Layer):
    """A functional model: ``Model(inputs, outputs)`` from tensors made by calling layers on
    ``Input`` tensors.

    Parameters
    ----------
    inputs, outputs : KerasTensor or list of KerasTensor
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
        self._multi_in = isinstance(inputs, (list, tuple))
        self._multi_out = isinstance(outputs, (list, tuple))
        self.inputs = list(inputs) if self._multi_in else [inputs]
        self.outputs = list(outputs) if self._multi_out else [outputs]
        for t in self.inputs + self.outputs:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"{self.name}: inputs and outputs must be tensors from "
                                f"keras.Input and layer calls, got {t!r}")
        nodes = _topological(self.inputs, self.outputs)
        slot = {id(t): i for i, t in enumerate(self.inputs)}
        steps = []
        for node in nodes:
            ins = [slot[id(t)] for t in node.inputs]
            out = slot.setdefault(id(node.outputs[0]), len(slot))
            data_only = all(i < len(self.inputs) for i in ins)
            steps.append(_Step(node.layer, ins, out, len(node.inputs) > 1, data_only))
        self._graph = steps
        self._n_slots = len(slot)
        self._output_slots = [slot[id(t)] for t in self.outputs]
        input_layers = [t.node.layer for t in self.inputs if t.node is not None]
        layers = []
        for layer in input_layers + [s.layer for s in steps]:
            if all(layer is not seen for seen in layers):
                layers.append(layer)
        self._layers = layers

    def _input_shapes_arg(self):
        shapes = [t.shape for t in self.inputs]
        return shapes if self._multi_in else shapes[0]

    @property
    def layers(self):
        return list(self._layers) if self._graph is not None else []

    def get_layer(self, name=None, index=None):
        """A layer by name or by index in ``layers``."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"{self.name}: no layer named {name!r}; layers: "
                         f"{[la.name for la in self.layers]}")

    def build(self, input_shape):
        for step in self._graph:
            shapes = [self._slot_shape(i) for i in step.ins]
            step.layer.build_on(self.backend, shapes if step.multi else shapes[0])

    def _slot_shape(self, i):
        if i < len(self.inputs):
            return self.inputs[i].shape
        for step in self._graph:
            if step.out == i:
                return step.layer.compute_output_shape(
                    [self._slot_shape(j) for j in step.ins] if step.multi
                    else self._slot_shape(step.ins[0]))
        raise KeyError(i)

    def check_input_shape(self, input_shape):
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
        shapes = [t.shape for t in self.outputs]
        return shapes if self._multi_out else shapes[0]

    # -- weights -------------------------------------------------------------------------
    def _unique_layers(self):
        return [la for la in self.layers if not isinstance(la, InputLayer)]

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        for layer in getattr(self, "_layers", []):
            layer.trainable = value

    @property
    def weights(self):
        return [w for la in self._unique_layers() for w in la.weights]

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [w for la in self._unique_layers() for w in la.trainable_weights]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for la in self._unique_layers() for w in la.non_trainable_weights]

    def get_weights(self):
        """All weights as NumPy arrays, layer by layer in Keras's order and shapes."""
        return [w for la in self._unique_layers() for w in la.get_weights()]

    def set_weights(self, weights):
        """Set all weights from a list like ``get_weights()``; checks every shape first."""
        weights = list(weights)
        expected = sum(len(la.weights) for la in self._unique_layers())
        if len(weights) != expected:
            raise ValueError(f"{self.name}: set_weights expects {expected} arrays, "
                             f"got {len(weights)}")
        backup = self.get_weights()
        i = 0
        try:
            for la in self._unique_layers():
                n = len(la.weights)
                la.set_weights(weights[i:i + n])
                i += n
        except ValueError:
            self._restore(backup)
            raise

    def _restore(self, weights):
        i = 0
        for la in self._unique_layers():
            n = len(la.weights)
            la.set_weights(weights[i:i + n])
            i += n

    def count_params(self):
        return sum(la.count_params() for la in self._unique_layers())

    def macs(self, input_shape=None):
        """Multiply-adds per sample of one forward pass, summed over the graph's nodes."""
        self._require_graph("macs")
        total = 0
        for step in self._graph:
            shapes = [self._slot_shape(i) for i in step.ins]
            total += step.layer.macs(shapes if step.multi else shapes[0])
        return total

    def trainable_pairs(self):
        """``(layer, weight name)`` for every trainable weight, each shared layer once."""
        if not self.trainable:
            return []
        pairs = []
        for la in self._unique_layers():
            if isinstance(la, Model):
                pairs.extend(la.trainable_pairs())
            elif la.trainable:
                pairs.extend((la, k) for k in la._trainable_names)
        return pairs

    def zero_grads(self):
        for la in self._unique_layers():
            la.zero_grads()

    # -- computation ---------------------------------------------------------------------
    def forward(self, x, training=False, fused=False):
        """``(outputs, ctx)``. With ``fused``, heads marked by ``compile`` return logits.

        ``ctx`` also carries the sum of the layers' activity penalties (see
        :meth:`activity_penalty`), so the loss can include it without any host sync.
        """
        vals = [None] * self._n_slots
        xs = x if self._multi_in else [x]
        vals[:len(xs)] = xs
        ctxs, penalty, act = [], 0.0, None
        for k, step in enumerate(self._graph):
            xin = [vals[i] for i in step.ins] if step.multi else vals[step.ins[0]]
            if fused and step.fused:
                y, inner = step.layer.forward_z(xin, training)
                ctx = (inner, None)
            else:
                y, ctx = step.layer.forward(xin, training)
                if step.nested:
                    penalty = penalty + ctx[2]
            reg = step.layer.activity_regularizer
            if reg is not None:
                penalty = penalty + reg(y)
                act = act or {}
                act[k] = (reg, y)
            vals[step.out] = y
            ctxs.append(ctx)
        outs = [vals[i] for i in self._output_slots]
        return (outs if self._multi_out else outs[0]), (ctxs, fused, penalty, act)

    @staticmethod
    def activity_penalty(ctx):
        """The activity-regularisation penalty of the forward pass that returned ``ctx``
        (0.0 when no layer has an activity regularizer)."""
        return ctx[2]

    def backward(self, ctx, dy, need_dx=True):
        """Gradients into every layer's ``grads``; returns ``dL/dinputs``."""
        ctxs, fused, _, act = ctx
        grads = [None] * self._n_slots
        for i, d in zip(self._output_slots, dy if self._multi_out else [dy]):
            if d is not None:
                grads[i] = d if grads[i] is None else grads[i] + d
        last = len(ctxs) - 1
        ready = getattr(self, "_grad_ready", None)  # distributed: starts bucket all-reduces
        for k, (step, c) in enumerate(zip(reversed(self._graph), reversed(ctxs))):
            if ready is not None:  # distributed: k reverse steps are done
                ready(k)
            d = grads[step.out]
            if act is not None and last - k in act:
                reg, y = act[last - k]
                d = reg.grad(y) if d is None else d + reg.grad(y)
            if d is None:
                continue
            grads[step.out] = None
            if fused and step.fused:
                dx = step.layer.backward_z(c[0], d, need_dx or not step.data_only)
            elif step.data_only and not need_dx:
                step.layer.backward_params(c, d)
                continue
            else:
                dx = step.layer.backward(c, d)
            for i, di in zip(step.ins, dx if step.multi else [dx]):
                if di is not None:
                    grads[i] = di if grads[i] is None else grads[i] + di
        if ready is not None:  # distributed: the whole backward pass is done
            ready(len(ctxs))
        dxs = grads[:len(self.inputs)]
        return dxs if self._multi_in else dxs[0]

    def backward_params(self, ctx, dy):
        self.backward(ctx, dy, need_dx=False)

    def get_rng_state(self):
        """The random states of the leaf layers, in order (None where a layer has none)."""
        return [la.get_rng_state() for la in self._leaf_layers()]

    def set_rng_state(self, state):
        if state is not None:
            for la, s in zip(self._leaf_layers(), state):
                la.set_rng_state(s)

    def __call__(self, inputs, training=False):
        if self._graph is None:
            self._build_from_data(inputs)
        return Layer.__call__(self, inputs, training)

    def _build_from_data(self, inputs):
        self._require_graph("a call")

    def _ensure_graph(self, input_shape=None):
        self._require_graph("this")

    # -- description ---------------------------------------------------------------------
    def summary(self, print_fn=print, line_length=80):
        """Print each layer's output shape and parameter count, then the totals."""
        self._require_graph("summary")
        cols = (int(line_length * 0.45), int(line_length * 0.33))
        lines = [f'Model: "{self.name}"', "=" * line_length,
                 f"{'Layer (type)':<{cols[0]}}{'Output Shape':<{cols[1]}}Param #",
                 "=" * line_length]
        for layer in self.layers:
            if isinstance(layer, InputLayer) and isinstance(self, Sequential):
                continue
            shape = layer.output_shape if not isinstance(layer, InputLayer) else \
                layer.output.shape
            label = f"{layer.name} ({type(layer).__name__})"
            lines.append(f"{label:<{cols[0]}}{str(shape):<{cols[1]}}{layer.count_params():,}")
        trainable = sum(_size(w.shape) for w in self.trainable_weights)
        total = self.count_params()
        lines += ["=" * line_length, f"Total params: {total:,}",
                  f"Trainable params: {trainable:,}",
                  f"Non-trainable params: {total - trainable:,}", "_" * line_length]
        print_fn("\n".join(lines))

    # -- configuration and saving ----------------------------------------------------------
    def get_config(self):
        """The graph as Keras writes it: each layer's config with its inbound nodes, as
        ``[layer name, node index, tensor index]`` triples, and the model's inputs and
        outputs; :meth:`from_config` rebuilds it."""
        self._require_graph("get_config")
        from xpnet import saving

        return saving.functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None, backend=None):
        """Rebuild a functional model from :meth:`get_config` (layer classes by name from
        ``xpnet.layers``, or from ``custom_objects``), on ``backend``."""
        from xpnet import saving

        inputs, outputs = saving.functional_graph(config, custom_objects, backend)
        return cls(inputs, outputs, name=config.get("name"), backend=backend,
                   trainable=config.get("trainable", True))

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
            raise ValueError(f"{self.name}: {what} needs the input shape; give the first "
                             "layer input_shape=..., start with keras.Input(shape=...), "
                             "or call fit/predict first")


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


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

    def _unique_layers(self):
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
        self._ensure_graph(tuple(inputs.shape))

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
