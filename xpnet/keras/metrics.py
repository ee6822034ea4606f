"""``keras.metrics``."""

from xpnet.metrics import *  # noqa: F401,F403
from xpnet.metrics import __all__  # noqa: F401
