"""Data sets on the host, as NumPy arrays.

``load_digits`` (embedded) and ``load_mnist`` (IDX files in a folder) are xpnet's own; the
submodules ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``, ``imdb``, ``reuters``,
``boston_housing`` and ``california_housing`` are ``keras.datasets``: the same
``load_data(...)`` signatures, shapes and dtypes, reading Keras's cached files.
"""

from xpnet.datasets import boston_housing
from xpnet.datasets import california_housing
from xpnet.datasets import cifar10
from xpnet.datasets import cifar100
from xpnet.datasets import fashion_mnist
from xpnet.datasets import imdb
from xpnet.datasets import mnist
from xpnet.datasets import reuters
from xpnet.datasets._files import DatasetNotFoundError
from xpnet.datasets._local import load_digits
from xpnet.datasets._local import load_mnist
from xpnet.datasets._local import load_mnist_split
from xpnet.datasets._local import read_idx

__all__ = ["load_digits", "load_mnist", "load_mnist_split", "read_idx",
           "DatasetNotFoundError", "boston_housing", "california_housing", "cifar10",
           "cifar100", "fashion_mnist", "imdb", "mnist", "reuters"]
