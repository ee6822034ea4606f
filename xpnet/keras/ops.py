"""``keras.ops``."""

from xpnet.ops import *  # noqa: F401,F403
from xpnet.ops import __all__  # noqa: F401
