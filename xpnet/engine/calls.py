"""How a layer is called: eagerly (one record on a recording tape for a built-in layer, the
ops of ``call()`` for a layer written with it), symbolically (a graph node; a ``call()``
layer's output shapes found by running it on small zero arrays), and the forward/backward
pair that a ``call()`` layer gets from the tape, so the static graph engine runs it like
any built-in layer.
"""

import functools
import inspect

from xpnet.backend import get_backend
from xpnet.engine.node import KerasTensor
from xpnet.engine.node import Node
from xpnet.engine.node import flatten
from xpnet.engine.node import map_structure
from xpnet.engine.node import pack_as
from xpnet.engine.tape import Tape
from xpnet.engine.tape import Traced
from xpnet.engine.tape import recording_tape
from xpnet.engine.tape import state
from xpnet.engine.tape import unwrap

__all__ = ["call_eager", "call_symbolic", "forward_by_tape", "backward_by_tape",
           "is_call_based", "current_backend", "probing", "has_keras_tensor", "run_build",
           "move_to_backend", "TapeContext", "signature"]


def probing():
    """Whether layers are being run on zeros to find their output shapes."""
    return state().probing


def current_backend():
    """The backend of the innermost layer being called or built, else the default."""
    for layer in reversed(state().stack):
        if layer.backend is not None:
            return layer.backend
    return get_backend(None)


def has_keras_tensor(args, kwargs):
    for a in args:
        if isinstance(a, KerasTensor):
            return True
    return any(isinstance(t, KerasTensor) for t in flatten((list(args), kwargs)))


