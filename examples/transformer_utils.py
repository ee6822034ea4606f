"""Shared by the Transformer examples: a training step over layers called by hand.

The examples chain the layers' ``forward``/``backward`` themselves (the layer contract), so
they need the weights of every layer, including the sublayers inside the Transformer
blocks: :func:`leaves` walks a layer's attributes for them, and :class:`Trainer` zeroes
their gradients, and applies one optimizer step to all of them.
"""

import math

from xpnet import kernels
from xpnet.backend import namespace
from xpnet.layers import Layer


def leaves(*layers):
    """The given layers and every layer held in their attributes (alone, in lists, in
    dicts), each once."""
    out, seen = [], set()

    def walk(obj):
        if isinstance(obj, Layer):
            if id(obj) not in seen:
                seen.add(id(obj))
                out.append(obj)
                for value in vars(obj).values():
                    walk(value)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item)
    for layer in layers:
        walk(layer)
    return out


class Trainer:
    """Zero the gradients, let ``step`` run forward and backward, apply the optimizer."""

    def __init__(self, layers, optimizer):
        self.layers, self.optimizer = leaves(*layers), optimizer

    def count_params(self):
        return sum(math.prod(p.shape) for layer in self.layers for p in layer.params.values())

    def step(self, fn):
        for layer in self.layers:
            layer.zero_grads()
        loss = fn()
        pairs = [(layer.grads[k], layer.params[k]) for layer in self.layers
                 for k in layer.grads]
        self.optimizer.apply_gradients(pairs)
        return loss


def sequence_loss(logits, targets, weights):
    """Mean cross-entropy over the weighted positions, and ``dlogits``: ``logits`` (B, T, C),
    ``targets`` (B, T) ints, ``weights`` (B, T) (0 on padding)."""
    xp = namespace(logits)
    b, t, c = logits.shape
    w = xp.reshape(xp.astype(weights, logits.dtype), (-1,))
    loss, dz = kernels.softmax_cross_entropy(xp.reshape(logits, (-1, c)),
                                             xp.reshape(targets, (-1,)), w)
    total = xp.sum(w)
    scale = (b * t) / total  # the kernel divides by B*T: make it a mean over real tokens
    return xp.sum(loss * w) / total, xp.reshape(dz * scale, (b, t, c))
