"""Symbolic tensors and graph nodes (the functional API), and nested structures.

A :class:`Node` is one call of a layer on symbolic tensors: its positional and keyword
arguments as given (tensors inside lists and dicts included), and its outputs, several when
the layer returns several.
"""

import itertools

__all__ = ["KerasTensor", "Node", "flatten", "pack_as", "map_structure"]


class KerasTensor:
    """A symbolic tensor: the shape (batch axis ``None``) and dtype of a value in a
    functional graph, and the node that makes it."""

    def __init__(self, shape, dtype="float32", node=None, index=0, name=None):
        self.shape, self.dtype, self.node, self.index = tuple(shape), dtype, node, index
        self.name = name

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"


class Node:
    """One call of ``layer``: ``args`` and ``kwargs`` as given, ``outputs`` as returned
    (a KerasTensor, or a list/tuple/dict of them)."""

    _ids = itertools.count()

    def __init__(self, layer, args=(), kwargs=None, outputs=None):
        self.layer, self.args, self.kwargs = layer, tuple(args), dict(kwargs or {})
        self.outputs = outputs
        self.id = next(Node._ids)

    @property
    def inputs(self):
        """The symbolic tensors among the arguments, in order."""
        return [t for t in flatten((self.args, self.kwargs)) if isinstance(t, KerasTensor)]

    @property
    def flat_outputs(self):
        return [t for t in flatten(self.outputs) if isinstance(t, KerasTensor)]


def flatten(structure):
    """The leaves of nested lists, tuples and dicts (dicts in insertion order)."""
    out = []
    _flatten_into(structure, out)
    return out


def _flatten_into(s, out):
    if isinstance(s, (list, tuple)):
        for item in s:
            _flatten_into(item, out)
    elif isinstance(s, dict):
        for item in s.values():
            _flatten_into(item, out)
    else:
        out.append(s)


def pack_as(structure, leaves):
    """``leaves`` (a flat sequence) put back into the shape of ``structure``."""
    it = iter(leaves)
    result = _pack(structure, it)
    return result


def _pack(s, it):
    if isinstance(s, list):
        return [_pack(item, it) for item in s]
    if isinstance(s, tuple):
        return tuple(_pack(item, it) for item in s)
    if isinstance(s, dict):
        return {k: _pack(v, it) for k, v in s.items()}
    return next(it)


def map_structure(fn, structure):
    if isinstance(structure, list):
        return [map_structure(fn, s) for s in structure]
    if isinstance(structure, tuple):
        return tuple(map_structure(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    return fn(structure)
