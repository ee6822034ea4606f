"""The layer contract: ``forward(x) -> (y, ctx)`` and ``backward(ctx, dy) -> dx``.

A layer keeps its weights in ``params`` and the gradients of its trainable weights in
``grads``, both dicts keyed by Keras's weight names. ``forward`` hands ``backward`` what it
needs in ``ctx`` instead of keeping it on the layer, so one layer can be called several times
in a graph; ``backward`` adds into ``grads`` (a shared layer sums its gradients) and always
returns the gradient with respect to its input.
"""

import itertools
import re

from xpnet import activations
from xpnet import initializers
from xpnet import kernels
from xpnet import mixed_precision
from xpnet import regularizers
from xpnet.backend import backend_of
from xpnet.backend import get_backend

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


class KerasTensor:
    """A symbolic tensor: the shape (batch axis ``None``) of a value in a functional graph."""

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape, self.dtype, self.node, self.index = tuple(shape), dtype, node, index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class InputGrads:
    """What ``backward`` returns when keyword tensors need gradients too: ``args`` is the
    gradient of the positional input(s), as ``backward`` would return it alone, and
    ``kwargs`` maps keyword-argument names (``"key"``, ``"initial_state"``) to theirs."""

    __slots__ = ("args", "kwargs")

    def __init__(self, args, kwargs):
        self.args, self.kwargs = args, dict(kwargs)


class Node:
    """One call of a layer in a graph: its input tensors and its output tensors."""

    _ids = itertools.count()

    def __init__(self, layer, inputs, outputs):
        self.layer, self.inputs, self.outputs = layer, list(inputs), list(outputs)
        self.id = next(Node._ids)


