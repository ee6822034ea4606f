"""Define-by-run: traced values, the tape that records what is computed from them, and the
reverse walk that turns the record into gradients (Chainer's scheme on NumPy and CuPy).

A :class:`Traced` is a thin wrapper around a backend array. It is made when a tape watches
an input, when a trainable :class:`~xpnet.engine.variables.Variable` is read under a
recording tape, and for the outputs of everything recorded. Each ``xpnet.ops`` function
called with a traced argument appends one record (its VJP and the ids of its inputs and
outputs) to the innermost recording tape; a built-in layer appends ONE record whose VJP is
its own hand-written ``backward``. Plain arrays in, plain arrays out: code that never
traces pays one thread-local look-up per op.

:meth:`Tape.backprop` walks the records in reverse, summing cotangents where a value fans
out, and drops each record once it is used, so memory falls as the backward pass runs.
"""

import threading

__all__ = ["Traced", "Tape", "GradientTape", "recording_tape", "unwrap", "state"]

_STATE = threading.local()


def state():
    """This thread's engine state: the stack of recording tapes, the training flag of the
    enclosing layer call, the call depth and whether shapes are being probed."""
    s = getattr(_STATE, "s", None)
    if s is None:
        s = _STATE.s = _State()
    return s


class _State:
    __slots__ = ("tapes", "training", "depth", "probing", "stack")

    def __init__(self):
        self.tapes, self.training, self.depth, self.probing = [], None, 0, False
        self.stack = []  # the layers whose call is running, outermost first


def recording_tape():
    """The innermost tape that is recording, or None."""
    tapes = state().tapes
    return tapes[-1] if tapes else None


class Traced:
    """A backend array seen by a tape (``tape`` and ``id`` set), or just an array carrying a
    Keras mask between layers (``tape`` None).

    It behaves like an array for the code in ``call()``: arithmetic operators, indexing,
    ``shape``, ``dtype``, ``ndim`` and ``.T`` go through :mod:`xpnet.ops`, so they are
    recorded too.
    """

    __slots__ = ("value", "tape", "id", "mask", "head", "__weakref__")
    __array_priority__ = 1000  # NumPy defers to our reflected operators
    __array_ufunc__ = None

    def __init__(self, value, tape=None, id=None, mask=None):
        self.value, self.tape, self.id, self.mask = value, tape, id, mask
        self.head = None  # (layer, ctx, record) when a softmax/sigmoid layer made it

    shape = property(lambda self: tuple(self.value.shape))
    dtype = property(lambda self: self.value.dtype)
    ndim = property(lambda self: self.value.ndim)
    size = property(lambda self: self.value.size)

    def __len__(self):
        return self.value.shape[0]

    def __repr__(self):
        return f"<Traced shape={self.shape}, dtype={self.dtype}>"

    def numpy(self):
        from xpnet.backend import backend_of

        return backend_of(self.value).to_numpy(self.value)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def __float__(self):
        return float(self.value)

    def __int__(self):
        return int(self.value)

    def __bool__(self):
        return bool(self.value)

    def __index__(self):
        return int(self.value)


def unwrap(a):
    """The backend array behind ``a`` (a Traced, a Variable, or an array)."""
    if isinstance(a, Traced):
        return a.value
    value = getattr(a, "_xpnet_value", None)
    return a if value is None else value()


class _Record:
    __slots__ = ("vjp", "ins", "outs")

    def __init__(self, vjp, ins, outs):
        self.vjp, self.ins, self.outs = vjp, ins, outs


