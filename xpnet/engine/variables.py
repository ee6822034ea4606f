"""Variables: named handles on a layer's weights, as Keras 3's ``Variable``.

A layer keeps its weights as arrays in ``params`` (the built-in layers read them there, and
``compile`` rebinds them to views of one flat buffer). A :class:`Variable` is the handle that
``add_weight`` returns and ``layer.weights`` lists: it always reads the live array, so code
that kept ``self.kernel = self.add_weight(...)`` sees the packed weights, and a tape knows
which weight it reads. Arithmetic on a Variable goes through :mod:`xpnet.ops`.
"""

__all__ = ["Variable"]


class Variable:
    """A weight of ``layer`` named ``name`` (or, with ``layer`` None, a free variable
    holding its own array).

    Parameters
    ----------
    initializer : array, callable or str, default=None
        For a free variable (``keras.Variable(initializer, shape, dtype)``): its value, or an
        initializer called with ``(shape, dtype)``.
    """

    __array_priority__ = 1000
    __array_ufunc__ = None

    def __init__(self, initializer=None, shape=None, dtype=None, trainable=True, name=None,
                 layer=None):
        self.layer, self.name = layer, name
        self._trainable = trainable
        self._own = None
        if layer is None:
            self._own = _free_value(initializer, shape, dtype)
            self.name = name or "variable"

    def _xpnet_value(self):
        return self.value

    @property
    def value(self):
        """The live array."""
        return self._own if self.layer is None else self.layer.params[self.name]

    @property
    def trainable(self):
        if self.layer is None:
            return self._trainable
        return self.layer.trainable and self.name in self.layer._trainable_names

    @trainable.setter
    def trainable(self, value):
        if self.layer is None:
            self._trainable = bool(value)
        else:
            self.layer.set_weight_trainable(self.name, value)

    @property
    def path(self):
        return self.name if self.layer is None else f"{self.layer.name}/{self.name}"

    @property
    def regularizer(self):
        return None if self.layer is None else self.layer.regularizers.get(self.name)

    shape = property(lambda self: tuple(self.value.shape))
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)

    @property
    def size(self):
        n = 1
        for d in self.value.shape:
            n *= d
        return n

    def __len__(self):
        return self.value.shape[0]

    def numpy(self):
        from xpnet.backend import backend_of

        v = self.value
        return backend_of(v).to_numpy(backend_of(v).xp.asarray(v, copy=True))

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def assign(self, value):
        """Write ``value`` into the variable in place (its shape must match)."""
        from xpnet.backend import backend_of
        from xpnet.engine.tape import unwrap

        v = self.value
        backend = backend_of(v)
        new = backend.asarray(unwrap(value))
        if tuple(new.shape) != tuple(v.shape):
            raise ValueError(f"variable {self.path!r} has shape {tuple(v.shape)}, "
                             f"cannot assign a value of shape {tuple(new.shape)}")
        v[...] = backend.xp.astype(new, v.dtype)
        return self

    def assign_add(self, value):
        from xpnet.engine.tape import unwrap

        return self.assign(self.value + unwrap(value))

    def assign_sub(self, value):
        from xpnet.engine.tape import unwrap

        return self.assign(self.value - unwrap(value))

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype={self.dtype}>"


def _free_value(initializer, shape, dtype):
    from xpnet import initializers
    from xpnet.backend import get_backend

    backend = get_backend(None)
    xp = backend.xp
    dt = getattr(xp, str(dtype or "float32").rsplit(".", 1)[-1])
    if isinstance(initializer, str) or (callable(initializer) and shape is not None):
        if shape is None:
            raise ValueError("Variable: an initializer needs a shape")
        return xp.asarray(initializers.get(initializer)(tuple(shape), dt, backend), copy=True)
    if initializer is None:
        raise ValueError("Variable: give an initial value or an initializer and a shape")
    from xpnet.engine.tape import unwrap

    value = backend.asarray(unwrap(initializer))
    return xp.asarray(value, dtype=dt if dtype is not None or value.dtype != xp.float64
                      else xp.float32, copy=True)
