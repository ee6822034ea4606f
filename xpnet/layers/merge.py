"""Merge layers: combine a list of tensors into one, for residual, dense and inception blocks."""

from xpnet.backend import namespace
from xpnet.layers.base import Layer
from xpnet.layers.normalization import l2_normalize
from xpnet.layers.normalization import l2_normalize_grad

__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate", "add", "subtract",
           "multiply", "average", "concatenate", "Maximum", "Minimum", "Dot", "maximum",
           "minimum", "dot"]


class _Merge(Layer):
    """Elementwise merge of two or more tensors of one shape (batch axis may differ by None)."""

    def _check_list(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{self.name}: expects a list of at least 2 inputs, "
                             f"got {input_shape}")

    def check_input_shape(self, input_shape):
        self._check_list(input_shape)
        rest = {tuple(s[1:]) for s in input_shape}
        if len(rest) != 1:
            raise ValueError(f"{self.name}: inputs must have the same shape, "
                             f"got {input_shape}")

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class Add(_Merge):
    """Sum of the inputs."""

    def forward(self, xs, training=False):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y, len(xs)

    def backward(self, n, dy):
        return [dy] * n


class Subtract(_Merge):
    """``inputs[0] - inputs[1]``."""

    def check_input_shape(self, input_shape):
        super().check_input_shape(input_shape)
        if len(input_shape) != 2:
            raise ValueError(f"{self.name}: expects exactly 2 inputs, got {len(input_shape)}")

    def forward(self, xs, training=False):
        return xs[0] - xs[1], None

    def backward(self, ctx, dy):
        return [dy, -dy]


class Average(_Merge):
    """Mean of the inputs."""

    def forward(self, xs, training=False):
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y / len(xs), len(xs)

    def backward(self, n, dy):
        d = dy / n
        return [d] * n


class Multiply(_Merge):
    """Elementwise product of the inputs."""

    def forward(self, xs, training=False):
        y = xs[0]
        for x in xs[1:]:
            y = y * x
        return y, xs

    def backward(self, xs, dy):
        dxs = []
        for i in range(len(xs)):
            d = dy
            for j, x in enumerate(xs):
                if j != i:
                    d = d * x
            dxs.append(d)
        return dxs


class Concatenate(Layer):
    """Concatenation of the inputs along ``axis`` (default the last)."""

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def check_input_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"{self.name}: expects a list of at least 2 inputs, "
                             f"got {input_shape}")
        rank = len(input_shape[0])
        axis = self.axis % rank
        if axis == 0 or any(len(s) != rank for s in input_shape):
            raise ValueError(f"{self.name}: cannot concatenate {input_shape} on axis {self.axis}")
        for s in input_shape[1:]:
            if any(a != b for i, (a, b) in enumerate(zip(s, input_shape[0]))
                   if i not in (0, axis) and None not in (a, b)):
                raise ValueError(f"{self.name}: shapes {input_shape} differ off axis "
                                 f"{self.axis}")

    def compute_output_shape(self, input_shape):
        axis = self.axis % len(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out = list(input_shape[0])
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def forward(self, xs, training=False):
        xp = namespace(*xs)
        return xp.concat(xs, axis=self.axis), [x.shape[self.axis] for x in xs]

    def backward(self, sizes, dy):
        axis = self.axis % dy.ndim
        dxs, start = [], 0
        for n in sizes:
            index = (slice(None),) * axis + (slice(start, start + n),)
            dxs.append(dy[index + (...,)])
            start += n
        return dxs

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def _functional(cls):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)

    merge.__name__ = cls.__name__.lower()
    merge.__doc__ = f"Functional form of :class:`{cls.__name__}`: ``{merge.__name__}([a, b])``."
    return merge


add = _functional(Add)
subtract = _functional(Subtract)
multiply = _functional(Multiply)
average = _functional(Average)
concatenate = _functional(Concatenate)


# Issue 10: Maximum, Minimum and Dot.
class _Extremum(_Merge):
    """Elementwise extremum; the gradient goes to the input that holds it (the first one
    on ties, as TensorFlow's ``maximum`` gradient routes ``x >= y`` to ``x``)."""

    def _better(self, a, b):
        raise NotImplementedError

    def forward(self, xs, training=False):
        xp = namespace(*xs)
        y = xs[0]
        which = xp.zeros(tuple(y.shape), dtype=xp.int64, device=getattr(y, "device", None))
        for i, x in enumerate(xs[1:], start=1):
            take = self._better(x, y)
            y = xp.where(take, x, y)
            which = xp.where(take, xp.full_like(which, i), which)
        return y, (which, len(xs))

    def backward(self, ctx, dy):
        which, n = ctx
        xp = namespace(dy)
        zero = xp.zeros_like(dy)
        return [xp.where(which == i, dy, zero) for i in range(n)]


