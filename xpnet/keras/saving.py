"""``keras.saving``."""

from xpnet.models import load_model
from xpnet.models import save_model
from xpnet.saving import get_registered_name
from xpnet.saving import get_registered_object
from xpnet.saving import register_keras_serializable

__all__ = ["get_registered_name", "get_registered_object", "load_model",
           "register_keras_serializable", "save_model"]


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("saving", name)
