"""``keras.optimizers.schedules``."""

from xpnet.schedules import *  # noqa: F401,F403
from xpnet.schedules import __all__  # noqa: F401
