"""Learning-rate schedules with Keras 3's names, arguments and formulas.

A schedule is called with the optimizer's step (``optimizer.iterations``, the number of
updates done so far) and returns the learning rate of the next update as a Python float:
it is host arithmetic, computed once per step, never a device array. Pass one as any
optimizer's ``learning_rate``; it is saved with the optimizer's configuration.

>>> from xpnet import schedules
>>> lr = schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=True)
>>> [lr(0), lr(9), lr(10), lr(25)]
[0.1, 0.1, 0.05, 0.025]
"""

import math

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay",
           "InverseTimeDecay", "PolynomialDecay", "CosineDecay", "CosineDecayRestarts",
           "get", "serialize", "deserialize"]


class LearningRateSchedule:
    """Base class: implement ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(step)")

    def get_config(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_config() to be "
                                  "saved")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _positive(cls, name, value):
    if not value > 0:
        raise ValueError(f"{cls}: {name} must be > 0, got {name}={value!r}")


class _StepDecay(LearningRateSchedule):
    """The shared part of ExponentialDecay and InverseTimeDecay: the decay's progress
    ``step / decay_steps``, floored with ``staircase``, and the configuration."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase, name):
        _positive(type(self).__name__, "decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.decay_rate, self.staircase, self.name = decay_rate, staircase, name

    def _progress(self, step):
        p = step / self.decay_steps
        return math.floor(p) if self.staircase else p

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** (step / decay_steps)``; with ``staircase``
    the exponent is floored, so the rate drops every ``decay_steps`` steps."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._progress(step)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while ``step <= boundaries[0]``, ``values[i]`` while
    ``boundaries[i-1] < step <= boundaries[i]``, and ``values[-1]`` after the last."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"PiecewiseConstantDecay: boundaries must have one element "
                             f"fewer than values, got {len(boundaries)} boundaries and "
                             f"{len(values)} values")
        if any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay: boundaries must increase strictly, "
                             f"got {boundaries}")
        self.boundaries, self.values, self.name = boundaries, values, name

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * step / decay_steps)``; with
    ``staircase`` the ratio ``step / decay_steps`` is floored."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def __call__(self, step):
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._progress(step))


class PolynomialDecay(LearningRateSchedule):
    """``(initial - end) * (1 - step / decay_steps) ** power + end``, with ``step`` capped
    at ``decay_steps``; with ``cycle`` the horizon grows to the next multiple of
    ``decay_steps`` instead."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001,
                 power=1.0, cycle=False, name="PolynomialDecay"):
        _positive(type(self).__name__, "decay_steps", decay_steps)
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.end_learning_rate, self.power = end_learning_rate, power
        self.cycle, self.name = cycle, name

    def __call__(self, step):
        horizon = self.decay_steps
        if self.cycle:
            horizon = horizon * max(1, math.ceil(step / self.decay_steps))
        else:
            step = min(step, horizon)
        frac = 1.0 - step / horizon
        return (self.initial_learning_rate - self.end_learning_rate) * frac ** self.power \
            + self.end_learning_rate

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warm-up, as Keras 3.

    Without ``warmup_target``: ``initial * ((1 - alpha) * c + alpha)`` where
    ``c = 0.5 * (1 + cos(pi * min(step, decay_steps) / decay_steps))``. With it, the rate
    first rises linearly from ``initial_learning_rate`` to ``warmup_target`` over
    ``warmup_steps`` steps, then decays from ``warmup_target`` to ``alpha * warmup_target``
    over the next ``decay_steps`` steps.
    """

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        _positive(type(self).__name__, "decay_steps", decay_steps)
        if warmup_steps < 0:
            raise ValueError(f"CosineDecay: warmup_steps must be >= 0, got {warmup_steps!r}")
        self.initial_learning_rate, self.decay_steps = initial_learning_rate, decay_steps
        self.alpha, self.name = alpha, name
        self.warmup_target, self.warmup_steps = warmup_target, warmup_steps

    def _decay(self, step, start):
        c = 0.5 * (1.0 + math.cos(math.pi * min(step, self.decay_steps) / self.decay_steps))
        return start * ((1.0 - self.alpha) * c + self.alpha)

    def __call__(self, step):
        if self.warmup_target is None:
            return self._decay(step, self.initial_learning_rate)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return self.initial_learning_rate + delta * step / self.warmup_steps
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): the first period lasts
    ``first_decay_steps`` steps, each next one ``t_mul`` times longer and starting at
    ``m_mul`` times the previous peak; within a period as :class:`CosineDecay`."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0,
                 alpha=0.0, name="SGDRDecay"):
        _positive(type(self).__name__, "first_decay_steps", first_decay_steps)
        self.initial_learning_rate, self.first_decay_steps = initial_learning_rate, \
            first_decay_steps
        self.t_mul, self.m_mul, self.alpha, self.name = t_mul, m_mul, alpha, name

    def __call__(self, step):
        frac = step / self.first_decay_steps
        if self.t_mul == 1.0:
            restart = math.floor(frac)
            frac -= restart
        else:
            restart = math.floor(math.log(1.0 - frac * (1.0 - self.t_mul)) /
                                 math.log(self.t_mul))
            done = (1.0 - self.t_mul ** restart) / (1.0 - self.t_mul)
            frac = (frac - done) / self.t_mul ** restart
        c = 0.5 * self.m_mul ** restart * (1.0 + math.cos(math.pi * frac))
        return self.initial_learning_rate * ((1.0 - self.alpha) * c + self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "first_decay_steps": self.first_decay_steps, "t_mul": self.t_mul,
                "m_mul": self.m_mul, "alpha": self.alpha, "name": self.name}


_CLASSES = {c.__name__: c for c in (ExponentialDecay, PiecewiseConstantDecay,
                                    InverseTimeDecay, PolynomialDecay, CosineDecay,
                                    CosineDecayRestarts)}


def serialize(schedule):
    """``{"class_name", "config"}`` of a schedule."""
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config, custom_objects=None):
    """A schedule from :func:`serialize`'s dict; ``custom_objects`` maps names of user
    schedule classes to the classes."""
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"unknown learning-rate schedule {name!r}; known: "
                         f"{', '.join(sorted(_CLASSES))} (pass custom_objects for others)")
    return cls.from_config(config.get("config", {}))


def get(identifier):
    """A schedule or a float from a schedule, a float, or a serialized dict."""
    if isinstance(identifier, dict):
        return deserialize(identifier)
    return identifier