class Tape:
    """A record of operations on traced values, in the order they ran.

    Parameters
    ----------
    persistent : bool, default=False
        Keep the record after a gradient walk, so that several gradients can be taken.
    """

    def __init__(self, persistent=False):
        self.persistent = persistent
        self._records, self._next = [], 0
        self._var_leaves = {}  # id(Variable) -> (Variable, Traced)
        self._watched = {}  # id(array) -> (array, Traced)
        self._layers = {}  # id(layer) -> layer: layers whose backward adds into grads
        self._ran = set()  # ids of the layers whose recorded backward has run
        self._skip = frozenset()  # ids of leaves whose gradient nobody wants (data inputs)
        self._used = False

    # -- making traced values ------------------------------------------------------------
    def new(self, value, mask=None):
        t = Traced(value, self, self._next, mask)
        self._next += 1
        return t

    def watch(self, x):
        """Trace ``x`` (an array, a Variable, or a list of them) from here on; returns the
        traced value(s), on which Python operators are recorded too."""
        if isinstance(x, (list, tuple)):
            return type(x)(self.watch(a) for a in x)
        if getattr(x, "_xpnet_value", None) is not None:
            return self.variable_leaf(x, force=True)
        if isinstance(x, Traced):
            if x.tape is self:
                return x
            leaf = self.new(x.value, x.mask)  # a value traced elsewhere: a leaf here
            self._watched[id(x.value)] = (x.value, leaf)
            return leaf
        entry = self._watched.get(id(x))
        if entry is None or entry[0] is not x:
            entry = self._watched[id(x)] = (x, self.new(x))
        return entry[1]

    def variable_leaf(self, var, force=False):
        entry = self._var_leaves.get(id(var))
        if entry is not None:
            return entry[1]
        if not force and not var.trainable:
            return None
        leaf = self.new(var.value)
        self._var_leaves[id(var)] = (var, leaf)
        return leaf

    def leaf(self, a):
        """``a`` as a value of this tape, or None when the tape does not trace it."""
        if isinstance(a, Traced):
            if a.tape is self:
                return a
            entry = self._watched.get(id(a.value))
            return entry[1] if entry is not None and entry[0] is a.value else None
        if getattr(a, "_xpnet_value", None) is not None:
            return self.variable_leaf(a)
        if self._watched:
            entry = self._watched.get(id(a))
            if entry is not None and entry[0] is a:
                return entry[1]
        return None

    # -- recording -----------------------------------------------------------------------
    def record(self, outs, ins, vjp):
        """Append one record: ``outs`` (arrays) computed from ``ins`` (Traced of this tape,
        or None for inputs that need no gradient); ``vjp(dys) -> dxs`` maps the outputs'
        cotangents (None where none arrived) to the inputs'. Returns the outputs traced."""
        traced = [self.new(o) for o in outs]
        self._records.append(_Record(vjp, [None if t is None else t.id for t in ins],
                                     [t.id for t in traced]))
        return traced

    def add_layers(self, layers):
        """Layers whose ``grads`` a recorded backward adds into."""
        for la in layers:
            self._layers[id(la)] = la

    # -- the reverse walk ----------------------------------------------------------------
    def backprop(self, seeds):
        """Cotangents of every leaf reached from ``seeds`` (``(Traced, cotangent)`` pairs):
        ``{id: array}``. Records are dropped as they are used unless ``persistent``."""
        if self._used and not self.persistent:
            raise RuntimeError("a non-persistent GradientTape can compute gradients only "
                               "once; use GradientTape(persistent=True) for more")
        self._used = True
        ct = {}
        for t, g in seeds:
            if t is not None and g is not None and t.tape is self:
                ct[t.id] = g if t.id not in ct else ct[t.id] + g
        records = self._records
        for k in range(len(records) - 1, -1, -1):
            rec = records[k]
            if not self.persistent:
                records[k] = None
            if rec is None:
                continue
            dys = [ct.pop(i, None) for i in rec.outs]
            if all(d is None for d in dys):
                continue
            dxs = rec.vjp(dys)
            for i, dx in zip(rec.ins, dxs):
                if i is not None and dx is not None:
                    ct[i] = dx if i not in ct else ct[i] + dx
        if not self.persistent:
            self._records = []
        return ct

    def add_variable_grads(self, ct):
        """Add the cotangents of the variables read directly into their layers' ``grads``
        (the layer contract: gradients accumulate)."""
        for var, leaf in self._var_leaves.values():
            g = ct.get(leaf.id)
            if g is not None and var.layer is not None and var.name in var.layer.grads:
                var.layer.grads[var.name] += g


