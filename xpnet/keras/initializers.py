"""``keras.initializers``."""

from xpnet.initializers import *  # noqa: F401,F403
from xpnet.initializers import __all__  # noqa: F401