# -- signatures ------------------------------------------------------------------------------
class _Signature:
    __slots__ = ("names", "positional", "var_kw", "training", "mask", "mask_args", "need_dx")

    def __init__(self, fn):
        params = list(inspect.signature(fn).parameters.values())[1:]  # drop self
        kinds = inspect.Parameter
        self.names = {p.name for p in params}
        self.positional = [p.name for p in params
                           if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
        self.var_kw = any(p.kind == kinds.VAR_KEYWORD for p in params)
        self.training = "training" in self.names
        self.mask = "mask" in self.names
        self.mask_args = [n for n in self.names if n.endswith("_mask") and n[:-5] in self.names]
        self.need_dx = "need_dx" in self.names


@functools.lru_cache(maxsize=None)
def _signature(cls, method):
    return _Signature(getattr(cls, method))


def signature(layer, method):
    return _signature(type(layer), method)


@functools.lru_cache(maxsize=None)
def _defines_call(cls):
    from xpnet.layers.base import Layer

    return cls.call is not Layer.call, cls.forward is not Layer.forward


def is_call_based(layer):
    """Whether ``layer`` is written with ``call()`` (its gradient comes from the tape)."""
    has_call, has_forward = _defines_call(type(layer))
    return has_call and (not has_forward or getattr(layer, "_graph", 1) is None)


# -- building ------------------------------------------------------------------------------
def run_build(layer, input_shape, shape_kwargs=None):
    """``layer.build`` (a subclass's ``build`` puts the layer on the call stack itself, so
    layers built inside it find the backend; see ``Layer.__init_subclass__``)."""
    if shape_kwargs:
        layer.build(**shape_kwargs)
    else:
        layer.build(input_shape)


def run_build_body(layer, build, args, kwargs):
    """Run a subclass's ``build`` body with the layer on the call stack and a backend."""
    st = state()
    if layer.backend is None:
        layer.backend = current_backend()
    st.stack.append(layer)
    try:
        build(layer, *args, **kwargs)
    finally:
        st.stack.pop()


def _shape_of(a):
    v = unwrap(a)
    return (None,) + tuple(v.shape[1:]) if hasattr(v, "shape") and len(v.shape) else \
        tuple(getattr(v, "shape", ()))


def _build_for_call(layer, args, kwargs):
    stack = state().stack
    if stack and not getattr(layer, "_dtype_given", True):
        layer.dtype = stack[-1].dtype  # a sublayer computes in its owner's dtype
    first = next((unwrap(a) for a in flatten(list(args)) if hasattr(unwrap(a), "shape")), None)
    if first is None:
        raise TypeError(f"{layer.name}: called without an array input; got {args!r}")
    from xpnet.backend import backend_of

    build_from_args(layer, backend_of(first), args, kwargs, _shape_of)


def build_from_args(layer, backend, args, kwargs, shape_of):
    """Build ``layer`` for a call on ``args``/``kwargs`` (arrays or symbolic tensors;
    ``shape_of`` gives each one's shape): ``build(input_shape)`` from the first argument, or
    ``build(query_shape, value_shape, ...)`` matched to the call's argument names."""
    shape_params = [n for n in signature(layer, "build").positional if n.endswith("_shape")]
    if len(shape_params) > 1:
        call_sig = signature(layer, "call" if is_call_based(layer) else "forward")
        named = dict(zip(call_sig.positional, args))
        named.update(kwargs)
        shape_kwargs = {n: map_structure(shape_of, named[n[:-6]])
                        for n in shape_params if named.get(n[:-6]) is not None}
        layer.backend = backend
        run_build(layer, None, shape_kwargs)
        layer.built = True
        return
    layer.build_on(backend, map_structure(shape_of, args[0]) if args else None)


def move_to_backend(layer, backend):
    """Move the weights of ``layer`` and the layers it holds to ``backend`` (a layer built
    while its output shapes were probed, before its model chose a backend)."""
    for la in layer._all_layers():
        old = la.backend
        if old is None or old is backend:
            la.backend = backend
            continue
        xp = backend.xp
        for k, p in list(la.params.items()):
            la.params[k] = xp.asarray(backend.asarray(old.to_numpy(p)), copy=True)
        for k, g in list(la.grads.items()):
            la.grads[k] = xp.zeros(tuple(g.shape), dtype=la.params[k].dtype,
                                   device=backend.device)
        if la._rng is not None and hasattr(la, "_seed"):
            la._rng = backend.rng(la._seed)
        la.backend = backend


# -- eager calls ---------------------------------------------------------------------------
def _mask_of(x):
    if isinstance(x, Traced):
        return x.mask
    if isinstance(x, (list, tuple)):
        masks = [_mask_of(a) for a in x]
        return masks if any(m is not None for m in masks) else None
    return None


def _fill_masks(sig, args, kwargs):
    if sig.mask and "mask" not in kwargs and args:
        m = _mask_of(args[0])
        if m is not None:
            kwargs["mask"] = m
    for name in sig.mask_args:
        if name in kwargs:
            continue
        base = name[:-5]
        value = kwargs.get(base)
        if value is None and base in sig.positional:
            k = sig.positional.index(base)
            value = args[k] if k < len(args) else None
        m = _mask_of(value)
        if m is not None:
            kwargs[name] = m


def call_eager(layer, args, kwargs):
    """Call ``layer`` on arrays (or traced values): build on first use, then run ``call``
    inline or the built-in ``forward``, recording on the innermost recording tape."""
    st = state()
    kwargs = dict(kwargs)
    call_based = is_call_based(layer)
    sig = signature(layer, "call" if call_based else "forward")
    args = _training_from_args(sig, args, kwargs)
    training = kwargs.pop("training", None)
    if training is None:
        training = bool(st.training) if st.training is not None else False
    if sig.mask or sig.mask_args:
        _fill_masks(sig, args, kwargs)
    if not layer.built:
        _build_for_call(layer, args, kwargs)
    elif not call_based and args and not st.probing:
        a0 = args[0]
        v = a0.value if isinstance(a0, Traced) else a0
        layer.check_input_shape((None,) + tuple(v.shape[1:]) if hasattr(v, "shape") and
                                v.ndim else map_structure(_shape_of, a0))
    entry = st.depth == 0
    st.depth += 1
    st.stack.append(layer)
    prev, st.training = st.training, training
    try:
        if entry and not st.probing:
            for la in layer._all_layers():
                la._added_losses.clear()
        if call_based:
            tape = None if st.probing else recording_tape()
            # call() sees traced values (a watched array's leaf, else a plain wrapper), so
            # Python operators in it go through the ops on every backend
            args = [map_structure(lambda a: _as_traced(tape, a), a) for a in args]
            kw = dict(kwargs)
            if sig.training or sig.var_kw:
                kw["training"] = training
            out = layer.call(*args, **kw)
            _check_output(layer, out)
            if layer.output_shape is None:
                layer.output_shape = map_structure(_shape_of, out)
            if entry and (tape is None or st.probing):  # the caller gets plain arrays
                out = map_structure(_plain, out)
            return _after_call(layer, args, kwargs, out, not entry, None)
        return _call_forward(layer, args, kwargs, training, sig, not entry)
    finally:
        st.training = prev
        st.stack.pop()
        st.depth -= 1


def _training_from_args(sig, args, kwargs):
    """``layer(x, True)``: a positional ``training`` (as the signature places it) moves to
    the keyword arguments."""
    if "training" in sig.positional:
        k = sig.positional.index("training")
        if len(args) > k:
            kwargs["training"] = args[k]
            return list(args[:k]) + list(args[k + 1:])
    return list(args)


def _plain(a):
    if isinstance(a, Traced) and a.tape is None:
        return a.value
    if hasattr(a, "_xpnet_value"):
        return a.value
    return a


def _as_traced(tape, a):
    """A plain array as its traced value on ``tape`` (if watched) or a plain wrapper."""
    if isinstance(a, Traced) or not hasattr(a, "shape") or hasattr(a, "_xpnet_value"):
        return a
    leaf = tape.leaf(a) if tape is not None and tape._watched else None
    return Traced(a) if leaf is None else leaf


def _check_output(layer, out):
    for v in flatten(out):
        if v is not None and not hasattr(unwrap(v), "shape"):
            raise TypeError(f"{layer.name}: call() must return arrays (or lists, tuples or "
                            f"dicts of them), got {type(v).__name__}: {v!r}")


def _arrayish(a):
    return isinstance(a, Traced) or hasattr(a, "shape") or hasattr(a, "_xpnet_value")


def _call_forward(layer, args, kwargs, training, sig, nested):
    """A built-in layer: ``forward``, and ONE record whose VJP is its ``backward``."""
    st = state()
    tape = None if st.probing else recording_tape()
    one = len(args) == 1 and not kwargs and _arrayish(args[0])  # the common call: layer(x)
    vals = [unwrap(args[0])] if one else [map_structure(unwrap, a) for a in args]
    fkw = {k: map_structure(unwrap, v) for k, v in kwargs.items()} if kwargs else {}
    if sig.training or sig.var_kw:
        fkw["training"] = training
    leaves, subtree = None, None
    if tape is not None:
        flat_in = list(args) if one else flatten(list(args)) + flatten(kwargs)
        leaves = [tape.leaf(a) if _arrayish(a) else None for a in flat_in]
        subtree = layer._all_layers()
        trains = layer.trainable and any(la._trainable_names and la.trainable
                                         for la in subtree)
        if not trains and all(t is None for t in leaves):
            tape = None
    y, ctx = layer.forward(*vals, **fkw)
    if tape is None:
        return _after_call(layer, args, kwargs, y, nested, None)
    n_args = 1 if one else len(flatten(list(args)))
    kw_counts = [(k, len(flatten(v))) for k, v in kwargs.items()] if kwargs else []
    bsig = signature(layer, "backward")
    single = not isinstance(y, (list, tuple, dict))

    def vjp(dys):
        dy = dys[0] if single else pack_as(y, dys)
        skip = tape._skip
        need_dx = any(t is not None and t.id not in skip for t in leaves[:n_args])
        g = layer.backward(ctx, dy, need_dx=need_dx) if bsig.need_dx else \
            layer.backward(ctx, dy)
        tape._ran.update(id(la) for la in subtree)
        if one and not isinstance(g, (list, tuple)) and type(g).__name__ != "InputGrads":
            return [g]
        return _align_grads(layer, g, args, n_args, kw_counts)

    tape.add_layers(subtree)
    traced = tape.record([y] if single else flatten(y), leaves, vjp)
    if single and isinstance(ctx, tuple) and len(ctx) == 3 and ctx[2] is not None:
        traced[0].head = (layer, ctx, tape._records[-1])  # logits kept: see Trainer
    out = traced[0] if single else pack_as(y, traced)
    reg = layer.activity_regularizer
    if reg is not None:
        layer.add_loss(regularizer_penalty(reg, out))
    return _after_call(layer, args, kwargs, out, nested, tape)


def _align_grads(layer, g, args, n_args, kw_counts):
    """``backward``'s result as one gradient per flattened input (args, then kwargs)."""
    from xpnet.layers.base import InputGrads

    kw_grads = {}
    if isinstance(g, InputGrads):
        g, kw_grads = g.args, g.kwargs
        # a backward names its keyword gradients by parameter; the caller may have given
        # those arguments by position (Keras's ``cell(x, states)``)
        by_position = signature(layer, "forward").positional[1:len(args)]
        if len(args) > 1 and by_position and all(n in kw_grads for n in by_position):
            kw_grads = dict(kw_grads)
            g = [g] + [kw_grads.pop(n) for n in by_position]
    if g is None:
        flat = [None] * n_args
    else:
        flat = flatten([g] if len(args) == 1 else list(g))
    if len(flat) != n_args:
        raise ValueError(f"{layer.name}: backward returned {len(flat)} input gradient(s) "
                         f"for {n_args} input tensor(s)")
    for k, n in kw_counts:
        got = kw_grads.get(k)
        flat += [None] * n if got is None else flatten(got)
    return flat


def _after_call(layer, args, kwargs, out, nested, tape):
    """Attach the output's Keras mask (inside a call, where it can travel)."""
    custom = _custom_mask(type(layer))
    if not custom and not layer.supports_masking:
        return _wrap_nested(out) if nested else out
    mask_in = kwargs.get("mask")
    if mask_in is None and args:
        mask_in = _mask_of(args[0])
    if not custom and mask_in is None:
        return _wrap_nested(out) if nested else out
    first = map_structure(unwrap, args[0]) if args else None
    m = layer.compute_mask(first, mask_in)
    if m is None:
        return _wrap_nested(out) if nested else out
    m = map_structure(unwrap, m)
    if isinstance(out, Traced):
        out.mask = m
        return out
    if not nested:
        return out
    if isinstance(out, (list, tuple)):
        masks = m if isinstance(m, (list, tuple)) else [m] * len(out)
        return type(out)(_with_mask(o, k) for o, k in zip(out, masks))
    return _with_mask(out, m)


def _wrap_nested(out):
    """Inside a call, outputs stay traced values (plain wrappers where not recorded)."""
    return map_structure(lambda a: a if isinstance(a, Traced) or not hasattr(a, "shape")
                         else Traced(a), out)


def _with_mask(out, m):
    if isinstance(out, Traced):
        out.mask = m
        return out
    return Traced(unwrap(out), mask=m)


@functools.lru_cache(maxsize=None)
def _custom_mask(cls):
    from xpnet.layers.base import Layer

    return cls.compute_mask is not Layer.compute_mask


def regularizer_penalty(reg, x):
    """``reg(x)`` as an op: its gradient ``reg.grad(x)`` flows back into ``x``."""
    from xpnet.ops.core import op

    return op("regularizer", lambda v: reg(v), lambda dys, outs, v: (reg.grad(v) * dys[0],),
              (x,))


# -- symbolic calls ------------------------------------------------------------------------
class _Spec:
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), dtype


