"""The layer contract: ``forward(x) -> (y, ctx)`` and ``backward(ctx, dy) -> dx``, or
``call()`` over ``keras.ops``.

A built-in layer keeps its weights in ``params`` and the gradients of its trainable weights
in ``grads``, both dicts keyed by Keras's weight names. ``forward`` hands ``backward`` what
it needs in ``ctx`` instead of keeping it on the layer, so one layer can be called several
times in a graph; ``backward`` adds into ``grads`` (a shared layer sums its gradients) and
returns the gradient with respect to its input.

A layer written as Keras writes one (``build`` + ``call`` over ``keras.ops``) needs no
backward: its ``forward`` runs ``call`` under a tape and its ``backward`` walks that tape
(:mod:`xpnet.engine.tape`), whose built-in layers each record ONE step whose VJP is their
own ``backward``. Layers assigned as attributes (alone, in lists, in dicts) are tracked:
weights, gradients, regularizers, trainable flags, random state and saving see them.
"""

import functools
import re

from xpnet import activations
from xpnet import initializers
from xpnet import kernels
from xpnet import mixed_precision
from xpnet import regularizers
from xpnet.backend import get_backend
from xpnet.engine import calls
from xpnet.engine.node import KerasTensor
from xpnet.engine.node import Node
from xpnet.engine.variables import Variable

__all__ = ["Layer", "ActivatedLayer", "KerasTensor", "Node", "InputGrads"]

_NAME_COUNTS = {}


def unique_name(base):
    """Keras's naming: ``dense``, ``dense_1``, ``dense_2``, ... per base name."""
    n = _NAME_COUNTS.get(base, 0)
    _NAME_COUNTS[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name):
    """Keras's snake case: ``BatchNormalization`` -> ``batch_normalization``, ``Conv2D`` ->
    ``conv2d``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class InputGrads:
    """What ``backward`` returns when keyword tensors need gradients too: ``args`` is the
    gradient of the positional input(s), as ``backward`` would return it alone, and
    ``kwargs`` maps keyword-argument names (``"key"``, ``"initial_state"``) to theirs."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args, kwargs):
        self.args, self.kwargs = args, dict(kwargs)


