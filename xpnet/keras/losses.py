"""``keras.losses``."""

from xpnet.losses import *  # noqa: F401,F403
from xpnet.losses import __all__  # noqa: F401


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet import losses as _impl

    return getattr(_impl, name)
