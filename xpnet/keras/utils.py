"""``keras.utils``."""

from xpnet.saving import get_registered_name
from xpnet.saving import get_registered_object
from xpnet.saving import register_keras_serializable
from xpnet.utils import *  # noqa: F401,F403
from xpnet.utils import __all__ as _utils_all

__all__ = list(_utils_all) + ["get_registered_name", "get_registered_object",
                              "register_keras_serializable"]


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("utils", name)
