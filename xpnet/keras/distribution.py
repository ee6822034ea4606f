"""``keras.distribution``: data parallelism over MPI and NCCL (:mod:`xpnet.distributed`)."""

from xpnet.distributed import *  # noqa: F401,F403
from xpnet.distributed import __all__  # noqa: F401
