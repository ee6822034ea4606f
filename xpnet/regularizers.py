"""Weight penalties with Keras's names and arithmetic: ``L1`` adds ``l1 * sum(|w|)``, ``L2``
adds ``l2 * sum(w^2)`` (no factor 1/2), ``L1L2`` both. Each also gives its gradient, which
the model adds into the weight's gradient; the penalty is part of the reported loss."""

from xpnet.backend import namespace

__all__ = ["Regularizer", "L1", "L2", "L1L2", "l1", "l2", "l1_l2", "get", "serialize"]


class Regularizer:
    """Base class: ``__call__(w)`` is the penalty (a 0-d array), ``grad(w)`` its gradient."""

    def __call__(self, w):
        raise NotImplementedError

    def grad(self, w):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class L1L2(Regularizer):
    """``l1 * sum(|w|) + l2 * sum(w^2)``."""

    def __init__(self, l1=0.0, l2=0.0):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"{type(self).__name__}: l1 and l2 must be >= 0, got {l1}, {l2}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        xp = namespace(w)
        penalty = 0.0
        if self.l1:
            penalty = penalty + self.l1 * xp.sum(xp.abs(w))
        if self.l2:
            penalty = penalty + self.l2 * xp.sum(w * w)
        return penalty

    def grad(self, w):
        xp = namespace(w)
        g = 0.0
        if self.l1:
            g = g + self.l1 * xp.sign(w)
        if self.l2:
            g = g + (2.0 * self.l2) * w
        return g

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    """``l1 * sum(|w|)``; default ``l1=0.01``."""

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    """``l2 * sum(w^2)``; default ``l2=0.01``."""

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def l1(l1=0.01):
    return L1(l1)


def l2(l2=0.01):
    return L2(l2)


def l1_l2(l1=0.01, l2=0.01):
    return L1L2(l1, l2)


_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": l1_l2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    """A Regularizer from None, a name ("l1", "l2", "l1_l2"), an instance or a dict."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, dict):
        cls = _BY_NAME.get(identifier.get("class_name"))
        if cls is None or not isinstance(cls, type):
            raise ValueError(f"unknown regularizer {identifier!r}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    raise ValueError(f"unknown regularizer {identifier!r}; known: l1, l2, l1_l2")


def serialize(regularizer):
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
