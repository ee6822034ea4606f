"""``keras.applications``: xpnet's architectures (lenet, vgg, resnet, densenet, ...)."""

from xpnet.applications import *  # noqa: F401,F403
from xpnet.applications import __all__  # noqa: F401
