"""``keras.initializers``."""

from xpnet.initializers import *  # noqa: F401,F403
from xpnet.initializers import __all__  # noqa: F401


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("initializers", name)
