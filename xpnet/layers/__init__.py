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
from xpnet.layers.lambda_layer import Lambda
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
    "Identity", "Input", "InputLayer", "KerasTensor", "Lambda", "Layer", "LeakyReLU",
    "Multiply", "ReLU",
    "Reshape", "Softmax", "Subtract", "add", "average", "concatenate", "multiply", "subtract",
    "ActivityRegularization", "BatchNormalization", "Dropout", "GaussianDropout",
    "GaussianNoise", "LayerNormalization", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D",
]

# Convolutional layers (issue 5).
from xpnet.layers.conv import Conv1D  # noqa: E402
from xpnet.layers.conv import Conv1DTranspose  # noqa: E402
from xpnet.layers.conv import Conv2D  # noqa: E402
from xpnet.layers.conv import Conv2DTranspose  # noqa: E402
from xpnet.layers.conv import Conv3D  # noqa: E402
from xpnet.layers.conv import Conv3DTranspose  # noqa: E402
from xpnet.layers.conv_depthwise import DepthwiseConv1D  # noqa: E402
from xpnet.layers.conv_depthwise import DepthwiseConv2D  # noqa: E402
from xpnet.layers.conv_depthwise import SeparableConv1D  # noqa: E402
from xpnet.layers.conv_depthwise import SeparableConv2D  # noqa: E402
from xpnet.layers.pooling import AveragePooling1D  # noqa: E402
from xpnet.layers.pooling import AveragePooling2D  # noqa: E402
from xpnet.layers.pooling import AveragePooling3D  # noqa: E402
from xpnet.layers.pooling import GlobalAveragePooling1D  # noqa: E402
from xpnet.layers.pooling import GlobalAveragePooling2D  # noqa: E402
from xpnet.layers.pooling import GlobalAveragePooling3D  # noqa: E402
from xpnet.layers.pooling import GlobalMaxPooling1D  # noqa: E402
from xpnet.layers.pooling import GlobalMaxPooling2D  # noqa: E402
from xpnet.layers.pooling import GlobalMaxPooling3D  # noqa: E402
from xpnet.layers.pooling import MaxPooling1D  # noqa: E402
from xpnet.layers.pooling import MaxPooling2D  # noqa: E402
from xpnet.layers.pooling import MaxPooling3D  # noqa: E402
from xpnet.layers.reshaping import Cropping1D  # noqa: E402
from xpnet.layers.reshaping import Cropping2D  # noqa: E402
from xpnet.layers.reshaping import Cropping3D  # noqa: E402
from xpnet.layers.reshaping import UpSampling1D  # noqa: E402
from xpnet.layers.reshaping import UpSampling2D  # noqa: E402
from xpnet.layers.reshaping import UpSampling3D  # noqa: E402
from xpnet.layers.reshaping import ZeroPadding1D  # noqa: E402
from xpnet.layers.reshaping import ZeroPadding2D  # noqa: E402
from xpnet.layers.reshaping import ZeroPadding3D  # noqa: E402

__all__ += [
    "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
]

# Keras-fidelity layers (issue 10): preprocessing, image augmentation, merges, normalization,
# reshaping and PReLU.
from xpnet.layers.activation import PReLU  # noqa: E402
from xpnet.layers.image_augmentation import RandomRotation  # noqa: E402
from xpnet.layers.image_augmentation import RandomTranslation  # noqa: E402
from xpnet.layers.image_augmentation import RandomZoom  # noqa: E402
from xpnet.layers.image_preprocessing import CenterCrop  # noqa: E402
from xpnet.layers.image_preprocessing import RandomContrast  # noqa: E402
from xpnet.layers.image_preprocessing import RandomCrop  # noqa: E402
from xpnet.layers.image_preprocessing import RandomFlip  # noqa: E402
from xpnet.layers.image_preprocessing import Resizing  # noqa: E402
from xpnet.layers.merge import Dot  # noqa: E402
from xpnet.layers.merge import Maximum  # noqa: E402
from xpnet.layers.merge import Minimum  # noqa: E402
from xpnet.layers.merge import dot  # noqa: E402
from xpnet.layers.merge import maximum  # noqa: E402
from xpnet.layers.merge import minimum  # noqa: E402
from xpnet.layers.normalization import GroupNormalization  # noqa: E402
from xpnet.layers.normalization import UnitNormalization  # noqa: E402
from xpnet.layers.preprocessing import Normalization  # noqa: E402
from xpnet.layers.preprocessing import Rescaling  # noqa: E402
from xpnet.layers.reshaping import Permute  # noqa: E402
from xpnet.layers.reshaping import RepeatVector  # noqa: E402

__all__ += [
    "PReLU", "RandomRotation", "RandomTranslation", "RandomZoom", "CenterCrop",
    "RandomContrast", "RandomCrop", "RandomFlip", "Resizing", "Dot", "Maximum", "Minimum",
    "dot", "maximum", "minimum", "GroupNormalization", "UnitNormalization", "Normalization",
    "Rescaling", "Permute", "RepeatVector",
]

# -- region-of-interest pooling (issue 15) --
from xpnet.layers.detection import RoIAlign  # noqa: E402
from xpnet.layers.detection import RoIPool  # noqa: E402

__all__ += ["RoIAlign", "RoIPool"]

# Embedding, masking and recurrent layers (issue 12).
from xpnet.layers.embedding import Embedding  # noqa: E402
from xpnet.layers.embedding import Masking  # noqa: E402
from xpnet.layers.recurrent import GRU  # noqa: E402
from xpnet.layers.recurrent import LSTM  # noqa: E402
from xpnet.layers.recurrent import SimpleRNN  # noqa: E402

__all__ += ["Embedding", "Masking", "GRU", "LSTM", "SimpleRNN"]

# Attention and Transformers (issue 13).
from xpnet.layers.attention import GroupedQueryAttention  # noqa: E402
from xpnet.layers.attention import MultiHeadAttention  # noqa: E402

GroupQueryAttention = GroupedQueryAttention  # Keras 3 exports the class under this name

__all__ += ["GroupQueryAttention", "GroupedQueryAttention", "MultiHeadAttention"]
from xpnet.layers.attention_dot import AdditiveAttention  # noqa: E402
from xpnet.layers.attention_dot import Attention  # noqa: E402

__all__ += ["AdditiveAttention", "Attention"]
from xpnet.layers.position import PositionEmbedding  # noqa: E402
from xpnet.layers.position import RotaryEmbedding  # noqa: E402
from xpnet.layers.position import SinePositionEncoding  # noqa: E402
from xpnet.layers.position import TokenAndPositionEmbedding  # noqa: E402
from xpnet.layers.transformer import TransformerDecoder  # noqa: E402
from xpnet.layers.transformer import TransformerEncoder  # noqa: E402

__all__ += ["PositionEmbedding", "RotaryEmbedding", "SinePositionEncoding",
            "TokenAndPositionEmbedding", "TransformerDecoder", "TransformerEncoder"]
from xpnet.layers.rnn import RNN  # noqa: E402
from xpnet.layers.rnn import GRUCell  # noqa: E402
from xpnet.layers.rnn import LSTMCell  # noqa: E402
from xpnet.layers.rnn import SimpleRNNCell  # noqa: E402
from xpnet.layers.rnn import StackedRNNCells  # noqa: E402

__all__ += ["RNN", "GRUCell", "LSTMCell", "SimpleRNNCell", "StackedRNNCells"]
from xpnet.layers.wrappers import Bidirectional  # noqa: E402
from xpnet.layers.wrappers import TimeDistributed  # noqa: E402

__all__ += ["Bidirectional", "TimeDistributed"]
