"""``keras.applications``: xpnet's architectures (lenet, vgg, resnet, densenet, ...)."""

from xpnet.applications import *  # noqa: F401,F403
from xpnet.applications import __all__  # noqa: F401


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("applications", name)
