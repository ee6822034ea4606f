"""``keras.mixed_precision``."""

from xpnet.mixed_precision import *  # noqa: F401,F403
from xpnet.mixed_precision import __all__  # noqa: F401
