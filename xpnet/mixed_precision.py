"""Mixed precision as Keras 3: dtype policies and dynamic loss scaling.

A policy names a layer's variable dtype (its weights, updated by the optimizer) and its
compute dtype (its inputs, outputs and arithmetic). ``"mixed_float16"`` and
``"mixed_bfloat16"`` keep float32 weights and compute in 16 bits;
``set_global_policy(...)`` sets the policy of the layers created afterwards, as
``keras.mixed_precision.set_global_policy`` does.

How the engine honours it, in one place (:func:`compute_weights`): around each training,
test or prediction step, every layer whose compute dtype differs from its variable dtype
gets compute-dtype copies of its weights (and, when training, compute-dtype gradient
buffers, added into the float32 gradients afterwards). Layers read ``self.params`` as
always, so no layer knows about policies; the model's inputs arrive in the first layers'
compute dtype (``keras.Input`` takes the policy's compute dtype), and losses are computed
in float32 (:func:`loss_value_and_grad`), the loss gradient cast back, as Keras computes
losses in float32.

In float16 small gradients underflow to zero: :class:`LossScaleOptimizer` multiplies the
loss (and so every gradient) by a scale before the backward pass and divides the gradients
by it before the update. When a step's gradients overflow (an inf or NaN) the step is
skipped and the scale halved; after ``dynamic_growth_steps`` finite steps in a row it is
doubled (Keras 3's defaults: ``initial_scale=2**15``, ``dynamic_growth_steps=2000``).
``compile`` wraps the optimizer in one under ``"mixed_float16"``, as Keras does.
"""

import contextlib
import math

from xpnet import optimizers
from xpnet.backend import namespace

__all__ = ["DTypePolicy", "Policy", "set_global_policy", "global_policy", "get",
           "compute_weights", "loss_value_and_grad", "LossScaleOptimizer"]

_MIXED = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


