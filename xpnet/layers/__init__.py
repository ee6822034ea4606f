"""Layers, one module per family; all of them importable from here."""

from xpnet.layers.activation import ELU
from xpnet.layers.activation import Activation
from xpnet.layers.activation import LeakyReLU
from xpnet.layers.activation import ReLU
from xpnet.layers.activation import Softmax
from xpnet.layers.base import ActivatedLayer
from xpnet.layers.base import KerasTensor
from xpnet.layers.base import Layer
from xpnet.layers.core import Dense
from xpnet.layers.core import Flatten
from xpnet.layers.core import Identity
from xpnet.layers.core import Input
from xpnet.layers.core import InputLayer
from xpnet.layers.core import Reshape
from xpnet.layers.merge import Add
from xpnet.layers.merge import Average
from xpnet.layers.merge import Concatenate
from xpnet.layers.merge import Multiply
from xpnet.layers.merge import Subtract
from xpnet.layers.merge import add
from xpnet.layers.merge import average
from xpnet.layers.merge import concatenate
from xpnet.layers.merge import multiply
from xpnet.layers.merge import subtract
from xpnet.layers.normalization import BatchNormalization
from xpnet.layers.normalization import LayerNormalization
from xpnet.layers.regularization import ActivityRegularization
from xpnet.layers.regularization import Dropout
from xpnet.layers.regularization import GaussianDropout
from xpnet.layers.regularization import GaussianNoise
from xpnet.layers.regularization import SpatialDropout1D
from xpnet.layers.regularization import SpatialDropout2D
from xpnet.layers.regularization import SpatialDropout3D

__all__ = [
    "ActivatedLayer", "Activation", "Add", "Average", "Concatenate", "Dense", "ELU", "Flatten",
    "Identity", "Input", "InputLayer", "KerasTensor", "Layer", "LeakyReLU", "Multiply", "ReLU",
    "Reshape", "Softmax", "Subtract", "add", "average", "concatenate", "multiply", "subtract",
    "ActivityRegularization", "BatchNormalization", "Dropout", "GaussianDropout",
    "GaussianNoise", "LayerNormalization", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D",
]
