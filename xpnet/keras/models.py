"""``keras.models``."""

from xpnet.models import Model
from xpnet.models import Sequential
from xpnet.models import clone_model
from xpnet.models import load_model
from xpnet.models import model_from_json
from xpnet.models import save_model

__all__ = ["Model", "Sequential", "clone_model", "load_model", "model_from_json",
           "save_model"]


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("models", name)
