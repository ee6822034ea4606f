"""``keras.losses``."""

from xpnet.losses import *  # noqa: F401,F403
from xpnet.losses import __all__  # noqa: F401
