"""Optimizers with Keras 3's names, defaults and update rules.

The base class owns the step counter, the learning rate (a float or a schedule called with
the step), gradient clipping and decoupled weight decay; a subclass makes its slots in
``build_slots`` and does one update in ``update_step``, which calls the fused kernel of
``xpnet.kernels`` (one pass per parameter instead of eight or more array operations).

Parameters are arrays updated in place. A model passes one flat buffer per dtype whose
views are its layers' weights (see ``Model.compile``), so a step costs one kernel call
however deep the model is; ``apply_gradients`` also takes any list of (grad, param) pairs.
"""

import re

from xpnet import kernels
from xpnet import schedules
from xpnet.backend import namespace

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "get"]


class Optimizer:
    """Base class.

    Parameters
    ----------
    learning_rate : float or callable, default=0.001
        A float, or a schedule called with the step number (``iterations``).
    weight_decay : float, default=None
        Decoupled weight decay: ``p -= lr * weight_decay * p`` before each update.
    clipnorm : float, default=None
        Clip each gradient to this L2 norm.
    clipvalue : float, default=None
        Clip each gradient elementwise to ``[-clipvalue, clipvalue]``.
    global_clipnorm : float, default=None
        Clip all gradients together to this global L2 norm.
    """

    def __init__(self, learning_rate=0.001, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name=None, **kwargs):
        keras_only = sorted(set(kwargs) & {"use_ema", "ema_momentum", "ema_overwrite_frequency",
                                           "loss_scale_factor", "gradient_accumulation_steps"})
        if keras_only:
            raise NotImplementedError(f"{type(self).__name__}: Keras's {', '.join(keras_only)} "
                                      "is not implemented in xpnet yet")
        if kwargs:
            raise TypeError(f"{type(self).__name__}: unexpected argument(s) {sorted(kwargs)}")
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(f"{type(self).__name__}: set clipnorm or global_clipnorm, not both")
        if not callable(learning_rate) and not learning_rate >= 0:  # 0.0 allowed, as Keras
            raise ValueError(f"{type(self).__name__}: learning_rate must be positive or 0, "
                             f"got {learning_rate!r}")
        self._learning_rate = learning_rate
        self.weight_decay, self.clipnorm = weight_decay, clipnorm
        self.clipvalue, self.global_clipnorm = clipvalue, global_clipnorm
        self.name = name or type(self).__name__.lower()
        self.iterations = 0
        self._slots = {}
        self._no_decay_ids, self._no_decay_pattern, self._var_names = set(), None, {}

    @property
    def learning_rate(self):
        """The learning rate of the next step, a Python float."""
        lr = self._learning_rate
        return float(lr(self.iterations)) if callable(lr) else float(lr)

    @learning_rate.setter
    def learning_rate(self, value):
        self._learning_rate = value

    # True where update_step applies the weight decay itself (one pass over the weights).
    _fused_decay = False

    def build_slots(self, param):
        """The optimizer's state for one parameter (a dict of arrays like it)."""
        return {}

    def update_step(self, grad, param, lr, slots):
        raise NotImplementedError

    def _slots_for(self, param):
        entry = self._slots.get(id(param))
        if entry is None or entry[0] is not param:
            entry = self._slots[id(param)] = (param, self.build_slots(param))
        return entry[1]

    def _clip(self, pairs):
        xp = namespace(pairs[0][1])
        if self.clipvalue is not None:
            c = self.clipvalue
            pairs = [(xp.clip(g, -c, c), p) for g, p in pairs]
        if self.clipnorm is not None:
            pairs = [(_clip_by_norm(g, self.clipnorm, xp), p) for g, p in pairs]
        if self.global_clipnorm is not None:
            norm = xp.sqrt(sum(xp.sum(g * g) for g, _ in pairs))
            scale = xp.minimum(1.0, self.global_clipnorm / xp.maximum(norm, 1e-12))
            pairs = [(g * xp.astype(scale, g.dtype), p) for g, p in pairs]
        return pairs

    def apply(self, grads, trainable_variables):
        """One step over ``grads`` and the variables (Keras 3's spelling)."""
        self.apply_gradients(zip(grads, trainable_variables))

    def apply_gradients(self, grads_and_vars):
        """One step: ``param`` (an array or a Variable) is updated in place for each
        ``(grad, param)`` pair; a None gradient leaves its variable as it is."""
        from xpnet.engine.tape import unwrap

        pairs = [(unwrap(g), unwrap(p)) for g, p in grads_and_vars if g is not None]
        if not pairs:
            return
        if self.clipvalue is not None or self.clipnorm is not None \
                or self.global_clipnorm is not None:
            pairs = self._clip(pairs)
        lr = self.learning_rate
        self.iterations += 1
        if self.weight_decay and not self._fused_decay:
            for _, p in pairs:
                if self._decays(p):
                    p -= (lr * self.weight_decay) * p
        for g, p in pairs:
            self.update_step(g, p, lr, self._slots_for(p))

    def scale_loss(self, loss):
        """The loss (and its gradient) as the training step should differentiate it:
        unchanged here; :class:`xpnet.mixed_precision.LossScaleOptimizer` scales it."""
        return loss

    def check_model(self, model):
        """Refuse, at compile, a model this optimizer cannot train (none here)."""

    def check_step(self, ctx):
        """Refuse a training step this optimizer cannot apply (none here); ``ctx`` is the
        model's forward context."""

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Keep some variables out of the weight decay, as Keras: the arrays in
        ``var_list``, and every weight whose name (``"bias"``, ``"gamma"``) matches one of
        the regular expressions in ``var_names``. Call it before ``compile``/``fit``."""
        from xpnet.engine.tape import unwrap

        self._no_decay_ids |= {id(unwrap(v)) for v in var_list or []}
        names = sorted(set(var_names or []))
        if names:
            self._no_decay_pattern = re.compile("|".join(names))

    @property
    def per_variable(self):
        """Whether updates must see each variable on its own (per-variable clipping or
        decay exclusions), rather than one flat buffer of all of them."""
        return self.clipnorm is not None or bool(self._no_decay_ids) or \
            self._no_decay_pattern is not None

    def name_variables(self, named):
        """Tell the optimizer the weight names of arrays it updates: ``[(array, name)]``."""
        self._var_names.update({id(p): (p, name) for p, name in named})

    def _decays(self, p):
        if id(p) in self._no_decay_ids:
            return False
        if self._no_decay_pattern is None:
            return True
        entry = self._var_names.get(id(p))
        return entry is None or entry[0] is not p or \
            self._no_decay_pattern.search(entry[1]) is None

    def variables(self):
        """The slot arrays, in a stable order (for saving)."""
        return [a for _, slots in self._slots.values() for a in slots.values()]

    def get_slots(self, param):
        """The slot arrays of ``param`` (by slot name), or None before its first update."""
        entry = self._slots.get(id(param))
        return entry[1] if entry is not None and entry[0] is param else None

    def set_slots(self, param, slots):
        """Make ``slots`` (a dict like :meth:`build_slots` gives) the state of ``param``."""
        self._slots[id(param)] = (param, slots)

    def get_config(self):
        """The hyperparameters; a schedule is serialized, a plain function is not (the
        current rate is saved in its place)."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = schedules.serialize(lr)
        elif callable(lr):
            lr = self.learning_rate
        return {"name": self.name, "learning_rate": lr, "weight_decay": self.weight_decay,
                "clipnorm": self.clipnorm, "clipvalue": self.clipvalue,
                "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"],
                                                            custom_objects)
        return cls(**config)


