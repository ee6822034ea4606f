"""``keras.optimizers`` (and ``keras.optimizers.schedules``)."""

from xpnet.keras.optimizers import schedules
from xpnet.optimizers import *  # noqa: F401,F403
from xpnet.optimizers import __all__ as _all

__all__ = list(_all) + ["schedules"]