class Maximum(_Extremum):
    """Elementwise maximum of the inputs."""

    def _better(self, a, b):
        return a > b


class Minimum(_Extremum):
    """Elementwise minimum of the inputs."""

    def _better(self, a, b):
        return a < b


class Dot(Layer):
    """Dot product of two tensors along ``axes``, per sample (Keras's ``batch_dot``): the
    output holds the first input's other axes, then the second's; ``(batch, n)`` with
    ``(batch, n)`` gives ``(batch, 1)``.

    Parameters
    ----------
    axes : int or tuple of two ints
        The axis of each input to contract (not the batch axis).
    normalize : bool, default=False
        L2-normalize both inputs along their axis first, so the output is the cosine
        similarity (Keras's ``ops.normalize``, epsilon 1e-7).
    """

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        ok = isinstance(axes, int) or (isinstance(axes, (list, tuple)) and len(axes) == 2
                                       and all(isinstance(a, int) for a in axes))
        if not ok or isinstance(axes, bool):
            raise TypeError(f"{self.name}: axes must be an int or a tuple of two ints. "
                            f"Received: axes={axes!r}")
        self.axes = axes if isinstance(axes, int) else list(axes)
        self.normalize = bool(normalize)

    def _resolve(self, ranks):
        if isinstance(self.axes, int):
            pair = [self.axes % r for r in ranks] if self.axes < 0 else [self.axes] * 2
        else:
            pair = [a % r if a < 0 else a for a, r in zip(self.axes, ranks)]
        return pair

    def check_input_shape(self, input_shape):
        if not isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{self.name}: expects a list of 2 inputs, got {input_shape}")
        a0, a1 = self._resolve([len(s) for s in input_shape])
        s0, s1 = input_shape
        if min(len(s0), len(s1)) < 2 or 0 in (a0, a1) or a0 >= len(s0) or a1 >= len(s1):
            raise ValueError(f"{self.name}: cannot contract axes {self.axes} of inputs of "
                             f"shapes {input_shape} (not the batch axis)")
        if None not in (s0[a0], s1[a1]) and s0[a0] != s1[a1]:
            raise ValueError(f"{self.name}: incompatible input shapes: axis values "
                             f"{s0[a0]} (at axis {a0}) != {s1[a1]} (at axis {a1}). "
                             f"Full input shapes: {input_shape}")

    def compute_output_shape(self, input_shape):
        a0, a1 = self._resolve([len(s) for s in input_shape])
        s0 = [d for i, d in enumerate(input_shape[0]) if i != a0]
        s1 = [d for i, d in enumerate(input_shape[1]) if i not in (0, a1)]
        out = s0 + s1
        return tuple(out + [1] if len(out) == 1 else out)

    def forward(self, xs, training=False):
        xp = namespace(*xs)
        a0, a1 = self._resolve([x.ndim for x in xs])
        x, y = xs
        norms = None
        if self.normalize:
            (x, cx), (y, cy) = l2_normalize(x, (a0,), 1e-7), l2_normalize(y, (a1,), 1e-7)
            norms = (cx, cy)
        p0 = [i for i in range(x.ndim) if i != a0] + [a0]
        p1 = [0, a1] + [i for i in range(1, y.ndim) if i != a1]
        xt, yt = xp.permute_dims(x, tuple(p0)), xp.permute_dims(y, tuple(p1))
        b, d = x.shape[0], x.shape[a0]
        x3 = xp.reshape(xt, (b, -1, d))
        y3 = xp.reshape(yt, (b, d, -1))
        out = x3 @ y3
        rest = tuple(xt.shape[1:-1]) + tuple(yt.shape[2:])
        shape = (b,) + (rest if rest else (1,))
        return xp.reshape(out, shape), (x3, y3, xt.shape, yt.shape, p0, p1, norms)

    def backward(self, ctx, dy):
        x3, y3, xt_shape, yt_shape, p0, p1, norms = ctx
        xp = namespace(dy)
        d3 = xp.reshape(dy, (x3.shape[0], x3.shape[1], y3.shape[2]))
        dx = xp.reshape(d3 @ xp.matrix_transpose(y3), tuple(xt_shape))
        dw = xp.reshape(xp.matrix_transpose(x3) @ d3, tuple(yt_shape))
        dx = xp.permute_dims(dx, tuple(_inverse(p0)))
        dw = xp.permute_dims(dw, tuple(_inverse(p1)))
        if norms is not None:
            dx, dw = l2_normalize_grad(norms[0], dx), l2_normalize_grad(norms[1], dw)
        return [dx, dw]

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def _inverse(perm):
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


maximum = _functional(Maximum)
minimum = _functional(Minimum)


def dot(inputs, axes=-1, **kwargs):
    """Functional form of :class:`Dot`: ``dot([a, b], axes=-1)``."""
    return Dot(axes=axes, **kwargs)(inputs)