# Attributes the tracking walk never looks into: the engine's own bookkeeping.
_UNTRACKED = frozenset({"params", "grads", "regularizers", "_trainable_names", "_variables",
                        "_inbound_nodes", "_added_losses", "backend", "_rng", "_parent",
                        "_sub_cache", "_all_cache", "_init_args", "history", "optimizer",
                        "_flat", "_step_logs", "_x_tree", "_y_tree", "_metrics",
                        "_losses", "_train_losses", "_heads", "_output_loss_trackers",
                        "_loss_tracker", "_frozen", "_regularized", "_graph", "_layers",
                        "_compiled_graph",
                        "_train_pairs"})  # gen: the weights a model captured to train


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, default=None
        Unique name; defaults to the snake-case class name with a counter (``dense_1``).
    dtype : str, default="float32"
        Dtype of the weights and of the computation.
    trainable : bool, default=True
    input_shape : tuple, default=None
        Shape of one sample, for the first layer of a ``Sequential`` (as Keras).
    activity_regularizer : str or Regularizer, default=None
        A penalty on the layer's output, ``activity_regularizer(y)`` (not divided by the
        batch size, as Keras 3), which a model adds to its loss and whose gradient it adds
        to the gradient flowing into this layer's ``backward``.
    """

    #: Whether an incoming Keras mask passes through this layer unchanged.
    supports_masking = False

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj._init_args = (args, kwargs)  # for the automatic config of users' layers
        return obj

    def __init_subclass__(cls, **kwargs):
        """A ``build`` a subclass defines marks the layer built when it returns, so an
        owner may build a sublayer by calling its ``build`` (as Keras allows)."""
        super().__init_subclass__(**kwargs)
        build = cls.__dict__.get("build")
        if build is not None and not getattr(build, "_marks_built", False):
            cls.build = _marking_built(build)

    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None,
                 input_dim=None, batch_size=None, activity_regularizer=None, autocast=True,
                 **kwargs):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}"
            )
        self.name = name or unique_name(_snake(type(self).__name__))
        # a Keras dtype policy (mixed precision): weights in its variable dtype
        self.dtype_policy = mixed_precision.get(dtype)
        self.dtype = _dtype_name(self.dtype_policy.variable_dtype)
        self._dtype_given = dtype is not None  # else: a sublayer takes its owner's dtype
        self._trainable = bool(trainable)
        self.params, self.grads, self.regularizers = {}, {}, {}
        self._trainable_names = []
        self._variables = {}
        self._inbound_nodes = []
        self._added_losses = []
        self.built = False
        self.backend = None
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.input_shape = self.output_shape = None
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._rng = None  # a layer that draws random numbers keeps its generator here

    # -- tracking ------------------------------------------------------------------------
    def __setattr__(self, name, value):
        # Lists and dicts assigned to a layer are tracked (as Keras wraps them): appending a
        # layer to one later is seen. Any change that may add or drop a sublayer moves the
        # global generation on, which invalidates every cached walk.
        if name not in _UNTRACKED and isinstance(value, (Layer, list, tuple, dict)):
            if type(value) is list:
                value = _TrackedList(value)
            elif type(value) is dict:
                value = _TrackedDict(value)
            _GENERATION[0] += 1
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        _GENERATION[0] += 1
        object.__delattr__(self, name)

    def _sublayers(self):
        """The layers this one holds as attributes (alone, in lists or tuples, in dicts),
        in the order they were assigned, each once."""
        cache = self.__dict__.get("_sub_cache")
        if cache is not None and cache[0] == _GENERATION[0]:
            return cache[1]
        out, seen = [], set()
        for key, value in vars(self).items():
            if key not in _UNTRACKED and isinstance(value, (Layer, list, tuple, dict)):
                _collect(value, out, seen, self)
        self.__dict__["_sub_cache"] = (_GENERATION[0], out)
        return out

    def _all_layers(self):
        """This layer and every layer it holds, at any depth, each once (pre-order)."""
        cache = self.__dict__.get("_all_cache")
        if cache is not None and cache[0] == _GENERATION[0]:
            return cache[1]
        out, seen = [], set()
        stack = [self]
        while stack:
            la = stack.pop()
            if id(la) in seen:
                continue
            seen.add(id(la))
            out.append(la)
            stack.extend(reversed(la._sublayers()))
        self.__dict__["_all_cache"] = (_GENERATION[0], out)
        return out

    @property
    def layers(self):
        return self._sublayers()

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        """Freeze or unfreeze this layer and every layer it holds (as Keras 3)."""
        self._trainable = bool(value)
        for la in self._sublayers():
            la.trainable = value

    # -- weights -----------------------------------------------------------------------
    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, **kwargs):
        """Create a weight on the layer's backend, as Keras 3's ``add_weight``, and return
        its :class:`~xpnet.engine.variables.Variable`. A trainable weight gets a zero
        gradient in ``grads[name]``.

        ``initializer`` defaults to ``"glorot_uniform"`` (Keras's default for floats). A
        ``regularizer`` adds its penalty to the model's loss and its gradient to this
        weight's gradient. xpnet's earlier spelling ``add_weight(name, shape, initializer)``
        (the name first) is accepted too.
        """
        if isinstance(shape, str):  # add_weight("kernel", (3, 4), init): the name first
            name, shape, initializer, dtype = shape, initializer, dtype, None
        unknown = set(kwargs) - {"autocast", "aggregation", "overwrite_with_gradient"}
        if unknown:
            raise TypeError(f"{self.name}: add_weight got unexpected argument(s) "
                            f"{sorted(unknown)}")
        if shape is None:
            raise ValueError(f"{self.name}: add_weight needs a shape, e.g. shape=(3, 4)")
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        name = name if name is not None else f"variable_{len(self.params)}"
        if name in self.params:
            raise ValueError(f"{self.name}: a weight named {name!r} exists already")
        if constraint is not None:
            raise NotImplementedError(f"{self.name}: weight constraints are not supported yet")
        if self.backend is None:
            self.backend = calls.current_backend()
        backend = self.backend
        xp = backend.xp
        dt = getattr(xp, _dtype_name(dtype or self.dtype))
        # robust (#11): a weight whose value a file supplies skips its initializer
        value = initializers.initial_value(initializer or "glorot_uniform", shape, dt, backend)
        self.params[name] = xp.asarray(value, dtype=dt, copy=True)
        if trainable:
            self._trainable_names.append(name)
            self.grads[name] = xp.zeros(shape, dtype=dt, device=backend.device)
        regularizer = regularizers.get(regularizer)
        if regularizer is not None:
            self.regularizers[name] = regularizer
        return self._variable(name)

    def _variable(self, name):
        var = self._variables.get(name)
        if var is None:
            var = self._variables[name] = Variable(layer=self, name=name)
        return var

    def set_weight_trainable(self, name, value):
        """Make the weight ``name`` trainable (with a zero gradient) or not."""
        if value and name not in self._trainable_names:
            self._trainable_names.append(name)
            p = self.params[name]
            self.grads[name] = self.backend.xp.zeros(p.shape, dtype=p.dtype,
                                                     device=self.backend.device)
        elif not value and name in self._trainable_names:
            self._trainable_names.remove(name)
            self.grads.pop(name, None)

    def weight_names(self):
        """This layer's own weights: trainable then non-trainable, in creation order."""
        return list(self._trainable_names) + [
            k for k in self.params if k not in self._trainable_names
        ]

    @property
    def weights(self):
        """Every weight, own ones first then each held layer's, as Keras 3 orders them."""
        out, seen = [], set()
        for la in self._weight_order():
            for name in la.weight_names():
                var = la._variable(name)
                if id(var) not in seen:
                    seen.add(id(var))
                    out.append(var)
        return out

    def _weight_order(self):
        """The layers whose own weights ``weights`` lists, in order."""
        out, seen = [], set()

        def visit(la):
            if id(la) in seen:
                return
            seen.add(id(la))
            out.append(la)
            for sub in la._sublayers():
                visit(sub)
        visit(self)
        return out

    variables = weights

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [v for v in self.weights if v.trainable]

    trainable_variables = trainable_weights

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [v for v in self.weights if not v.trainable]

    non_trainable_variables = non_trainable_weights

    def trainable_pairs(self):
        """``(layer, weight name)`` of every trainable weight, each once."""
        return [(v.layer, v.name) for v in self.trainable_weights]

    def get_weights(self):
        """Copies of the weights as NumPy arrays, in Keras's order and shapes (copies: on
        the CPU a NumPy view would change as training goes on, as Keras's copies do not)."""
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` (NumPy or device arrays, in ``get_weights`` order) into the
        layer, in place; every shape is checked before anything is written."""
        variables = self.weights
        weights = list(weights)
        if len(weights) != len(variables):
            names = [v.path for v in variables]
            raise ValueError(f"{self.name}: set_weights expects {len(variables)} arrays "
                             f"({', '.join(names)}), got {len(weights)}")
        new = []
        for var, w in zip(variables, weights):
            backend = var.layer.backend
            w = backend.asarray(w)
            if tuple(w.shape) != var.shape:
                raise ValueError(f"{self.name}: weight {var.path!r} has shape {var.shape}, "
                                 f"got {tuple(w.shape)}")
            new.append(backend.xp.astype(w, var.dtype))
        for var, w in zip(variables, new):  # all checked first: nothing half-written
            var.value[...] = w

    def count_params(self):
        return sum(v.size for v in self.weights)

    def macs(self, input_shape):
        """Multiply-adds per sample of the forward pass, roughly: one per weight (exact for
        Dense); layers that reuse weights across positions (convolutions) say more."""
        return self.count_params()

    def zero_grads(self):
        for la in self._all_layers():
            for g in la.grads.values():
                g[...] = 0.0

    # -- building ------------------------------------------------------------------------
    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (batch axis first, may be None)."""

    def build_on(self, backend, input_shape):
        """Build on ``backend`` once; later calls check that the shape still fits."""
        backend = get_backend(backend)
        if self.built:
            if self.backend is not backend:
                if not getattr(self, "_movable", False):
                    raise ValueError(
                        f"{self.name}: built on backend {self.backend.name!r}, "
                        f"now used on {backend.name!r}")
                calls.move_to_backend(self, backend)
            self.check_input_shape(input_shape)
            return
        self.backend = backend
        self.check_input_shape(input_shape)
        calls.run_build(self, input_shape)
        self.input_shape = input_shape
        self.built = True  # before the output shape: a call() layer runs to find it
        if type(self).compute_output_shape is not Layer.compute_output_shape or \
                not calls.is_call_based(self):
            try:
                self.output_shape = self.compute_output_shape(input_shape)
            except NotImplementedError:  # a call() layer without a shape rule
                self.output_shape = None
        self.built = True
        self.built = True

    def check_input_shape(self, input_shape):
        """Raise a ValueError naming the layer if ``input_shape`` does not fit its weights."""

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape``: identity for a built-in layer; a layer written
        with ``call`` is run on zeros of that shape (as Keras traces it)."""
        if calls.is_call_based(self):
            return calls.probe_output_shape(self, input_shape)
        return input_shape

    def compute_mask(self, inputs, mask=None):
        """The mask of the output: the incoming one where the layer supports masking."""
        return mask if self.supports_masking else None

    # -- random state ------------------------------------------------------------------
    def get_rng_state(self):
        """The state of the layer's random generator (dropout, noise), or None: saved with
        the model so that a resumed run draws the same masks as an uninterrupted one. A
        layer holding ``keras.random.SeedGenerator`` attributes (a VAE's ``Sampling``)
        gives ``{"rng": ..., "seed_generators": {attribute: state}}``."""
        own = None if self._rng is None else self._rng.get_state()
        seeds = {}
        for k, gen in self._seed_generators():  # SeedGenerators held as attributes too
            if gen._rng is None and self.backend is not None:
                gen._rng = self.backend.rng(gen._seed)
            if gen._rng is not None:
                seeds[k] = gen._rng.get_state()
        return {"rng": own, "seed_generators": seeds} if seeds else own

    def set_rng_state(self, state):
        """Continue the layer's random stream from a :meth:`get_rng_state` snapshot."""
        if isinstance(state, dict) and "seed_generators" in state:
            for k, gen in self._seed_generators():
                if k in state["seed_generators"]:
                    if self.backend is not None and (gen._rng is None or
                                                     gen._rng.backend is not self.backend):
                        gen._rng = self.backend.rng(gen._seed)
                    gen._rng.set_state(state["seed_generators"][k]) if gen._rng is not None \
                        else gen.set_state(state["seed_generators"][k])
            state = state["rng"]
        if self._rng is not None and state is not None:
            self._rng.set_state(state)

    def _seed_generators(self):
        from xpnet.random import SeedGenerator

        return [(k, v) for k, v in vars(self).items() if isinstance(v, SeedGenerator)]

    # -- losses --------------------------------------------------------------------------
    def add_loss(self, loss):
        """Add ``loss`` (a scalar computed with ``keras.ops`` in ``call``) to the training
        loss; its gradient flows back through what it was computed from."""
        if not calls.probing():
            self._added_losses.append(loss)

    @property
    def losses(self):
        """The losses added by the last call (this layer's and its sublayers'), then the
        weight regularizers' penalties, as Keras 3 lists them."""
        out = [loss for la in self._all_layers() for loss in la._added_losses]
        for var in self.trainable_weights:
            reg = var.regularizer
            if reg is not None:
                out.append(calls.regularizer_penalty(reg, var))
        return out

    # -- computation -------------------------------------------------------------------
    def call(self, *args, **kwargs):
        """The computation, written with ``keras.ops`` (Keras's way); built-in layers write
        ``forward``/``backward`` instead."""
        raise NotImplementedError(
            f"{type(self).__name__} ({self.name}) has neither call() nor forward(): write "
            "call(self, inputs) with keras.ops (the gradient comes from the tape), or "
            "forward(x, training) -> (y, ctx) with backward(ctx, dy) -> dx")

    def forward(self, *args, training=False, **kwargs):
        """``(y, ctx)``: the output, and what backward needs. For a layer written with
        ``call``, its tape."""
        return calls.forward_by_tape(self, args, kwargs, training)

    def backward(self, ctx, dy, need_dx=True):
        """Add parameter gradients into ``grads`` and return ``dL/dx``; for a layer written
        with ``call``, by walking the tape ``forward`` recorded."""
        return calls.backward_by_tape(self, ctx, dy, need_dx)

    def __call__(self, *args, **kwargs):
        """Symbolic on KerasTensors (builds a graph node), eager on arrays (recorded on a
        tape that is recording)."""
        if calls.has_keras_tensor(args, kwargs):
            return calls.call_symbolic(self, args, kwargs)
        return calls.call_eager(self, args, kwargs)

    @property
    def input(self):
        return self._node("input").args[0] if len(self._node("input").args) == 1 else \
            list(self._node("input").args)

    @property
    def output(self):
        return self._node("output").outputs

    def _node(self, what):
        if not self._inbound_nodes:
            raise AttributeError(f"{self.name}: layer.{what} exists once the layer has been "
                                 "called on a symbolic input (keras.Input)")
        if len(self._inbound_nodes) > 1:
            raise AttributeError(f"{self.name}: layer.{what} is ambiguous: the layer was "
                                 f"called {len(self._inbound_nodes)} times")
        return self._inbound_nodes[0]

    # -- configuration -----------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": self.dtype_policy.name}
        if self._input_shape_arg is not None:
            config["input_shape"] = self._input_shape_arg
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        if not type(self).__module__.startswith("xpnet."):  # a user's layer: Keras 3's
            config = {**calls.init_arguments(self), **config}  # automatic config
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


_GENERATION = [0]  # moves on whenever a layer may have gained or lost a sublayer


class _TrackedList(list):
    """A list held by a layer: changing it may change the layer's sublayers."""

    def _changed(self):
        _GENERATION[0] += 1

    def append(self, v):
        self._changed()
        super().append(v)

    def extend(self, vs):
        self._changed()
        super().extend(vs)

    def insert(self, i, v):
        self._changed()
        super().insert(i, v)

    def pop(self, *a):
        self._changed()
        return super().pop(*a)

    def remove(self, v):
        self._changed()
        super().remove(v)

    def clear(self):
        self._changed()
        super().clear()

    def __setitem__(self, i, v):
        self._changed()
        super().__setitem__(i, v)

    def __delitem__(self, i):
        self._changed()
        super().__delitem__(i)

    def __iadd__(self, vs):
        self._changed()
        return super().__iadd__(vs)


class _TrackedDict(dict):
    """A dict held by a layer: changing it may change the layer's sublayers."""

    def __setitem__(self, k, v):
        _GENERATION[0] += 1
        super().__setitem__(k, v)

    def __delitem__(self, k):
        _GENERATION[0] += 1
        super().__delitem__(k)

    def update(self, *a, **kw):
        _GENERATION[0] += 1
        super().update(*a, **kw)

    def pop(self, *a):
        _GENERATION[0] += 1
        return super().pop(*a)

    def setdefault(self, k, v=None):
        _GENERATION[0] += 1
        return super().setdefault(k, v)

    def clear(self):
        _GENERATION[0] += 1
        super().clear()


def _marking_built(build):
    @functools.wraps(build)
    def wrapper(self, *args, **kwargs):
        calls.run_build_body(self, build, args, kwargs)
        self.built = True
    wrapper._marks_built = True
    return wrapper


def _collect(value, out, seen, owner):
    if isinstance(value, Layer):
        if id(value) not in seen and value is not owner:
            seen.add(id(value))
            out.append(value)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect(v, out, seen, owner)
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, out, seen, owner)


class ActivatedLayer(Layer):
    """A layer ending in a fused activation: ``y = f(z)``, ``z`` from ``forward_z``.

    Subclasses implement ``forward_z(x, training) -> (z, inner_ctx)`` and
    ``backward_z(inner_ctx, dz, need_dx=True) -> dx``. The activation's gradient is one call
    of ``kernels.activation_grad`` on the saved output (or input, where it must be). A model
    that trains a softmax output with cross-entropy calls ``forward_z`` / ``backward_z``
    directly and differentiates the loss on the logits in one fused kernel.
    """

    def __init__(self, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.activation, self.alpha = activations.get(activation)

    def forward_z(self, x, training=False):
        raise NotImplementedError

    def backward_z(self, ctx, dz, need_dx=True):
        raise NotImplementedError

    def forward(self, x, training=False):
        z, inner = self.forward_z(x, training)
        if self.activation is None:
            return z, (inner, None, None)
        y = kernels.activation(self.activation, z, self.alpha)
        # a softmax or sigmoid head keeps its logits: a subclassed model's fit trains on them
        logits = z if self.activation in ("softmax", "sigmoid") else None
        return y, (inner, z if kernels.SAVES[self.activation] == "z" else y, logits)

    def backward(self, ctx, dy, need_dx=True):
        dz = kernels.activation_grad(self.activation, dy, ctx[1], self.alpha)
        return self.backward_z(ctx[0], dz, need_dx)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


def _dtype_name(dtype):
    name = str(dtype)
    return name.rsplit(".", 1)[-1] if "." in name else name


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n
