"""Weight initializers with Keras 3's names, defaults and variance-scaling arithmetic.

An initializer is called as ``init(shape, dtype, backend)``. Random ones draw on the host
from their seed (or a fresh one from :func:`xpnet.utils.set_random_seed`'s generator), so a
seeded model starts from the same weights on every backend.
"""

import collections
import contextlib
import math
import threading

from xpnet.utils import next_seed

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "RandomNormal",
    "RandomUniform",
    "TruncatedNormal",
    "VarianceScaling",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "get",
    "initial_value",
    "supplied",
]

# stddev of a standard normal truncated to [-2, 2]: dividing by it restores the variance.
_TRUNCATED_STD = 0.87962566103423978


class Initializer:
    """Base class: subclasses implement ``__call__(shape, dtype, backend)``."""

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Constant(Initializer):
    """Every entry ``value``."""

    def __init__(self, value=0.0):
        self.value = float(value)

    def __call__(self, shape, dtype, backend):
        xp = backend.xp
        return xp.full(tuple(shape), self.value, dtype=dtype, device=backend.device)

    def get_config(self):
        return {"value": self.value}


class Zeros(Constant):
    """Every entry 0."""

    def __init__(self):
        super().__init__(0.0)

    def get_config(self):
        return {}


class Ones(Constant):
    """Every entry 1."""

    def __init__(self):
        super().__init__(1.0)

    def get_config(self):
        return {}


class _Random(Initializer):
    def __init__(self, seed=None):
        self.seed = seed

    def _rng(self, backend):
        return backend.rng(next_seed(self.seed), host=True)

    def get_config(self):
        return {"seed": self.seed}


class RandomNormal(_Random):
    """Normal draws, ``N(mean, stddev^2)``."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = mean, stddev

    def __call__(self, shape, dtype, backend):
        return self._rng(backend).normal(shape, dtype, self.mean, self.stddev)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomNormal):
    """Normal draws redrawn until within two standard deviations of the mean."""

    def __call__(self, shape, dtype, backend):
        return self._rng(backend).truncated_normal(shape, dtype, self.mean, self.stddev)


class RandomUniform(_Random):
    """Uniform draws on ``[minval, maxval)``."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = minval, maxval

    def __call__(self, shape, dtype, backend):
        return self._rng(backend).uniform(shape, dtype, self.minval, self.maxval)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


def _fans(shape):
    """Keras's fan-in and fan-out: conv kernels ``(*spatial, in, out)`` count the window."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class VarianceScaling(_Random):
    """Draws with variance ``scale / n``, ``n`` the fan-in, fan-out or their mean.

    Parameters
    ----------
    scale : float, default=1.0
    mode : {"fan_in", "fan_out", "fan_avg"}, default="fan_in"
    distribution : {"truncated_normal", "untruncated_normal", "uniform"}
        Default "truncated_normal".
    seed : int or None
    """

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"VarianceScaling: scale must be positive, got {scale!r}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"VarianceScaling: unknown mode {mode!r}")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"VarianceScaling: unknown distribution {distribution!r}")
        self.scale, self.mode, self.distribution = scale, mode, distribution

    def __call__(self, shape, dtype, backend):
        fan_in, fan_out = _fans(tuple(shape))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        rng = self._rng(backend)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(shape, dtype, -limit, limit)
        if self.distribution == "untruncated_normal":
            return rng.normal(shape, dtype, 0.0, math.sqrt(var))
        return rng.truncated_normal(shape, dtype, 0.0, math.sqrt(var) / _TRUNCATED_STD)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution}


def _preset(name, scale, mode, distribution, doc):
    def __init__(self, seed=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed)

    def get_config(self):
        return {"seed": self.seed}

    return type(name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                           "__doc__": doc})


GlorotUniform = _preset("GlorotUniform", 1.0, "fan_avg", "uniform",
                        "Xavier uniform: limit ``sqrt(6 / (fan_in + fan_out))``.")
GlorotNormal = _preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                       "Xavier normal (truncated): stddev ``sqrt(2 / (fan_in + fan_out))``.")
HeUniform = _preset("HeUniform", 2.0, "fan_in", "uniform",
                    "He uniform: limit ``sqrt(6 / fan_in)``.")
HeNormal = _preset("HeNormal", 2.0, "fan_in", "truncated_normal",
                   "He normal (truncated): stddev ``sqrt(2 / fan_in)``.")
LecunUniform = _preset("LecunUniform", 1.0, "fan_in", "uniform",
                       "LeCun uniform: limit ``sqrt(3 / fan_in)``.")
LecunNormal = _preset("LecunNormal", 1.0, "fan_in", "truncated_normal",
                      "LeCun normal (truncated): stddev ``sqrt(1 / fan_in)``.")

_BY_NAME = {
    "zeros": Zeros, "ones": Ones, "constant": Constant,
    "random_normal": RandomNormal, "random_uniform": RandomUniform,
    "truncated_normal": TruncatedNormal, "variance_scaling": VarianceScaling,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
    "xavier_uniform": GlorotUniform, "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform, "he_normal": HeNormal,
    "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal,
}
_BY_NAME.update({cls.__name__: cls for cls in set(_BY_NAME.values())})


def get(identifier):
    """An initializer from a name (``"he_normal"``, ``"HeNormal"``), an instance, or a
    ``{"class_name": ..., "config": ...}`` dict."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        if cls is None:
            raise ValueError(f"unknown initializer {identifier!r}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier)
        if cls is None:
            raise ValueError(
                f"unknown initializer {identifier!r}; known: {', '.join(sorted(_BY_NAME))}"
            )
        return cls()
    raise TypeError(f"initializer must be a name or an Initializer, got {identifier!r}")


def serialize(initializer):
    """``{"class_name", "config"}`` for :func:`get`."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


_SUPPLIED = threading.local()  # .shapes: a Counter of the shapes a file supplies, or None


@contextlib.contextmanager
def supplied(shapes, where):
    """A context (per thread) in which the weights created take their values from a file
    that holds arrays of ``shapes``: :func:`initial_value` then runs no initializer (zeros,
    overwritten by the caller) and refuses, before allocating, a shape the file lacks, so
    a small file that declares a huge layer fails at once. ``where`` names the file."""
    previous = getattr(_SUPPLIED, "state", None)
    _SUPPLIED.state = (collections.Counter(tuple(s) for s in shapes), where)
    try:
        yield
    finally:
        _SUPPLIED.state = previous


def initial_value(initializer, shape, dtype, backend):
    """The first value of a weight: ``get(initializer)(shape, dtype, backend)``, or inside
    :func:`supplied`, zeros of a shape the file holds."""
    state = getattr(_SUPPLIED, "state", None)
    if state is None:
        return get(initializer)(shape, dtype, backend)
    counts, where = state
    shape = tuple(shape)
    if counts[shape] <= 0:
        raise ValueError(f"{where}: the architecture declares a weight of shape {shape} that "
                         f"none of the file's tensors has (its weight shapes: "
                         f"{sorted(counts.elements())[:8]}); the file and its architecture "
                         "disagree")
    counts[shape] -= 1
    return backend.xp.zeros(shape, dtype=dtype, device=backend.device)