def _is_shape(s):
    return isinstance(s, (tuple, list)) and all(d is None or isinstance(d, int) for d in s)


def _specs(out_shape, dtype):
    if isinstance(out_shape, dict):
        return {k: _specs(v, dtype) for k, v in out_shape.items()}
    if _is_shape(out_shape):
        return _Spec(out_shape, dtype)
    return type(out_shape)(_specs(s, dtype) for s in out_shape)


def call_symbolic(layer, args, kwargs):
    """A graph node for ``layer`` called on KerasTensors; returns its output tensor(s)."""
    kwargs = dict(kwargs)
    args = _training_from_args(
        signature(layer, "call" if is_call_based(layer) else "forward"), args, kwargs)
    if is_call_based(layer) or getattr(layer, "_probe_shapes", False):
        specs = _probe(layer, args, kwargs)
    else:
        shapes = [map_structure(lambda t: tuple(t.shape) if hasattr(t, "shape") else t, a)
                  for a in args]
        if len(shapes) == 1:
            layer.check_input_shape(shapes[0])
            out_shape = layer.compute_output_shape(shapes[0])
        else:
            out_shape = layer.compute_output_shape(*shapes)
        specs = _specs(out_shape, layer.dtype_policy.compute_dtype)  # robust (#11): policy
    node = Node(layer, args, kwargs)
    counter = iter(range(1 << 30))
    node.outputs = map_structure(
        lambda s: KerasTensor(s.shape, s.dtype, node, next(counter), name=layer.name), specs)
    layer._inbound_nodes.append(node)
    return node.outputs


