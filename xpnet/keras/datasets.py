"""``keras.datasets``."""

from xpnet.datasets import *  # noqa: F401,F403
