"""From the arrays a user passes to ``fit``/``evaluate``/``predict`` to checked arrays on
the backend's device: shapes against the model's inputs, targets against its losses, sample
and class weights; and the batches of an epoch."""

from xpnet import arguments

__all__ = ["DataAdapter", "shape_of", "take_batch"]


class DataAdapter:
    """The data half of :class:`xpnet.engine.trainer.Trainer`."""

    def _adapt_x(self, x, what):
        if x is None:
            raise ValueError(f"{self.name}: {what} needs input data x")
        arguments.check_x(self.name, what, x, len(getattr(self, "inputs", None) or [x]))
        from xpnet.engine import calls

        if self._graph is None and calls.is_call_based(self):
            self._build_call_based(x)
        if isinstance(x, dict):
            self._require_graph(what) if not getattr(self, "_specs_known", False) else None
            tree = getattr(self, "_input_tree", None)
            names = list(tree) if isinstance(tree, dict) else [t.name for t in self.inputs]
            missing = [k for k in names if k not in x]
            if missing:
                raise ValueError(f"{self.name}: input data lacks {missing}")
            x = [x[k] for k in names]
        if self._graph is None and not getattr(self, "_specs_known", False):
            first = x[0] if isinstance(x, (list, tuple)) else x
            self._ensure_graph((None,) + tuple(shape_of(first)[1:]))
        xs = _as_list(x, len(self.inputs), "input")
        backend = self.backend
        out = []
        for t, a in zip(self.inputs, xs):
            shape = shape_of(a)
            if len(shape) != len(t.shape) or any(e is not None and e != g for e, g in
                                                 zip(t.shape[1:], shape[1:])):
                raise ValueError(f"{self.name}: input {t.name!r} expects shape "
                                 f"{t.shape}, got data of shape {shape}")
            out.append(backend.asarray(a, dtype=backend.dtype(t.dtype)))
        n = out[0].shape[0]
        if any(a.shape[0] != n for a in out):
            raise ValueError(f"{self.name}: inputs have different numbers of samples: "
                             f"{[a.shape[0] for a in out]}")
        if n == 0:
            raise ValueError(f"{self.name}: {what} got empty input data (0 samples)")
        return out

    def _adapt_y(self, y, n, what):
        self._sync_compile()
        if y is None:
            raise ValueError(f"{self.name}: {what} needs targets y")
        if isinstance(y, dict):
            y = [y[self._output_name(k)] for k in range(len(self.outputs))]
        elif self._multi_out and isinstance(y, (list, tuple)) and \
                len(y) != len(self.outputs):
            y = [a for a in y]
        ys = _as_list(y, len(self.outputs), "target")
        backend, out = self.backend, []
        for loss, t, a in zip(self._losses, self.outputs, ys):
            if not hasattr(a, "shape"):
                a = backend.asarray(a)
            if a.shape[0] != n:
                raise ValueError(f"{self.name}: {n} input samples but {a.shape[0]} targets")
            if (loss is None or not loss.sparse_labels) and len(a.shape) == len(t.shape) - 1 \
                    and t.shape[-1] == 1:
                # targets (n,) for a one-unit output (n, 1): Keras expands them to the
                # output's rank (``squeeze_or_expand_to_same_rank``)
                a = backend.xp.reshape(backend.asarray(a), tuple(a.shape) + (1,))
            if loss is None:
                out.append(backend.asarray(a))
                continue
            loss.validate(a, t.shape)
            a, xp = backend.asarray(a), backend.xp
            if loss.sparse_labels:
                if a.ndim == len(t.shape) and a.shape[-1] == 1:
                    a = xp.reshape(a, tuple(a.shape[:-1]))
                out.append(xp.astype(a, xp.int64))
            else:
                out.append(xp.astype(a, backend.dtype(t.dtype)))
        return out

    def _adapt_weights(self, sample_weight, n):
        if sample_weight is None:
            return None
        w = self.backend.asarray(sample_weight, dtype=getattr(self.backend.xp, self.dtype))
        if w.shape[0] != n:
            raise ValueError(f"{self.name}: {n} samples but {w.shape[0]} sample weights")
        return w

    def _class_weights(self, class_weight, y, sw):
        arguments.check_class_weight(self.name, class_weight, self.outputs[0].shape[-1])
        xp = self.backend.xp
        labels = y if y.ndim == 1 else xp.argmax(y, axis=-1) if y.shape[-1] > 1 else \
            xp.astype(xp.reshape(y, (-1,)) > 0.5, xp.int64)
        n_classes = max(int(xp.max(labels)) + 1, max(class_weight) + 1)
        table = [float(class_weight.get(c, 1.0)) for c in range(n_classes)]
        table = xp.asarray(table, dtype=getattr(xp, self.dtype), device=self.backend.device)
        w = xp.take(table, xp.astype(labels, xp.int64), axis=0)
        return w if sw is None else w * sw


def _as_list(x, n, what):
    if isinstance(x, (list, tuple)):
        if len(x) != n:
            raise ValueError(f"expected {n} {what} array(s), got {len(x)}")
        return list(x)
    if n != 1:
        raise ValueError(f"expected a list of {n} {what} arrays, got one array")
    return [x]


def take_batch(xp, xs, ys, sw, perm, start, batch_size):
    """The batch starting at ``start``: a slice, or a gather by the shuffled indices. The
    stop is clipped to the number of samples: the array API leaves out-of-bounds slice stops
    unspecified (array-api-strict refuses them), so a short last batch must not rely on them."""
    stop = min(start + batch_size, xs[0].shape[0])
    if perm is None:
        index = slice(start, stop)
        return ([a[index, ...] for a in xs], [a[index, ...] for a in ys],
                None if sw is None else sw[index])
    idx = perm[start:stop]
    return ([xp.take(a, idx, axis=0) for a in xs], [xp.take(a, idx, axis=0) for a in ys],
            None if sw is None else xp.take(sw, idx, axis=0))


def shape_of(a):
    shape = getattr(a, "shape", None)
    if shape is None:
        raise TypeError(f"expected an array, got {type(a).__name__}")
    return tuple(shape)
