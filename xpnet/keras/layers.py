"""``keras.layers``."""

from xpnet.layers import *  # noqa: F401,F403
from xpnet.layers import __all__  # noqa: F401
