"""Packing a model's trainable weights into one flat buffer per dtype."""

import math

__all__ = ["FlatParams"]


class FlatParams:
    """One flat buffer per dtype for the trainable weights and one for their gradients;
    the layers' ``params``/``grads`` entries become views of them, so the optimizer updates
    every weight in one kernel call and zeroing the gradients is one fill."""

    def __init__(self, pairs, backend):
        xp = backend.xp
        self.groups, self.views = [], []
        self.layout = []  # (flat buffer, [(layer, name, offset, size, shape)]) for saving
        by_dtype = {}
        for layer, name in pairs:
            by_dtype.setdefault(str(layer.params[name].dtype), []).append((layer, name))
        for group in by_dtype.values():
            dtype = group[0][0].params[group[0][1]].dtype
            total = sum(math.prod(la.params[k].shape) for la, k in group)
            flat_p = xp.empty((total,), dtype=dtype, device=backend.device)
            flat_g = xp.zeros((total,), dtype=dtype, device=backend.device)
            offset = 0
            entries = []
            self.layout.append((flat_p, entries))
            for la, k in group:
                shape = tuple(la.params[k].shape)
                n = math.prod(shape)
                flat_p[offset:offset + n] = xp.reshape(la.params[k], (n,))
                la.params[k] = xp.reshape(flat_p[offset:offset + n], shape)
                la.grads[k] = xp.reshape(flat_g[offset:offset + n], shape)
                self.views.append((la, k, la.params[k], la.grads[k]))
                entries.append((la, k, offset, n, shape))
                offset += n
            self.groups.append((flat_g, flat_p))

    def valid(self):
        """False once something rebound a weight (another model packed a shared layer)."""
        return all(la.params[k] is p and la.grads[k] is g for la, k, p, g in self.views)