def _flatten(x):
    if isinstance(x, (list, tuple)):
        return [t for item in x for t in _flatten(item)]
    return [x]


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

    def __init__(self, name=None, dtype=None, trainable=True, input_shape=None,
                 input_dim=None, batch_size=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}: unexpected keyword argument(s) {sorted(kwargs)}"
            )
        self.name = name or unique_name(_snake(type(self).__name__))
        # robust (#11): a Keras dtype policy; weights in its variable dtype
        self.dtype_policy = mixed_precision.get(dtype)
        self.dtype = _dtype_name(self.dtype_policy.variable_dtype)
        self.trainable = trainable
        self.params, self.grads, self.regularizers = {}, {}, {}
        self._trainable_names = []
        self.built = False
        self.backend = None
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        self._input_shape_arg = tuple(input_shape) if input_shape is not None else None
        self.input_shape = self.output_shape = None
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self._rng = None  # a layer that draws random numbers keeps its generator here

    # -- weights -----------------------------------------------------------------------
    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True,
                   regularizer=None, constraint=None, name=None, **kwargs):
        """Create a weight on the layer's backend, as Keras 3's ``add_weight``; a trainable
        one gets a zero gradient in ``grads[name]``.

        ``initializer`` defaults to ``"glorot_uniform"`` for float weights (Keras's default).
        A ``regularizer`` (name or :class:`xpnet.regularizers.Regularizer`) adds its penalty
        to the model's loss and its gradient to this weight's gradient. xpnet's earlier
        spelling ``add_weight(name, shape, initializer)`` (the name first) is accepted too.
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
            self.backend = get_backend(None)
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
        return self.params[name]

    def build(self, input_shape):
        """Create the weights for inputs of ``input_shape`` (batch axis first, may be None)."""

    def build_on(self, backend, input_shape):
        """Build on ``backend`` once; later calls check that the shape still fits."""
        if self.built:
            if self.backend is not backend:
                raise ValueError(
                    f"{self.name}: built on backend {self.backend.name!r}, "
                    f"now used on {backend.name!r}"
                )
            self.check_input_shape(input_shape)
            return
        self.backend = get_backend(backend)
        self.check_input_shape(input_shape)
        self.build(input_shape)
        self.input_shape = input_shape
        self.output_shape = self.compute_output_shape(input_shape)
        self.built = True

    def check_input_shape(self, input_shape):
        """Raise a ValueError naming the layer if ``input_shape`` does not fit its weights."""

    def compute_output_shape(self, input_shape):
        """Output shape for ``input_shape``; identity by default."""
        return input_shape

    @property
    def trainable_weights(self):
        return [self.params[k] for k in self._trainable_names] if self.trainable else []

    @property
    def non_trainable_weights(self):
        names = [k for k in self.params if k not in self._trainable_names or not self.trainable]
        return [self.params[k] for k in names]

    @property
    def weights(self):
        """Trainable then non-trainable weights, each in creation order (as Keras)."""
        trainable = [k for k in self._trainable_names]
        rest = [k for k in self.params if k not in trainable]
        return [self.params[k] for k in trainable + rest]

    def weight_names(self):
        return [k for k in self._trainable_names] + [
            k for k in self.params if k not in self._trainable_names
        ]

    def get_weights(self):
        """Copies of the weights as NumPy arrays, in Keras's order and shapes (copies: on the
        CPU a NumPy view would change as training goes on, as Keras's copies do not)."""
        if not self.built:
            return []
        xp = self.backend.xp
        return [self.backend.to_numpy(xp.asarray(w, copy=True)) for w in self.weights]

    def set_weights(self, weights):
        """Copy ``weights`` (NumPy or device arrays, Keras order) into the layer, in place."""
        names = self.weight_names()
        if len(weights) != len(names):
            raise ValueError(
                f"{self.name}: set_weights expects {len(names)} arrays ({', '.join(names)}), "
                f"got {len(weights)}"
            )
        xp = self.backend.xp
        new = []
        for name, w in zip(names, weights):
            old = self.params[name]
            w = self.backend.asarray(w)
            if tuple(w.shape) != tuple(old.shape):
                raise ValueError(
                    f"{self.name}: weight {name!r} has shape {tuple(old.shape)}, "
                    f"got {tuple(w.shape)}"
                )
            new.append(xp.astype(w, old.dtype))
        for name, w in zip(names, new):  # all checked first: nothing half-written
            self.params[name][...] = w

    def macs(self, input_shape):
        """Multiply-adds per sample of the forward pass, roughly: one per weight (exact for
        Dense); layers that reuse weights across positions (convolutions) say more."""
        return self.count_params()

    def count_params(self):
        return sum(_size(w.shape) for w in self.params.values())

    def zero_grads(self):
        for g in self.grads.values():
            g[...] = 0.0

    # -- random state ------------------------------------------------------------------
    def get_rng_state(self):
        """The state of the layer's random generator (dropout, noise), or None: saved with
        the model so that a resumed run draws the same masks as an uninterrupted one."""
        return None if self._rng is None else self._rng.get_state()

    def set_rng_state(self, state):
        """Continue the layer's random stream from a :meth:`get_rng_state` snapshot."""
        if self._rng is not None and state is not None:
            self._rng.set_state(state)

    # -- computation -------------------------------------------------------------------
    def forward(self, x, training=False):
        """``(y, ctx)``: the output, and what backward needs."""
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, ctx, dy):
        """Add parameter gradients into ``self.grads`` and return ``dL/dx``."""
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def backward_params(self, ctx, dy):
        """Parameter gradients only, for a layer fed by data: skips ``dx`` where it can."""
        self.backward(ctx, dy)

    def __call__(self, inputs, training=False):
        """Symbolic on KerasTensors (builds a graph node), eager on arrays."""
        flat = _flatten(inputs)
        if any(isinstance(t, KerasTensor) for t in flat):
            return self._call_symbolic(inputs)
        shapes = _shapes_of(inputs)
        self.build_on(backend_of(flat[0]), _with_batch_none(shapes))
        return self.forward(inputs, training)[0]

    def _call_symbolic(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if not all(isinstance(t, KerasTensor) for t in inputs):
                raise TypeError(f"{self.name}: mixes symbolic and concrete inputs")
            shape = [t.shape for t in inputs]
        else:
            shape = inputs.shape
        self.check_input_shape(shape)
        out_shape = self.compute_output_shape(shape)
        node = Node(self, _flatten(inputs), [])
        out = KerasTensor(out_shape, self.dtype_policy.compute_dtype, node, 0, name=self.name)
        node.outputs.append(out)
        return out

    # -- configuration -----------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": self.dtype_policy.name}
        if self._input_shape_arg is not None:
            config["input_shape"] = self._input_shape_arg
        if self.activity_regularizer is not None:
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


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
            return z, (inner, None)
        y = kernels.activation(self.activation, z, self.alpha)
        return y, (inner, z if kernels.SAVES[self.activation] == "z" else y)

    def _dz(self, ctx, dy):
        return kernels.activation_grad(self.activation, dy, ctx[1], self.alpha)

    def backward(self, ctx, dy):
        return self.backward_z(ctx[0], self._dz(ctx, dy))

    def backward_params(self, ctx, dy):
        self.backward_z(ctx[0], self._dz(ctx, dy), need_dx=False)

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


def _shapes_of(inputs):
    if isinstance(inputs, (list, tuple)):
        return [tuple(t.shape) for t in inputs]
    return tuple(inputs.shape)


def _with_batch_none(shape):
    if isinstance(shape, list):
        return [_with_batch_none(s) for s in shape]
    return (None,) + tuple(shape[1:])
