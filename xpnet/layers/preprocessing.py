"""Preprocessing layers that live in the model: Normalization (with ``adapt``) and Rescaling.
The image layers (Resizing, crops, flips and the random affine augmentations) are in
:mod:`xpnet.layers.image_preprocessing`."""

import math

from xpnet.backend import get_backend
from xpnet.backend import namespace
from xpnet.layers.base import Layer

__all__ = ["Normalization", "Rescaling"]

_EPSILON = 1e-7  # keras.backend.epsilon(): the floor of the standard deviation


class Normalization(Layer):
    """Feature-wise standardization, ``y = (x - mean) / max(sqrt(variance), 1e-7)``, with
    ``mean`` and ``variance`` given, or learned by :meth:`adapt` from data; ``invert=True``
    undoes it, ``y = mean + x * max(sqrt(variance), 1e-7)``.

    Parameters
    ----------
    axis : int, tuple of int or None, default=-1
        The axes that keep their own statistics (one mean per entry along them); the others
        are reduced over. ``None``: one scalar mean and variance.
    mean, variance : float or array, default=None
        Fixed statistics (both or neither), broadcast onto the kept axes from the right.
        Without them the layer has the non-trainable weights ``mean``, ``variance`` and
        ``count`` (Keras's names and order), which :meth:`adapt` sets.
    invert : bool, default=False
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis is None:
            axis = ()
        self.axis = (axis,) if isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"{self.name}: when setting values directly, both mean and "
                             f"variance must be set. Received: mean={mean} and "
                             f"variance={variance}")
        self.input_mean, self.input_variance = _plain(mean), _plain(variance)
        if mean is not None and _shape(self.input_mean) != _shape(self.input_variance):
            raise ValueError(f"{self.name}: mean and variance must have the same shape. "
                             f"Received: mean shape {_shape(self.input_mean)} and variance "
                             f"shape {_shape(self.input_variance)}")
        if mean is not None and len(_shape(self.input_mean)) > len(self.axis):
            raise ValueError(f"{self.name}: the rank of mean must be at most the number "
                             f"of axes ({len(self.axis)}). Received: mean shape "
                             f"{_shape(self.input_mean)} for axis {self.axis}")
        self.invert = bool(invert)
        self.supports_masking = True

    def check_input_shape(self, input_shape):
        ndim = len(input_shape)
        if isinstance(input_shape, list) or any(a < -ndim or a >= ndim for a in self.axis):
            raise ValueError(f"{self.name}: all axis values must be in the range [-ndim, "
                             f"ndim). Received inputs of shape {input_shape}, while "
                             f"axis={self.axis}")
        keep = sorted(a % ndim for a in self.axis)
        if any(input_shape[d] is None for d in keep):
            raise ValueError(f"{self.name}: all axis values to be kept must have a known "
                             f"shape. Received axis={self.axis}, inputs.shape={input_shape}")
        if self.built and tuple(input_shape[d] for d in keep) != self._stat_shape:
            raise ValueError(f"{self.name}: built for statistics of shape "
                             f"{self._stat_shape} on axis {self.axis}, got input shape "
                             f"{input_shape}")

    def build(self, input_shape):
        ndim = len(input_shape)
        self._keep = tuple(sorted(a % ndim for a in self.axis))
        self._reduce = tuple(d for d in range(ndim) if d not in self._keep)
        self._stat_shape = tuple(input_shape[d] for d in self._keep)
        self._bshape = tuple(input_shape[d] if d in self._keep else 1 for d in range(ndim))
        if self.input_mean is None:
            self.add_weight(name="mean", shape=self._stat_shape, initializer="zeros",
                            trainable=False)
            self.add_weight(name="variance", shape=self._stat_shape, initializer="ones",
                            trainable=False)
            self.add_weight(name="count", shape=(), dtype="int64", initializer="zeros",
                            trainable=False)
            self._fixed = None
            return
        self._fixed = tuple(self._broadcast(v) for v in (self.input_mean,
                                                         self.input_variance))

    def _broadcast(self, value):
        """A fixed statistic shaped against the input: a scalar fills the kept axes; an
        array's axes align with the kept axes from the right (Keras's rule)."""
        xp = self.backend.xp
        a = self.backend.asarray(value, dtype=getattr(xp, self.dtype))
        if a.ndim == 0:
            return xp.broadcast_to(a, self._bshape)
        shape = [1] * len(self._bshape)
        for i in range(1, a.ndim + 1):
            shape[self._keep[-i]] = a.shape[-i]
        return xp.broadcast_to(xp.reshape(a, tuple(shape)), self._bshape)

    def _scale(self, x):
        """``(mean, max(sqrt(variance), epsilon))`` in ``x``'s dtype, broadcastable."""
        xp = namespace(x)
        if self._fixed is not None:
            mean, var = self._fixed
        else:
            mean = xp.reshape(self.params["mean"], self._bshape)
            var = xp.reshape(self.params["variance"], self._bshape)
        mean, var = xp.astype(mean, x.dtype), xp.astype(var, x.dtype)
        return mean, xp.maximum(xp.sqrt(var), _EPSILON)

    def forward(self, x, training=False):
        x = _as_float(x, self.dtype)
        mean, std = self._scale(x)
        if self.invert:
            return mean + x * std, std
        return (x - mean) / std, std

    def backward(self, std, dy):
        return dy * std if self.invert else dy / std

    def adapt(self, data, batch_size=None, steps=None):
        """Set ``mean`` and ``variance`` to the statistics of ``data`` over the reduced axes
        (the biased variance, as Keras's ``np.var``): an array, or an iterable of batches
        (arrays, or ``(x, y)`` tuples whose ``x`` is taken) merged as Keras merges them.
        Builds the layer on the default backend if it is not built yet."""
        if self.input_mean is not None:
            raise ValueError(f"{self.name}: adapt() needs a layer without fixed mean and "
                             "variance")
        batches = [data] if hasattr(data, "shape") else (_first(b) for b in data)
        total_mean = total_var = None
        count = 0
        for i, batch in enumerate(batches):
            if steps is not None and i >= steps:
                break
            batch_mean, batch_var, n = self._moments(batch)
            if total_mean is None:
                total_mean, total_var, count = batch_mean, batch_var, n
                continue
            count += n
            w = n / count
            new_mean = total_mean * (1.0 - w) + batch_mean * w
            total_var = ((total_var + (total_mean - new_mean) ** 2) * (1.0 - w)
                         + (batch_var + (batch_mean - new_mean) ** 2) * w)
            total_mean = new_mean
        if total_mean is None:
            raise ValueError(f"{self.name}: adapt() received no data (an empty iterable)")
        xp = self.backend.xp
        dt = self.params["mean"].dtype
        self.params["mean"][...] = xp.astype(xp.reshape(total_mean, self._stat_shape), dt)
        self.params["variance"][...] = xp.astype(xp.reshape(total_var, self._stat_shape), dt)

    def _moments(self, batch):
        shape = tuple(batch.shape)
        if not self.built:
            backend = self.backend or get_backend(None)
            self.build_on(backend, (None,) + shape[1:] if len(shape) > 1 else shape)
        else:
            self.check_input_shape(shape)
        xp = self.backend.xp
        x = xp.astype(self.backend.asarray(batch), xp.float64)
        n = math.prod(shape[d] for d in self._reduce)
        mean = xp.mean(x, axis=self._reduce) if self._reduce else x
        var = xp.var(x, axis=self._reduce) if self._reduce else xp.zeros_like(x)
        return mean, var, n

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": self.input_mean, "variance": self.input_variance}


