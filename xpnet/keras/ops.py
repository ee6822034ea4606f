"""``keras.ops``."""

from xpnet.ops import *  # noqa: F401,F403
from xpnet.ops import __all__  # noqa: F401


def __getattr__(name):  # branch trainer: Keras names xpnet lacks raise NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("ops", name)