class DTypePolicy:
    """A layer's dtypes: ``variable_dtype`` for its weights, ``compute_dtype`` for its
    arithmetic. ``name`` is a dtype (``"float32"``: both the same) or ``"mixed_float16"`` /
    ``"mixed_bfloat16"`` (float32 variables, 16-bit compute)."""

    def __init__(self, name=None):
        name = global_policy().name if name is None else name
        if not isinstance(name, str) or not name:
            raise ValueError(f"DTypePolicy: name must be a dtype or 'mixed_float16' / "
                             f"'mixed_bfloat16'. Received: name={name!r}")
        self.name = name.rsplit(".", 1)[-1]
        self.compute_dtype = _MIXED.get(self.name, self.name)
        self.variable_dtype = "float32" if self.name in _MIXED else self.name

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'

    def __eq__(self, other):
        return isinstance(other, DTypePolicy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


Policy = DTypePolicy  # Keras 2's name, still exported by keras.mixed_precision
_GLOBAL = [None]


def global_policy():
    """The policy of layers created without a ``dtype`` (``"float32"`` unless set)."""
    return _GLOBAL[0] or DTypePolicy("float32")


def set_global_policy(policy):
    """Set the policy of the layers created afterwards: a name (``"mixed_float16"``,
    ``"mixed_bfloat16"``, ``"float32"``, ...), a :class:`DTypePolicy`, or None (float32)."""
    _GLOBAL[0] = None if policy is None else get(policy)


def get(dtype):
    """The :class:`DTypePolicy` for a layer's ``dtype`` argument: None (the global policy),
    a name, a policy, or a dtype object (``np.float16``)."""
    if dtype is None:
        return global_policy()
    if isinstance(dtype, DTypePolicy):
        return dtype
    if isinstance(dtype, dict) and "name" in dtype.get("config", {}):  # Keras's serialized
        return DTypePolicy(dtype["config"]["name"])
    name = getattr(dtype, "__name__", None) or str(dtype)
    return DTypePolicy(name)


# -- the engine's side -----------------------------------------------------------------------
def _mixed_layers(model):
    """The leaf layers whose compute dtype differs from their variable dtype (cached per
    graph: looked up once, not every step)."""
    key = id(getattr(model, "_graph", None))
    cached = getattr(model, "_mixed_cache", None)
    if cached is None or cached[0] != key:
        cached = (key, [la for la in model._all_layers()
                        if getattr(la, "dtype_policy", None) is not None and
                        la.dtype_policy.compute_dtype != la.dtype_policy.variable_dtype])
        model._mixed_cache = cached
    return cached[1]


_NOTHING = contextlib.nullcontext()


def compute_weights(model, grads=False):
    """A context in which every mixed-precision layer of ``model`` reads compute-dtype
    copies of its weights (and, with ``grads``, adds into compute-dtype gradient buffers
    that are added into its own gradients at the end). Weights a layer rewrites meanwhile
    (BatchNormalization's moving statistics) are written back in the variable dtype.
    A model with no mixed layer gets a shared empty context (under 1 us a step)."""
    layers = _mixed_layers(model) if model.backend is not None else []
    return _swapped(layers, grads) if layers else _NOTHING


@contextlib.contextmanager
def _swapped(layers, grads):
    saved = []
    for la in layers:
        xp, dt = la.backend.xp, la.backend.dtype(la.dtype_policy.compute_dtype)
        saved.append((la, la.params, la.grads))
        la.params = {k: xp.astype(v, dt) for k, v in la.params.items()}
        if grads:
            la.grads = {k: xp.zeros(tuple(g.shape), dtype=dt, device=la.backend.device)
                        for k, g in la.grads.items()}
    try:
        yield
    finally:
        for la, params, own in saved:
            xp = la.backend.xp
            if grads:
                for k, g in la.grads.items():
                    own[k] += xp.astype(g, own[k].dtype)
            for k, v in params.items():
                if k not in la._trainable_names:
                    v[...] = xp.astype(la.params[k], v.dtype)
            la.params, la.grads = params, own


def loss_value_and_grad(loss, y_true, y_pred, sample_weight=None):
    """``loss.value_and_grad`` computed in float32 when ``y_pred`` is 16-bit (as Keras
    computes losses), the gradient cast back to ``y_pred``'s dtype."""
    if getattr(y_pred.dtype, "itemsize", 4) >= 4:  # not float16/bfloat16 (cheap to ask)
        return loss.value_and_grad(y_true, y_pred, sample_weight)
    xp = namespace(y_pred)
    value, dy = loss.value_and_grad(y_true, xp.astype(y_pred, xp.float32), sample_weight)
    return value, xp.astype(dy, y_pred.dtype)


def wrap_optimizer(model, optimizer):
    """Keras's ``compile``: under ``"mixed_float16"`` the optimizer scales the loss."""
    policy = getattr(model, "dtype_policy", None) or global_policy()
    if policy.name == "mixed_float16" and \
            not isinstance(optimizer, LossScaleOptimizer):
        return LossScaleOptimizer(optimizer)
    return optimizer


class LossScaleOptimizer(optimizers.Optimizer):
    """An optimizer that scales the loss dynamically, wrapping ``inner_optimizer``.

    Parameters
    ----------
    inner_optimizer : Optimizer or str
        The optimizer that applies the unscaled gradients.
    initial_scale : float, default=2**15
    dynamic_growth_steps : int, default=2000
        Finite steps in a row after which the scale doubles.

    Each step reads one flag back to the host (whether every gradient is finite), as
    Keras's eager backends do.
    """

    def __init__(self, inner_optimizer, initial_scale=2.0**15, dynamic_growth_steps=2000,
                 name=None, **kwargs):
        if kwargs:
            raise TypeError(f"LossScaleOptimizer: unexpected argument(s) {sorted(kwargs)}")
        inner = optimizers.get(inner_optimizer)
        if isinstance(inner, LossScaleOptimizer):
            raise ValueError("LossScaleOptimizer: the inner optimizer scales the loss already")
        if not (isinstance(initial_scale, (int, float)) and math.isfinite(initial_scale)
                and initial_scale > 0):
            raise ValueError(f"LossScaleOptimizer: initial_scale must be a finite number > 0. "
                             f"Received: initial_scale={initial_scale!r}")
        if isinstance(dynamic_growth_steps, bool) or not isinstance(dynamic_growth_steps, int) \
                or dynamic_growth_steps < 1:
            raise ValueError(f"LossScaleOptimizer: dynamic_growth_steps must be a positive "
                             f"int. Received: dynamic_growth_steps={dynamic_growth_steps!r}")
        self.inner_optimizer = inner
        self.initial_scale, self.dynamic_growth_steps = float(initial_scale), \
            dynamic_growth_steps
        self.dynamic_scale, self.step_counter = float(initial_scale), 0
        self.name = name or "loss_scale_optimizer"

    # -- the scaling -------------------------------------------------------------------
    def scale_loss(self, loss):
        """``loss * scale`` (also applied to the loss's gradient by the training step)."""
        return loss * self.dynamic_scale

    def check_model(self, model):
        for layer in model._all_layers():
            if getattr(layer, "activity_regularizer", None) is not None:
                raise NotImplementedError(
                    f"LossScaleOptimizer: layer {layer.name!r} has an activity regularizer, "
                    "whose gradient the engine adds unscaled; remove it or use the inner "
                    "optimizer alone")

    def check_step(self, ctx):
        if not isinstance(getattr(ctx, "penalty", 0.0), float):
            raise NotImplementedError(
                "LossScaleOptimizer: the model added losses (add_loss() in call(), or an "
                "activity regularizer), whose gradients the engine adds unscaled; train "
                "with the inner optimizer alone")

    def apply_gradients(self, grads_and_vars):
        """Unscale, then apply with the inner optimizer if every gradient is finite; else
        skip the step and halve the scale."""
        pairs = [(g, p) for g, p in grads_and_vars if g is not None]
        if not pairs:
            return
        xp = namespace(pairs[0][0])
        finite = all(bool(xp.all(xp.isfinite(g))) for g, _ in pairs)
        if not finite:
            self.dynamic_scale /= 2.0
            self.step_counter = 0
            return
        inverse = 1.0 / self.dynamic_scale
        self.inner_optimizer.apply_gradients([(g * inverse, p) for g, p in pairs])
        self.step_counter += 1
        if self.step_counter >= self.dynamic_growth_steps:
            self.dynamic_scale *= 2.0
            self.step_counter = 0

    # -- everything else is the inner optimizer's ---------------------------------------
    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value):
        self.inner_optimizer.iterations = value

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        self.inner_optimizer.learning_rate = value

    @property
    def _learning_rate(self):
        return self.inner_optimizer._learning_rate

    @property
    def per_variable(self):
        return self.inner_optimizer.per_variable

    def name_variables(self, named):
        self.inner_optimizer.name_variables(named)

    def build_slots(self, param):
        return self.inner_optimizer.build_slots(param)

    def get_slots(self, param):
        return self.inner_optimizer.get_slots(param)

    def set_slots(self, param, slots):
        self.inner_optimizer.set_slots(param, slots)

    def variables(self):
        return self.inner_optimizer.variables()

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        self.inner_optimizer.exclude_from_weight_decay(var_list, var_names)

    def get_config(self):
        return {"name": self.name,
                "inner_optimizer": {"class_name": type(self.inner_optimizer).__name__,
                                    "config": self.inner_optimizer.get_config()},
                "initial_scale": self.initial_scale,
                "dynamic_growth_steps": self.dynamic_growth_steps}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = config.pop("inner_optimizer")
        inner_cls = (custom_objects or {}).get(inner.get("class_name")) or \
            optimizers._BY_NAME.get(str(inner.get("class_name", "")).lower())
        if inner_cls is None:
            raise ValueError(f"LossScaleOptimizer: unknown inner optimizer "
                             f"{inner.get('class_name')!r}; pass it in custom_objects")
        return cls(inner_cls.from_config(inner.get("config", {}), custom_objects), **config)


optimizers._BY_NAME.setdefault("lossscaleoptimizer", LossScaleOptimizer)