class Rescaling(Layer):
    """``y = x * scale + offset``, e.g. ``Rescaling(1 / 255)`` for pixel values, or
    ``Rescaling(1 / 127.5, offset=-1)`` for ``[-1, 1]``.

    Parameters
    ----------
    scale : float or list of float
        A list scales the last axis entry-wise.
    offset : float or list of float, default=0.0
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = _plain(scale), _plain(offset)
        self.supports_masking = True

    def _const(self, value, x):
        if isinstance(value, (int, float)):
            return value
        xp = namespace(x)
        return xp.asarray(value, dtype=x.dtype, device=getattr(x, "device", None))

    def forward(self, x, training=False):
        x = _as_float(x, self.dtype)
        scale = self._const(self.scale, x)
        return x * scale + self._const(self.offset, x), scale

    def backward(self, scale, dy):
        return dy * scale

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _plain(value):
    """A JSON-friendly copy of a number or array-like (nested lists)."""
    if value is None or isinstance(value, (int, float)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    return [_plain(v) for v in value]


def _shape(value):
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return tuple(shape)


def _as_float(x, dtype):
    """Integer inputs (uint8 pixels) as the layer's float dtype (Keras's compute dtype)."""
    xp = namespace(x)
    return x if xp.isdtype(x.dtype, "real floating") else xp.astype(x, getattr(xp, dtype))


def _first(batch):
    return batch[0] if isinstance(batch, (tuple, list)) else batch
