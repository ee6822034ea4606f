"""``keras.callbacks``."""

from xpnet.callbacks import *  # noqa: F401,F403
from xpnet.callbacks import __all__  # noqa: F401