def probe_output_shape(layer, input_shape):
    """The output shape(s) of a ``call()`` layer for inputs of ``input_shape``."""
    def tensor(shape):
        return KerasTensor(shape, layer.dtype)
    arg = map_structure(tensor, input_shape) if not _is_shape(input_shape) else \
        tensor(input_shape)
    specs = _probe(layer, [arg], {})
    return map_structure(lambda s: s.shape, specs)


def _probe(layer, args, kwargs):
    """Output specs of a ``call()`` layer: run it on zeros, once per size of the unknown
    axes (2 and 3); an axis whose size follows them is unknown (None) in the output."""
    from xpnet.layers.base import _dtype_name

    backend = layer.backend or current_backend()
    xp = backend.xp
    kts = [t for t in flatten((list(args), kwargs)) if isinstance(t, KerasTensor)]
    unknown = any(d is None for t in kts for d in t.shape)
    st = state()
    runs = []
    for n in ((2, 3) if unknown else (2,)):
        def concrete(t, n=n):
            if not isinstance(t, KerasTensor):
                return t
            shape = tuple(n if d is None else d for d in t.shape)
            return xp.zeros(shape, dtype=getattr(xp, t.dtype), device=backend.device)
        cargs = [map_structure(concrete, a) for a in args]
        ckw = {k: map_structure(concrete, v) for k, v in kwargs.items()}
        prev, st.probing = st.probing, True
        try:
            out = call_eager(layer, cargs, ckw)
        finally:
            st.probing = prev
        runs.append(map_structure(unwrap, out))
    for la in layer._all_layers():
        la._movable = True
    last = flatten(runs[-1])
    specs = [_Spec(tuple(a if a == b else None for a, b in zip(v.shape, w.shape)),
                   _dtype_name(v.dtype)) for v, w in zip(flatten(runs[0]), last)]
    return pack_as(runs[0], specs)


