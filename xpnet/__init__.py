"""xpnet: neural networks written once against the Python array API.

The same layers, losses and optimizers run on NumPy (``backend="cpu"``) and CuPy
(``backend="cuda"``); Numba kernels take the hot paths. ``from xpnet import keras`` is a
drop-in for ``import keras`` in the programs xpnet supports.
"""

from xpnet import activations
from xpnet import callbacks
from xpnet import datasets
from xpnet import initializers
from xpnet import layers
from xpnet import losses
from xpnet import metrics
from xpnet import optimizers
from xpnet import regularizers
from xpnet import utils
from xpnet.backend import BackendUnavailableError
from xpnet.backend import get_backend
from xpnet.backend import set_backend
from xpnet.layers import Input
from xpnet.models import Model
from xpnet.models import Sequential

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "Input", "Model", "Sequential", "activations", "callbacks",
    "datasets", "get_backend", "initializers", "layers", "losses", "metrics", "optimizers",
    "regularizers", "set_backend", "utils",
]

from xpnet import applications  # noqa: E402  (convolutional architectures, issue 5)

__all__ += ["applications"]
