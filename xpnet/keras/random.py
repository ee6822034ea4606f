"""``keras.random``."""

from xpnet.random import *  # noqa: F401,F403
from xpnet.random import __all__  # noqa: F401