# -- forward/backward of a call() layer ------------------------------------------------------
class TapeContext:
    """What ``forward`` of a ``call()`` layer hands its ``backward``: the tape, the traced
    inputs and outputs, and the losses added during the call (and their sum)."""

    __slots__ = ("tape", "arg_leaves", "n_args", "kw_leaves", "outs", "out_tree", "losses",
                 "penalty", "masks")

    def __init__(self, tape, arg_leaves, n_args, kw_leaves, outs, out_tree, losses, penalty):
        self.tape, self.arg_leaves, self.n_args = tape, arg_leaves, n_args
        self.kw_leaves, self.outs, self.out_tree = kw_leaves, outs, out_tree
        self.losses, self.penalty = losses, penalty
        masks = [o.mask if isinstance(o, Traced) else None for o in outs]
        self.masks = masks if any(m is not None for m in masks) else None  # for the loss


def _differentiable(a):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        return False
    from xpnet.backend import namespace

    return namespace(a).isdtype(a.dtype, "real floating")


def forward_by_tape(layer, args, kwargs, training):
    """``(y, ctx)`` for a ``call()`` layer: ``call`` runs with its inputs traced on a tape
    of its own, which ``backward_by_tape`` walks."""
    if not is_call_based(layer):
        layer.call()  # raises the error that says what to write
    tape = Tape()

    def wrap(a):
        return tape.new(a) if _differentiable(a) else a
    targs = [map_structure(wrap, a) for a in args]
    tkw = {k: (v if k == "mask" or k.endswith("_mask") else map_structure(wrap, v))
           for k, v in kwargs.items()}
    st = state()
    st.tapes.append(tape)
    try:
        out = call_eager(layer, targs, dict(tkw, training=training))
    finally:
        st.tapes.remove(tape)
    losses = [loss for la in layer._all_layers() for loss in la._added_losses]
    penalty = 0.0
    for loss in losses:
        penalty = penalty + unwrap(loss)
    flat_out = flatten(out)
    y = pack_as(out, [unwrap(o) for o in flat_out])
    kw_leaves = {k: flatten(v) for k, v in tkw.items()
                 if any(isinstance(t, Traced) for t in flatten(v))}
    arg_leaves = flatten(targs)
    ctx = TapeContext(tape, arg_leaves, len(args), kw_leaves, flat_out,
                      targs[0] if len(targs) == 1 else targs,
                      [loss for loss in losses if isinstance(loss, Traced)], penalty)
    return y, ctx


