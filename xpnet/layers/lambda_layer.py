"""``Lambda``: a layer from a function written with ``keras.ops``."""

from xpnet.engine.node import map_structure
from xpnet.layers.base import Layer

__all__ = ["Lambda"]


class Lambda(Layer):
    """``y = function(inputs, **arguments)``, differentiated by the tape.

    Parameters
    ----------
    function : callable
        Written with ``keras.ops`` (so its gradient is recorded).
    output_shape : tuple or callable, default=None
        The output shape (without the batch axis), or a function of the input shape; by
        default found by running ``function`` on zeros.
    mask : callable or array, default=None
        ``mask(inputs, previous_mask)``, or a fixed mask.
    arguments : dict, default=None
        Keyword arguments for ``function``.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"{self.name}: Lambda needs a callable, got {function!r}")
        self.function, self.arguments = function, dict(arguments or {})
        self._output_shape, self._mask = output_shape, mask
        self.supports_masking = mask is not None

    def call(self, inputs, mask=None):
        return self.function(inputs, **self.arguments)

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            return super().compute_output_shape(input_shape)  # found by running it
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        batch = input_shape[0][0] if isinstance(input_shape, list) else input_shape[0]
        return map_structure(lambda d: d, (batch,) + tuple(self._output_shape))

    def compute_mask(self, inputs, mask=None):
        if callable(self._mask):
            return self._mask(inputs, mask)
        return self._mask

    def get_config(self):
        """The config, with the function itself: enough for ``clone_model`` and
        ``from_config`` in memory; a model file refuses it (see ``saving``)."""
        return {**super().get_config(), "function": self.function,
                "output_shape": self._output_shape, "mask": self._mask,
                "arguments": self.arguments}
