"""``keras.regularizers``."""

from xpnet.regularizers import *  # noqa: F401,F403
from xpnet.regularizers import __all__  # noqa: F401
