"""The Keras-compatible namespace: ``from xpnet import keras`` in place of ``import keras``.

>>> from xpnet import keras
>>> model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)], backend="cpu")
>>> model.count_params()
10
"""

from xpnet import activations
from xpnet import applications
from xpnet import callbacks
from xpnet import datasets
from xpnet import initializers
from xpnet import layers
from xpnet import losses
from xpnet import metrics
from xpnet import models
from xpnet import optimizers
from xpnet import regularizers
from xpnet import saving
from xpnet import utils
from xpnet.layers import Input
from xpnet.models import Model
from xpnet.models import Sequential

__all__ = ["Input", "Model", "Sequential", "activations", "callbacks", "datasets",
           "initializers", "layers", "losses", "metrics", "models", "optimizers",
           "regularizers", "saving", "utils", "applications"]
