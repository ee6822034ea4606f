"""The Keras-compatible namespace: ``from xpnet import keras`` in place of ``import keras``.

A package whose submodules mirror Keras's, so that ``from xpnet.keras.layers import Dense``
and ``from xpnet.keras import ops`` work as their Keras spellings do.

>>> from xpnet import keras
>>> model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)], backend="cpu")
>>> model.count_params()
10
"""

from xpnet.engine.node import KerasTensor
from xpnet.engine.variables import Variable
from xpnet.keras import activations
from xpnet.keras import applications
from xpnet.keras import callbacks
from xpnet.keras import datasets
from xpnet.keras import distribution
from xpnet.keras import initializers
from xpnet.keras import layers
from xpnet.keras import losses
from xpnet.keras import metrics
from xpnet.keras import mixed_precision
from xpnet.keras import models
from xpnet.keras import ops
from xpnet.keras import optimizers
from xpnet.keras import random
from xpnet.keras import regularizers
from xpnet.keras import saving
from xpnet.keras import utils
from xpnet.layers import Input
from xpnet.layers import Layer
from xpnet.losses import Loss
from xpnet.metrics import Metric
from xpnet.models import Model
from xpnet.models import Sequential
from xpnet.optimizers import Optimizer

__all__ = ["Input", "KerasTensor", "Layer", "Loss", "Metric", "Model", "Optimizer",
           "Sequential", "Variable", "activations", "applications", "callbacks", "datasets",
           "distribution",
           "initializers", "layers", "losses", "metrics", "mixed_precision", "models", "ops",
           "optimizers",
           "random", "regularizers", "saving", "utils"]


def __getattr__(name):  # a Keras name xpnet lacks raises NotImplementedError
    from xpnet.keras._missing import missing

    raise missing("keras", name)
