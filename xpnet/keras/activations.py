"""``keras.activations``."""

from xpnet.activations import *  # noqa: F401,F403
from xpnet.activations import __all__  # noqa: F401
