"""xpnet: neural networks written once against the Python array API.

The same layers, losses and optimizers run on NumPy (``backend="cpu"``) and CuPy
(``backend="cuda"``); Numba kernels take the hot paths. ``from xpnet import keras`` is a
drop-in for ``import keras`` in the programs xpnet supports.
"""

import os as _os

# The Numba kernels live in kernels/ beside this package; setuptools installs them as
# xpnet.kernels (package-dir). Imported straight from a source checkout (PYTHONPATH=., or
# the current directory), the subpackage is found beside it instead.
_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "kernels")) and _os.path.isfile(
        _os.path.join(_here, _os.pardir, "kernels", "__init__.py")):
    __path__.append(_os.path.join(_here, _os.pardir))

from xpnet import activations  # noqa: E402
from xpnet import applications  # noqa: E402
from xpnet import callbacks  # noqa: E402
from xpnet import datasets  # noqa: E402
from xpnet import initializers  # noqa: E402
from xpnet import layers  # noqa: E402
from xpnet import losses  # noqa: E402
from xpnet import metrics  # noqa: E402
from xpnet import ops  # noqa: E402
from xpnet import optimizers  # noqa: E402
from xpnet import random  # noqa: E402
from xpnet import regularizers  # noqa: E402
from xpnet import saving  # noqa: E402
from xpnet import schedules  # noqa: E402
from xpnet import utils  # noqa: E402
from xpnet.backend import BackendUnavailableError  # noqa: E402
from xpnet.backend import get_backend  # noqa: E402
from xpnet.backend import set_backend  # noqa: E402
from xpnet.engine.tape import GradientTape  # noqa: E402
from xpnet.engine.trainer import NonFiniteLossError  # noqa: E402
from xpnet.engine.variables import Variable  # noqa: E402
from xpnet.layers import Input  # noqa: E402
from xpnet.models import Model  # noqa: E402
from xpnet.models import Sequential  # noqa: E402
from xpnet.models import load_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailableError", "GradientTape", "Input", "Model", "NonFiniteLossError",
    "Sequential", "Variable", "activations", "applications", "callbacks", "datasets",
    "get_backend", "initializers", "layers", "losses", "load_model", "metrics", "ops",
    "optimizers", "random", "regularizers", "saving", "schedules", "set_backend", "utils",
]