def _loss_share():
    """distributed: ``b_r / B`` inside a data-parallel training step (an added loss is a
    mean over the batch or independent of it, so the shares sum to one over the ranks);
    1.0 otherwise."""
    from xpnet import distributed

    dist = distributed.active()
    return 1.0 if dist is None or not dist.armed else dist.local_count / dist.global_count


def backward_by_tape(layer, ctx, dy, need_dx=True):
    """Walk the tape of :func:`forward_by_tape`: the weights' gradients are added into
    ``grads``; returns the inputs' gradients."""
    if not isinstance(ctx, TapeContext):
        raise NotImplementedError(f"{type(layer).__name__} ({layer.name}) has no backward")
    flat_dy = [dy] if len(ctx.outs) == 1 and not isinstance(dy, (list, tuple, dict)) \
        else flatten(dy)
    seeds = [(t, d) for t, d in zip(ctx.outs, flat_dy) if isinstance(t, Traced)]
    share = _loss_share()  # distributed: this process's share of the global batch
    for loss in ctx.losses:
        from xpnet.backend import namespace

        v = loss.value
        seed = namespace(v).ones_like(v)
        seeds.append((loss, seed if share == 1.0 else seed * share))
    if not need_dx:  # the inputs are data: layers reading them alone skip their dx
        ctx.tape._skip = frozenset(t.id for t in ctx.arg_leaves if isinstance(t, Traced))
    ct = ctx.tape.backprop(seeds)
    ctx.tape.add_variable_grads(ct)
    dxs = [ct.get(t.id) if isinstance(t, Traced) and t.tape is ctx.tape else None
           for t in ctx.arg_leaves]
    g = pack_as(ctx.out_tree, dxs)
    if ctx.kw_leaves:
        from xpnet.layers.base import InputGrads

        kw = {k: [ct.get(t.id) if isinstance(t, Traced) else None for t in leaves]
              for k, leaves in ctx.kw_leaves.items()}
        kw = {k: (v[0] if len(v) == 1 else v) for k, v in kw.items()}
        return InputGrads(g, kw)
    return g


# -- configs of layers written by users ------------------------------------------------------
def init_arguments(layer):
    """The arguments ``layer``'s constructor was called with, by name (Keras 3's automatic
    config), keeping the JSON-serialisable ones."""
    args, kwargs = getattr(layer, "_init_args", ((), {}))
    try:
        bound = inspect.signature(type(layer).__init__).bind(layer, *args, **kwargs)
    except TypeError:
        return {}
    out = {}
    for name, value in list(bound.arguments.items())[1:]:
        param = inspect.signature(type(layer).__init__).parameters[name]
        if param.kind == inspect.Parameter.VAR_KEYWORD:
            out.update({k: v for k, v in value.items() if _serialisable(v)})
        elif param.kind != inspect.Parameter.VAR_POSITIONAL and _serialisable(value):
            out[name] = value
    return out


def _serialisable(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, (list, tuple)):
        return all(_serialisable(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _serialisable(x) for k, x in v.items())
    return False


def auto_config(model):
    """The config of a subclassed model without its own ``get_config``: its constructor's
    arguments, which must all be JSON-serialisable."""
    args, kwargs = getattr(model, "_init_args", ((), {}))
    config = init_arguments(model)
    given = len(args) + len(kwargs)
    if len(config) < given:
        raise NotImplementedError(
            f"{model.name}: {type(model).__name__} was constructed with arguments that "
            "cannot be saved automatically; define get_config() (and from_config) to save it")
    return config
