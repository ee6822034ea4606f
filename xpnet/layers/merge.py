"""Merge layers: combine a list of tensors into one, for residual, dense and inception blocks."""

from xpnet.backend import namespace
from xpnet.layers.base import Layer

__all__ = ["Add", "Subtract", "Multiply", "Average", "Concatenate", "add", "subtract",
           "multiply", "average", "concatenate"]


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
