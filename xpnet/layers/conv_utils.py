"""Argument checks and data-format handling shared by the convolution, pooling and
reshaping layers. The engines work on channels-last arrays; a channels-first layer permutes
at its edges (on NumPy and CuPy a permutation is a view, and the engine's strided slices
read through it)."""

from xpnet.backend import namespace

__all__ = ["normalize_tuple", "normalize_padding", "normalize_data_format", "to_last",
           "to_first", "spatial", "channels", "with_spatial"]


def normalize_tuple(value, n, name, owner, minimum=1):
    """``value`` (an int or ``n`` ints) as a tuple of ``n`` ints >= ``minimum``."""
    items = (value,) * n if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != n or not all(isinstance(v, int) and not isinstance(v, bool) and
                                  v >= minimum for v in items):
        raise ValueError(f"{owner}: {name} must be an int or a tuple of {n} ints >= "
                         f"{minimum}; received {name}={value!r}")
    return items


def normalize_padding(value, owner, allow_causal=False):
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    padding = value.lower() if isinstance(value, str) else value
    if padding not in allowed:
        raise ValueError(f"{owner}: padding must be one of {allowed}; received "
                         f"padding={value!r}")
    return padding


def normalize_data_format(value, owner):
    data_format = "channels_last" if value is None else str(value).lower()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"{owner}: data_format must be 'channels_last' or 'channels_first'; "
                         f"received data_format={value!r}")
    return data_format


def to_last(x, data_format):
    """A channels-first array as channels-last (batch, *spatial, C)."""
    if data_format == "channels_last":
        return x
    return namespace(x).permute_dims(x, (0,) + tuple(range(2, x.ndim)) + (1,))


def to_first(x, data_format):
    """The inverse of :func:`to_last`."""
    if data_format == "channels_last" or x is None:
        return x
    return namespace(x).permute_dims(x, (0, x.ndim - 1) + tuple(range(1, x.ndim - 1)))


def spatial(shape, data_format):
    """The spatial sizes of a shape."""
    return tuple(shape[1:-1]) if data_format == "channels_last" else tuple(shape[2:])


def channels(shape, data_format):
    return shape[-1] if data_format == "channels_last" else shape[1]


def with_spatial(batch, sizes, chans, data_format):
    """A full shape from its parts."""
    if data_format == "channels_last":
        return (batch,) + tuple(sizes) + (chans,)
    return (batch, chans) + tuple(sizes)
