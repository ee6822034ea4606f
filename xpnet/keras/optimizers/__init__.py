"""``keras.optimizers`` (and ``keras.optimizers.schedules``)."""

from xpnet.keras.optimizers import schedules
from xpnet.mixed_precision import LossScaleOptimizer
from xpnet.optimizers import *  # noqa: F401,F403
from xpnet.optimizers import __all__ as _all

__all__ = list(_all) + ["LossScaleOptimizer", "schedules"]


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet import optimizers as _impl

    return getattr(_impl, name)
