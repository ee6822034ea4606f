"""``keras.ops``: the array functions that layers, losses and models written with ``call()``
use, each written once against the array API with its vector-Jacobian product.

>>> from xpnet import ops
>>> ops.sum(ops.square(ops.convert_to_tensor([1.0, 2.0])))  # doctest: +SKIP
"""

from xpnet.engine.tape import Traced
from xpnet.engine.variables import Variable
from xpnet.ops import core
from xpnet.ops import nn
from xpnet.ops.core import *  # noqa: F401,F403
from xpnet.ops.nn import *  # noqa: F401,F403

__all__ = core.__all__ + [n for n in nn.__all__ if n not in core.__all__]


def _install_operators(cls):
    """Arithmetic, comparison and indexing on ``cls`` through the ops (so they record)."""
    def binary(f, reflected=False):
        if reflected:
            return lambda self, other: f(other, self)
        return lambda self, other: f(self, other)

    for name, f in (("add", core.add), ("sub", core.subtract), ("mul", core.multiply),
                    ("truediv", core.divide), ("matmul", core.matmul), ("pow", core.power)):
        setattr(cls, f"__{name}__", binary(f))
        setattr(cls, f"__r{name}__", binary(f, reflected=True))
    cls.__neg__ = lambda self: core.negative(self)
    cls.__pos__ = lambda self: self
    cls.__abs__ = lambda self: core.abs(self)
    cls.__getitem__ = lambda self, key: core.get_item(self, key)
    for name, f in (("lt", core.less), ("le", core.less_equal), ("gt", core.greater),
                    ("ge", core.greater_equal)):
        setattr(cls, f"__{name}__", binary(f))
    cls.T = property(lambda self: core.transpose(self))
    cls.mT = property(lambda self: core.swapaxes(self, -1, -2))
    cls.__hash__ = object.__hash__


for _cls in (Traced, Variable):
    _install_operators(_cls)