class GradientTape:
    """Record operations, then take gradients, as ``tf.GradientTape``.

    >>> with xpnet.GradientTape() as tape:          # doctest: +SKIP
    ...     loss = loss_fn(y, model(x, training=True))
    >>> grads = tape.gradient(loss, model.trainable_weights)

    Trainable variables read under the tape are watched automatically; ``tape.watch(x)``
    traces an input. ``gradient`` gives None for a source the target does not reach.
    """

    def __init__(self, persistent=False, watch_accessed_variables=True):
        if not watch_accessed_variables:
            raise NotImplementedError("GradientTape(watch_accessed_variables=False) is not "
                                      "supported: trainable variables are always watched")
        self._tape = Tape(persistent)

    def __enter__(self):
        state().tapes.append(self._tape)
        return self

    def __exit__(self, *exc):
        tapes = state().tapes
        if tapes and tapes[-1] is self._tape:
            tapes.pop()
        return False

    def watch(self, x):
        """Trace ``x`` (arrays or Variables); returns the traced value(s), on which Python
        operators are recorded too (``ops`` functions record on ``x`` itself)."""
        return self._tape.watch(x)

    def stop_recording(self):
        """A context in which nothing is recorded."""
        return _Paused(self._tape)

    def reset(self):
        self._tape = Tape(self._tape.persistent)
        tapes = state().tapes
        if tapes and tapes[-1] is not self._tape:
            tapes[-1] = self._tape

    def gradient(self, target, sources, output_gradients=None):
        """d(sum of ``target``)/d``sources``: a structure like ``sources`` of arrays (None
        where the target does not depend on a source)."""
        tape = self._tape
        if recording_tape() is tape:
            raise RuntimeError("call tape.gradient after the `with GradientTape()` block")
        targets = target if isinstance(target, (list, tuple)) else [target]
        grads_out = output_gradients if isinstance(output_gradients, (list, tuple)) else \
            [output_gradients] * len(targets)
        seeds = []
        for t, g in zip(targets, grads_out):
            if isinstance(t, Traced) and t.tape is tape:
                seeds.append((t, g if g is None or not isinstance(g, Traced) else g.value))
        for la in tape._layers.values():  # built-in layers' backward adds into grads
            la.zero_grads()
        ran = tape._ran = set()
        filled = []
        for t, g in seeds:
            if g is None:
                from xpnet.backend import namespace

                g = namespace(t.value).ones(t.value.shape, dtype=t.value.dtype,
                                            device=_device(t.value))
            filled.append((t, g))
        ct = tape.backprop(filled)
        flat, rebuild = _flatten_sources(sources)
        out = [self._source_grad(s, ct, ran) for s in flat]
        return rebuild(out)

    def _source_grad(self, s, ct, ran):
        tape = self._tape
        if getattr(s, "_xpnet_value", None) is not None:
            entry = tape._var_leaves.get(id(s))
            g = None if entry is None else ct.get(entry[1].id)
            layer = s.layer
            if layer is not None and id(layer) in ran and s.name in layer.grads:
                from xpnet.backend import namespace

                own = namespace(layer.grads[s.name]).asarray(layer.grads[s.name], copy=True)
                g = own if g is None else g + own
            return g
        leaf = tape.leaf(s)
        return None if leaf is None else ct.get(leaf.id)


def _device(a):
    from array_api_compat import device

    return device(a)


def _flatten_sources(sources):
    if isinstance(sources, dict):
        keys = list(sources)
        return [sources[k] for k in keys], lambda out: dict(zip(keys, out))
    if isinstance(sources, (list, tuple)):
        return list(sources), (lambda out: type(sources)(out) if isinstance(sources, tuple)
                               else out)
    return [sources], lambda out: out[0]


class _Paused:
    def __init__(self, tape):
        self.tape = tape

    def __enter__(self):
        tapes = state().tapes
        self._saved = list(tapes)
        tapes[:] = [t for t in tapes if t is not self.tape]

    def __exit__(self, *exc):
        state().tapes[:] = self._saved
        return False