def _clip_by_norm(g, clipnorm, xp):
    norm = xp.sqrt(xp.sum(g * g))
    return g * xp.astype(xp.minimum(1.0, clipnorm / xp.maximum(norm, 1e-12)), g.dtype)


def _zeros_like(p):
    return namespace(p).zeros_like(p)


class SGD(Optimizer):
    """Gradient descent, with momentum and Nesterov momentum as Keras:
    ``v = momentum * v - lr * g``; ``p += v``, or ``p += momentum * v - lr * g`` (Nesterov).

    Defaults: ``learning_rate=0.01, momentum=0.0, nesterov=False``.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def build_slots(self, param):
        return {"momentum": _zeros_like(param)} if self.momentum else {}

    def update_step(self, grad, param, lr, slots):
        kernels.sgd(param, grad, lr=lr, momentum=self.momentum, nesterov=self.nesterov,
                    velocity=slots.get("momentum"))

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam as Keras: ``m += (g - m)(1 - beta_1)``, ``v += (g^2 - v)(1 - beta_2)``,
    ``p -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)``.

    Defaults: ``learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.amsgrad = amsgrad

    def build_slots(self, param):
        slots = {"momentum": _zeros_like(param), "velocity": _zeros_like(param)}
        if self.amsgrad:
            slots["velocity_hat"] = _zeros_like(param)
        return slots

    # The decoupled weight decay happens inside the Adam kernel's pass over the weights.
    _fused_decay = True

    def update_step(self, grad, param, lr, slots):
        decay = lr * self.weight_decay if self.weight_decay and self._decays(param) else 0.0
        kernels.adam(param, grad, slots["momentum"], slots["velocity"], lr=lr,
                     beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                     step=self.iterations, vhat=slots.get("velocity_hat"), decay=decay)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class AdamW(Adam):
    """Adam with decoupled weight decay (default ``weight_decay=0.004``, as Keras)."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


class RMSprop(Optimizer):
    """RMSprop as Keras: ``v = rho v + (1 - rho) g^2``, ``p -= lr g / sqrt(v + epsilon)``;
    centered subtracts the squared mean gradient inside the root; momentum accumulates the
    step. Defaults: ``learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7``.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho, self.momentum, self.epsilon, self.centered = rho, momentum, epsilon, centered

    def build_slots(self, param):
        slots = {"velocity": _zeros_like(param)}
        if self.momentum > 0:
            slots["momentum"] = _zeros_like(param)
        if self.centered:
            slots["average_gradient"] = _zeros_like(param)
        return slots

    def update_step(self, grad, param, lr, slots):
        kernels.rmsprop(param, grad, slots["velocity"], lr=lr, rho=self.rho,
                        epsilon=self.epsilon, momentum_buf=slots.get("momentum"),
                        momentum=self.momentum, mg=slots.get("average_gradient"))

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


class Adagrad(Optimizer):
    """Adagrad as Keras: ``acc += g^2``, ``p -= lr g / sqrt(acc + epsilon)``; the
    accumulator starts at ``initial_accumulator_value`` (0.1).
    Defaults: ``learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7``.
    """

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

    def build_slots(self, param):
        xp = namespace(param)
        return {"accumulator": xp.full_like(param, self.initial_accumulator_value)}

    def update_step(self, grad, param, lr, slots):
        kernels.adagrad(param, grad, slots["accumulator"], lr=lr, epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "initial_accumulator_value": self.initial_accumulator_value}


_BY_NAME = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad}

# Keras's other optimizers (imported last: they build on Optimizer).
from xpnet import optimizers_extra as _extra  # noqa: E402
from xpnet.optimizers_extra import *  # noqa: E402,F401,F403
from xpnet.optimizers_extra import __all__ as _extra_all  # noqa: E402

__all__ += _extra_all
_BY_NAME.update({n.lower(): getattr(_extra, n) for n in _extra_all})


def get(identifier):
    """An optimizer from a name (``"adam"``, ``"sgd"``, case-insensitive), an instance, or a
    ``{"class_name", "config"}`` dict; names get Keras's default hyperparameters."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(str(identifier.get("class_name", "")).lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        _not_yet(identifier)
        cls = _BY_NAME.get(identifier.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer {identifier!r}; known: "
                             f"{', '.join(sorted(_BY_NAME))}")
        return cls()
    raise TypeError(f"optimizer must be a name or an Optimizer, got {identifier!r}")


# Keras 3 optimizers xpnet does not have yet: asking for one says so.
_NOT_YET = ("Adafactor", "Muon")


def _not_yet(name):
    for cls_name in _NOT_YET:
        if name.lower() == cls_name.lower():
            raise NotImplementedError(f"keras.optimizers.{cls_name} is not implemented in "
                                      "xpnet yet")


def __getattr__(name):
    _not_yet(name)
    raise AttributeError(f"module 'xpnet.optimizers' has no attribute {name!r}")
