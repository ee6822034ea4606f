"""``keras.ops``: array functions written once against the array API, each with its VJP.

Called on plain arrays an op only computes. Called while a tape records, with an argument
the tape traces (a watched input, a trainable Variable, an earlier op's result), it also
appends one record: the VJP, which maps the output's cotangent to the inputs'.
"""

import builtins
import math

from xpnet.backend import backend_of
from xpnet.backend import get_backend
from xpnet.backend import namespace
from xpnet.engine.tape import Traced
from xpnet.engine.tape import recording_tape
from xpnet.engine.tape import state
from xpnet.engine.tape import unwrap

__all__ = [
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "square",
    "sqrt", "abs", "absolute", "exp", "log", "log1p", "expm1", "sin", "cos", "tanh",
    "reciprocal", "sign", "floor", "ceil", "round", "maximum", "minimum", "clip", "where",
    "matmul", "dot", "einsum", "tensordot", "reshape", "transpose", "expand_dims",
    "squeeze", "concatenate", "stack", "split", "broadcast_to", "tile", "repeat", "flip",
    "moveaxis", "swapaxes", "take", "take_along_axis", "get_item", "sum", "mean", "max",
    "min", "prod", "var", "std", "logsumexp", "argmax", "argmin", "all", "any", "equal",
    "not_equal", "greater", "greater_equal", "less", "less_equal", "logical_and",
    "logical_or", "logical_not", "isnan", "isfinite", "cast", "convert_to_tensor",
    "convert_to_numpy", "stop_gradient", "shape", "ndim", "size", "zeros", "ones", "full",
    "zeros_like", "ones_like", "full_like", "arange", "eye", "linspace", "norm", "erf",
    "cumsum", "pad", "slice", "one_hot", "dtype", "is_tensor",
]


# -- the recording machinery -------------------------------------------------------------
def _xp(*vals):
    arrays = [v for v in vals if hasattr(v, "shape") and hasattr(v, "dtype")]
    if not arrays:
        return get_backend(None).xp
    return namespace(*arrays)


def op(name, fn, vjp, args, n_out=1):
    """Run ``fn(*values)``; if a recording tape traces one of ``args``, record
    ``vjp(dys, outs, *values) -> grads`` (one per argument, None where none)."""
    values = [unwrap(a) for a in args]
    try:
        out = fn(*values)
    except TypeError as e:
        dtypes = [str(getattr(v, "dtype", type(v).__name__)) for v in values]
        raise TypeError(f"ops.{name}: unsupported argument type(s) {dtypes}: {e}") from None
    tape = recording_tape()
    if tape is None or state().probing:
        return _keep_wrapped(out, args, n_out)
    ins = [tape.leaf(a) if _maybe_traced(a) else None for a in args]
    if builtins.all(i is None for i in ins):
        return _keep_wrapped(out, args, n_out)
    outs = list(out) if n_out != 1 else [out]
    traced = tape.record(outs, ins, lambda dys: vjp(dys, outs, *values))
    return traced if n_out != 1 else traced[0]


def _keep_wrapped(out, args, n_out):
    """Outside a tape, results computed from Variables or traced values stay wrapped, so
    that Python operators keep going through the ops (array-api-strict and CuPy arrays do
    not hand an operator over to a Variable the way NumPy does)."""
    if not builtins.any(isinstance(a, Traced) or hasattr(a, "_xpnet_value") for a in args):
        return out
    if n_out != 1:
        return [Traced(o) for o in out]
    return Traced(out)


def _maybe_traced(a):
    return hasattr(a, "shape") or isinstance(a, Traced)


def _unbroadcast(g, like, xp):
    """Sum ``g`` down to the shape of ``like`` (undo broadcasting); None if ``like`` is a
    Python scalar."""
    shape = getattr(like, "shape", None)
    if shape is None:
        return None
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    lead = g.ndim - len(shape)
    if lead > 0:
        g = xp.sum(g, axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    if axes:
        g = xp.sum(g, axis=axes, keepdims=True)
    return xp.reshape(g, shape)


def _unary(name, f, df):
    """An elementwise op ``f(x, xp)`` with derivative ``df(dy, y, x, xp)``."""
    def fn(x):
        return op(name, lambda v: f(v, _xp(v)), lambda dys, outs, v: (
            df(dys[0], outs[0], v, _xp(v)),), (x,))
    fn.__name__ = name
    return fn


def _binary(name, f, da, db):
    def fn(x1, x2):
        def vjp(dys, outs, a, b):
            xp = _xp(a, b)
            dy = dys[0]
            return (_unbroadcast(da(dy, outs[0], a, b, xp), a, xp) if hasattr(a, "shape")
                    else None,
                    _unbroadcast(db(dy, outs[0], a, b, xp), b, xp) if hasattr(b, "shape")
                    else None)
        return op(name, lambda a, b: f(a, b, _xp(a, b)), vjp, (x1, x2))
    fn.__name__ = name
    return fn


def _nograd(name, f):
    def fn(*args, **kwargs):
        return f(*[unwrap(a) for a in args], **{k: unwrap(v) for k, v in kwargs.items()})
    fn.__name__ = name
    return fn


# -- arithmetic ----------------------------------------------------------------------------
add = _binary("add", lambda a, b, xp: a + b, lambda dy, y, a, b, xp: dy,
              lambda dy, y, a, b, xp: dy)
subtract = _binary("subtract", lambda a, b, xp: a - b, lambda dy, y, a, b, xp: dy,
                   lambda dy, y, a, b, xp: -dy)
multiply = _binary("multiply", lambda a, b, xp: a * b, lambda dy, y, a, b, xp: dy * b,
                   lambda dy, y, a, b, xp: dy * a)
divide = _binary("divide", lambda a, b, xp: a / b, lambda dy, y, a, b, xp: dy / b,
                 lambda dy, y, a, b, xp: -dy * y / b)
true_divide = divide
maximum = _binary("maximum", lambda a, b, xp: xp.maximum(a, b),
                  lambda dy, y, a, b, xp: xp.where(a >= b, dy, 0.0),
                  lambda dy, y, a, b, xp: xp.where(a >= b, 0.0, dy))
minimum = _binary("minimum", lambda a, b, xp: xp.minimum(a, b),
                  lambda dy, y, a, b, xp: xp.where(a <= b, dy, 0.0),
                  lambda dy, y, a, b, xp: xp.where(a <= b, 0.0, dy))


def _pow(a, b, xp):
    return xp.pow(a, b) if hasattr(a, "shape") or hasattr(b, "shape") else a ** b


power = _binary("power", _pow, lambda dy, y, a, b, xp: dy * b * _pow(a, b - 1, xp),
                lambda dy, y, a, b, xp: dy * y * xp.log(a))
negative = _unary("negative", lambda x, xp: -x, lambda dy, y, x, xp: -dy)
square = _unary("square", lambda x, xp: x * x, lambda dy, y, x, xp: 2.0 * x * dy)
sqrt = _unary("sqrt", lambda x, xp: xp.sqrt(x), lambda dy, y, x, xp: dy / (2.0 * y))
abs = _unary("abs", lambda x, xp: xp.abs(x), lambda dy, y, x, xp: dy * xp.sign(x))
absolute = abs
exp = _unary("exp", lambda x, xp: xp.exp(x), lambda dy, y, x, xp: dy * y)
log = _unary("log", lambda x, xp: xp.log(x), lambda dy, y, x, xp: dy / x)
log1p = _unary("log1p", lambda x, xp: xp.log1p(x), lambda dy, y, x, xp: dy / (1.0 + x))
expm1 = _unary("expm1", lambda x, xp: xp.expm1(x), lambda dy, y, x, xp: dy * (y + 1.0))
sin = _unary("sin", lambda x, xp: xp.sin(x), lambda dy, y, x, xp: dy * xp.cos(x))
cos = _unary("cos", lambda x, xp: xp.cos(x), lambda dy, y, x, xp: -dy * xp.sin(x))
tanh = _unary("tanh", lambda x, xp: xp.tanh(x), lambda dy, y, x, xp: dy * (1.0 - y * y))
reciprocal = _unary("reciprocal", lambda x, xp: 1.0 / x, lambda dy, y, x, xp: -dy * y * y)


def _erf(x, xp):
    from xpnet.kernels import reference

    return reference.erf(x, xp)


erf = _unary("erf", _erf, lambda dy, y, x, xp: dy * (2.0 / math.sqrt(math.pi)) * xp.exp(-x * x))
sign = _nograd("sign", lambda x: _xp(x).sign(x))
floor = _nograd("floor", lambda x: _xp(x).floor(x))
ceil = _nograd("ceil", lambda x: _xp(x).ceil(x))
round = _nograd("round", lambda x: _xp(x).round(x))


def clip(x, x_min, x_max):
    """``x`` limited to ``[x_min, x_max]``; the gradient passes where ``x`` is inside."""
    def vjp(dys, outs, v, lo, hi):
        xp = _xp(v)
        return (xp.where((v >= lo) & (v <= hi), dys[0], 0.0), None, None)
    return op("clip", lambda v, lo, hi: _xp(v).clip(v, lo, hi), vjp, (x, x_min, x_max))


def where(condition, x1=None, x2=None):
    """``x1`` where ``condition`` else ``x2``, broadcast."""
    if x1 is None and x2 is None:
        raise NotImplementedError("ops.where(condition) without x1, x2 (nonzero) is not "
                                  "supported: its shape depends on the data")

    def vjp(dys, outs, c, a, b):
        xp = _xp(a, b)
        dy = dys[0]
        return (None, _unbroadcast(xp.where(c, dy, 0.0), a, xp),
                _unbroadcast(xp.where(c, 0.0, dy), b, xp))
    return op("where", lambda c, a, b: _xp(a, b).where(c, a, b), vjp, (condition, x1, x2))


# -- products ---------------------------------------------------------------------------
def matmul(x1, x2):
    """Matrix product with NumPy's broadcasting rules (1-D operands included)."""
    def vjp(dys, outs, a, b):
        xp = _xp(a, b)
        dy = dys[0]
        a2 = a if a.ndim > 1 else xp.reshape(a, (1, -1))
        b2 = b if b.ndim > 1 else xp.reshape(b, (-1, 1))
        d2 = dy
        if a.ndim == 1:
            d2 = xp.expand_dims(d2, axis=-2)
        if b.ndim == 1:
            d2 = xp.expand_dims(d2, axis=-1)
        da = _unbroadcast(d2 @ xp.matrix_transpose(b2), a2, xp)
        db = _unbroadcast(xp.matrix_transpose(a2) @ d2, b2, xp)
        return (xp.reshape(da, a.shape), xp.reshape(db, b.shape))
    return op("matmul", lambda a, b: a @ b, vjp, (x1, x2))


dot = matmul


def tensordot(x1, x2, axes=2):
    """``tensordot`` as NumPy's, written as an :func:`einsum`."""
    a_nd, b_nd = len(shape(x1)), len(shape(x2))
    if isinstance(axes, int):
        ax_a, ax_b = list(range(a_nd - axes, a_nd)), list(range(axes))
    else:
        ax_a, ax_b = ([axes[0]] if isinstance(axes[0], int) else list(axes[0]),
                      [axes[1]] if isinstance(axes[1], int) else list(axes[1]))
    ax_a, ax_b = [i % a_nd for i in ax_a], [i % b_nd for i in ax_b]
    letters = iter("abcdefghijklmnopqrstuvwxyz")
    sa = [next(letters) for _ in range(a_nd)]
    sb = [next(letters) for _ in range(b_nd)]
    for i, j in zip(ax_a, ax_b):
        sb[j] = sa[i]
    out = [c for k, c in enumerate(sa) if k not in ax_a] + \
        [c for k, c in enumerate(sb) if k not in ax_b]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", x1, x2)


def einsum(subscripts, *operands):
    """Einstein summation over one or two operands (explicit ``->`` or implicit output,
    ``...`` allowed; an index may not repeat within one operand)."""
    ins, out = _parse_einsum(subscripts, [shape(o) for o in operands])
    if len(operands) > 2:
        first = einsum(f"{ins[0]},{ins[1]}->{_keep(ins[0] + ins[1], ins[2:], out)}",
                       operands[0], operands[1])
        rest = ",".join(ins[2:])
        return einsum(f"{_keep(ins[0] + ins[1], ins[2:], out)},{rest}->{out}", first,
                      *operands[2:])

    def vjp(dys, outs, *vals):
        dy = dys[0]
        grads = []
        for k in range(len(vals)):
            others = [ins[j] for j in range(len(vals)) if j != k]
            target = ins[k]
            present = "".join(c for c in target
                              if c in out or builtins.any(c in o for o in others))
            spec = ",".join([out] + others) + "->" + present
            g = _einsum_values(spec, [dy] + [vals[j] for j in range(len(vals)) if j != k])
            grads.append(_expand_to(g, present, target, vals[k], _xp(vals[k])))
        return tuple(grads)
    spec = ",".join(ins) + "->" + out
    return op("einsum", lambda *vals: _einsum_values(spec, list(vals)), vjp, operands)


def _keep(have, rest, out):
    need = set("".join(rest)) | set(out)
    seen = []
    for c in have:
        if c in need and c not in seen:
            seen.append(c)
    return "".join(seen)


def _parse_einsum(subscripts, shapes):
    s = subscripts.replace(" ", "")
    lhs, out = s.split("->") if "->" in s else (s, None)
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"ops.einsum: {subscripts!r} names {len(ins)} operands, "
                         f"got {len(shapes)}")
    free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in s]
    ell = ""
    for k, (term, shp) in enumerate(zip(ins, shapes)):
        if "..." in term:
            n = len(shp) - (len(term) - 3)
            ell = ell if len(ell) >= n else "".join(free[:n])
            ins[k] = term.replace("...", ell[len(ell) - n:] if n else "")
    for term, shp in zip(ins, shapes):
        if len(set(term)) != len(term):
            raise NotImplementedError(f"ops.einsum: repeated index in {term!r} (traces, "
                                      "diagonals) is not supported")
        if len(term) != len(shp):
            raise ValueError(f"ops.einsum: {term!r} has {len(term)} indices for an operand "
                             f"of shape {tuple(shp)}")
    if out is None:
        counts = {}
        for c in "".join(ins):
            counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    else:
        out = out.replace("...", ell)
    return ins, out


def _einsum_values(spec, vals):
    xp = _xp(*vals)
    fn = getattr(xp, "einsum", None)
    if fn is not None:
        return fn(spec, *vals)
    lhs, out = spec.split("->")
    ins = lhs.split(",")
    if len(ins) == 1:
        return _einsum_one(ins[0], out, vals[0], xp)
    return _einsum_two(ins[0], ins[1], out, vals[0], vals[1], xp)


def _einsum_one(a, out, x, xp):
    drop = tuple(i for i, c in enumerate(a) if c not in out)
    if drop:
        x = xp.sum(x, axis=drop)
        a = "".join(c for c in a if c in out)
    return xp.permute_dims(x, tuple(a.index(c) for c in out)) if a != out else x


def _einsum_two(a, b, out, x, y, xp):
    """Two operands through one batched matrix product (for namespaces without einsum)."""
    x_only = "".join(c for c in a if c not in b and c not in out)
    if x_only:
        x, a = _einsum_one(a, "".join(c for c in a if c not in x_only), x, xp), \
            "".join(c for c in a if c not in x_only)
    y_only = "".join(c for c in b if c not in a and c not in out)
    if y_only:
        y, b = _einsum_one(b, "".join(c for c in b if c not in y_only), y, xp), \
            "".join(c for c in b if c not in y_only)
    batch = [c for c in a if c in b and c in out]
    contract = [c for c in a if c in b and c not in out]
    fa = [c for c in a if c not in b]
    fb = [c for c in b if c not in a]
    size = {c: x.shape[a.index(c)] for c in a}
    size.update({c: y.shape[b.index(c)] for c in b})
    nb = math.prod(size[c] for c in batch)
    xa = xp.reshape(xp.permute_dims(x, tuple(a.index(c) for c in batch + fa + contract)),
                    (nb, math.prod(size[c] for c in fa), math.prod(size[c] for c in contract)))
    yb = xp.reshape(xp.permute_dims(y, tuple(b.index(c) for c in batch + contract + fb)),
                    (nb, math.prod(size[c] for c in contract), math.prod(size[c] for c in fb)))
    z = xp.reshape(xa @ yb, tuple(size[c] for c in batch + fa + fb))
    order = batch + fa + fb
    return xp.permute_dims(z, tuple(order.index(c) for c in out))


def _expand_to(g, have, want, like, xp):
    """Broadcast ``g`` (indices ``have``) to the operand's indices ``want``."""
    if have == want:
        return g
    for c in want:
        if c not in have:
            g = xp.expand_dims(g, axis=g.ndim)
            have = have + c
    g = xp.permute_dims(g, tuple(have.index(c) for c in want))
    return xp.broadcast_to(g, tuple(like.shape))


# -- shapes ------------------------------------------------------------------------------
def shape(x):
    """The shape, as a tuple."""
    return tuple(unwrap(x).shape) if hasattr(unwrap(x), "shape") else ()


def ndim(x):
    return len(shape(x))


def size(x):
    return math.prod(shape(x))


def dtype(x):
    return unwrap(x).dtype


def reshape(x, newshape):
    """``x`` with shape ``newshape`` (one entry may be -1)."""
    newshape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    return op("reshape", lambda v: _xp(v).reshape(v, newshape),
              lambda dys, outs, v: (_xp(v).reshape(dys[0], v.shape),), (x,))


def transpose(x, axes=None):
    """Permute the axes (reverse them by default)."""
    nd = ndim(x)
    perm = tuple(range(nd))[::-1] if axes is None else tuple(a % nd for a in axes)
    inv = tuple(perm.index(i) for i in range(nd))
    return op("transpose", lambda v: _xp(v).permute_dims(v, perm),
              lambda dys, outs, v: (_xp(v).permute_dims(dys[0], inv),), (x,))


def moveaxis(x, source, destination):
    nd = ndim(x)
    src = [source % nd] if isinstance(source, int) else [s % nd for s in source]
    dst = [destination % nd] if isinstance(destination, int) else [d % nd for d in destination]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def swapaxes(x, axis1, axis2):
    nd = ndim(x)
    perm = list(range(nd))
    perm[axis1 % nd], perm[axis2 % nd] = perm[axis2 % nd], perm[axis1 % nd]
    return transpose(x, perm)


def expand_dims(x, axis):
    new = list(shape(x))
    axes = [axis] if isinstance(axis, int) else list(axis)
    nd = len(new) + len(axes)
    for a in sorted(a % nd for a in axes):
        new.insert(a, 1)
    return reshape(x, new)


def squeeze(x, axis=None):
    shp = shape(x)
    if axis is None:
        axes = [i for i, d in enumerate(shp) if d == 1]
    else:
        axes = [a % len(shp) for a in ([axis] if isinstance(axis, int) else axis)]
        bad = [a for a in axes if shp[a] != 1]
        if bad:
            raise ValueError(f"ops.squeeze: axis {bad} of shape {shp} is not of size 1")
    return reshape(x, [d for i, d in enumerate(shp) if i not in axes])


def broadcast_to(x, newshape):
    newshape = tuple(newshape)
    return op("broadcast_to", lambda v: _xp(v).broadcast_to(v, newshape),
              lambda dys, outs, v: (_unbroadcast(dys[0], v, _xp(v)),), (x,))


def concatenate(xs, axis=0):
    """Join arrays along ``axis``."""
    xs = list(xs)

    def vjp(dys, outs, *vals):
        ax = axis % vals[0].ndim
        grads, start = [], 0
        for v in vals:
            n = v.shape[ax]
            idx = tuple([builtins.slice(None)] * ax + [builtins.slice(start, start + n)])
            grads.append(dys[0][idx])
            start += n
        return tuple(grads)
    return op("concatenate", lambda *vals: _xp(*vals).concat(list(vals), axis=axis), vjp, xs)


def stack(xs, axis=0):
    """Join arrays along a new ``axis``."""
    xs = list(xs)

    def vjp(dys, outs, *vals):
        ax = axis % (vals[0].ndim + 1)
        return tuple(dys[0][tuple([builtins.slice(None)] * ax + [k, Ellipsis])]
                     for k in range(len(vals)))
    return op("stack", lambda *vals: _xp(*vals).stack(list(vals), axis=axis), vjp, xs)


def split(x, indices_or_sections, axis=0):
    """A list of sub-arrays: ``indices_or_sections`` equal parts, or cut at those indices."""
    n = shape(x)[axis]
    if isinstance(indices_or_sections, int):
        if n % indices_or_sections:
            raise ValueError(f"ops.split: axis of size {n} does not split into "
                             f"{indices_or_sections} equal parts")
        step = n // indices_or_sections
        cuts = [step * k for k in range(1, indices_or_sections)]
    else:
        cuts = list(indices_or_sections)
    bounds = list(zip([0] + cuts, cuts + [n]))
    nd = ndim(x)
    ax = axis % nd

    def fn(v):
        return [v[tuple([builtins.slice(None)] * ax + [builtins.slice(a, b)])]
                for a, b in bounds]

    def vjp(dys, outs, v):
        xp = _xp(v)
        parts = [d if d is not None else xp.zeros(o.shape, dtype=o.dtype, device=_dev(o))
                 for d, o in zip(dys, outs)]
        return (xp.concat(parts, axis=ax),)
    return op("split", fn, vjp, (x,), n_out=len(bounds))


def tile(x, repeats):
    reps = (repeats,) if isinstance(repeats, int) else tuple(repeats)

    def vjp(dys, outs, v):
        xp = _xp(v)
        reps_full = (1,) * (v.ndim - len(reps)) + reps
        shp = (1,) * (len(reps_full) - v.ndim) + tuple(v.shape)
        g = dys[0]
        inter = []
        for r, s in zip(reps_full, shp):
            inter += [r, s]
        g = xp.reshape(g, tuple(inter))
        g = xp.sum(g, axis=tuple(range(0, 2 * len(shp), 2)))
        return (xp.reshape(g, v.shape),)
    return op("tile", lambda v: _xp(v).tile(v, reps), vjp, (x,))


def repeat(x, repeats, axis=None):
    if not isinstance(repeats, int):
        raise NotImplementedError("ops.repeat: per-element repeat counts are not supported")
    if axis is None:
        x, axis = reshape(x, (-1,)), 0

    def fn(v):
        xp = _xp(v)
        ax = axis % v.ndim
        e = xp.expand_dims(v, axis=ax + 1)
        shp = list(v.shape)
        e = xp.broadcast_to(e, tuple(shp[:ax + 1] + [repeats] + shp[ax + 1:]))
        return xp.reshape(e, tuple(shp[:ax] + [shp[ax] * repeats] + shp[ax + 1:]))

    def vjp(dys, outs, v):
        xp = _xp(v)
        ax = axis % v.ndim
        shp = list(v.shape)
        g = xp.reshape(dys[0], tuple(shp[:ax + 1] + [repeats] + shp[ax + 1:]))
        return (xp.sum(g, axis=ax + 1),)
    return op("repeat", fn, vjp, (x,))


def flip(x, axis=None):
    return op("flip", lambda v: _xp(v).flip(v, axis=axis),
              lambda dys, outs, v: (_xp(v).flip(dys[0], axis=axis),), (x,))


def get_item(x, key):
    """``x[key]`` for basic indices (ints, slices, None, Ellipsis) or one integer array."""
    key_v = tuple(unwrap(k) for k in key) if isinstance(key, tuple) else unwrap(key)

    def vjp(dys, outs, v):
        xp = _xp(v)
        if hasattr(key_v, "shape"):  # integer array on axis 0: a gather
            return (_scatter_rows(dys[0], key_v, v.shape[0], xp),)
        g = xp.zeros(v.shape, dtype=dys[0].dtype, device=_dev(v))
        key, dy = key_v, dys[0]
        if isinstance(key, tuple) and builtins.any(k is None for k in key):
            key = tuple(k for k in key if k is not None)  # new axes: dy has them, drop
            dy = xp.reshape(dy, tuple(g[key].shape))
        elif key is None:
            key, dy = Ellipsis, xp.reshape(dy, tuple(v.shape))
        g[key] = dy
        return (g,)
    return op("get_item", lambda v: v[key_v], vjp, (x,))


def _scatter_rows(g, idx, n, xp):
    """Rows of ``g`` added into an ``(n, ...)`` array at ``idx`` (duplicates summed), as
    a one-hot product: the array API has no scatter-add."""
    flat = xp.reshape(idx, (-1,))
    onehot = xp.astype(xp.reshape(flat, (-1, 1)) == xp.arange(n, device=_dev(g)), g.dtype)
    rest = tuple(g.shape[idx.ndim:])
    g2 = xp.reshape(g, (flat.shape[0], math.prod(rest)))
    return xp.reshape(xp.matrix_transpose(onehot) @ g2, (n,) + rest)


def slice(inputs, start_indices, shape):  # noqa: F811 (Keras's argument name)
    """``inputs[start : start + shape]`` on every axis (keras.ops.slice)."""
    key = tuple(builtins.slice(s, s + n) for s, n in zip(start_indices, shape))
    return get_item(inputs, key)


def take(x, indices, axis=None):
    """Gather along ``axis`` (the flattened array when None); any index shape."""
    if axis is None:
        x, axis = reshape(x, (-1,)), 0

    def fn(v, idx):
        xp = _xp(v)
        ax = axis % v.ndim
        flat = xp.reshape(idx, (-1,))
        out = xp.take(v, flat, axis=ax)
        shp = tuple(v.shape[:ax]) + tuple(idx.shape) + tuple(v.shape[ax + 1:])
        return xp.reshape(out, shp)

    def vjp(dys, outs, v, idx):
        xp = _xp(v)
        ax = axis % v.ndim
        g = xp.moveaxis(dys[0], tuple(range(ax, ax + idx.ndim)), tuple(range(idx.ndim))) \
            if ax else dys[0]
        gv = _scatter_rows(g, idx, v.shape[ax], xp)
        return (xp.moveaxis(gv, 0, ax) if ax else gv, None)
    return op("take", fn, vjp, (x, indices))


def take_along_axis(x, indices, axis=-1):
    def vjp(dys, outs, v, idx):
        xp = _xp(v)
        ax = axis % v.ndim
        n = v.shape[ax]
        vm, im, dm = (xp.moveaxis(a, ax, -1) for a in (v, idx, dys[0]))
        onehot = xp.astype(xp.expand_dims(im, axis=-1) ==
                           xp.arange(n, device=_dev(v)), dm.dtype)
        g = xp.sum(onehot * xp.expand_dims(dm, axis=-1), axis=-2)
        return (xp.moveaxis(xp.broadcast_to(g, vm.shape), -1, ax), None)
    return op("take_along_axis", lambda v, i: _xp(v).take_along_axis(v, i, axis=axis), vjp,
              (x, indices))


def pad(x, pad_width, mode="constant", constant_values=0):
    """Constant padding, ``pad_width`` as NumPy's ``[(before, after), ...]``."""
    if mode != "constant":
        raise NotImplementedError(f"ops.pad: mode={mode!r} (only 'constant')")
    nd = ndim(x)
    widths = [(pad_width, pad_width)] * nd if isinstance(pad_width, int) else \
        [tuple(p) if not isinstance(p, int) else (p, p) for p in pad_width]

    def fn(v):
        xp = _xp(v)
        shp = tuple(s + a + b for s, (a, b) in zip(v.shape, widths))
        out = xp.full(shp, constant_values, dtype=v.dtype, device=_dev(v))
        out[tuple(builtins.slice(a, a + s) for s, (a, _) in zip(v.shape, widths))] = v
        return out
    return op("pad", fn, lambda dys, outs, v: (dys[0][tuple(
        builtins.slice(a, a + s) for s, (a, _) in zip(v.shape, widths))],), (x,))


def cumsum(x, axis=None):
    if axis is None:
        x, axis = reshape(x, (-1,)), 0
    return op("cumsum", lambda v: _xp(v).cumulative_sum(v, axis=axis),
              lambda dys, outs, v: (_xp(v).flip(_xp(v).cumulative_sum(
                  _xp(v).flip(dys[0], axis=axis), axis=axis), axis=axis),), (x,))


# -- reductions ----------------------------------------------------------------------------
def _axes(axis, nd):
    if axis is None:
        return tuple(range(nd))
    return tuple(a % nd for a in ((axis,) if isinstance(axis, int) else axis))


def _expand_reduced(g, v, axis, keepdims, xp):
    if not keepdims:
        for a in sorted(_axes(axis, v.ndim)):
            g = xp.expand_dims(g, axis=a)
    return g


def sum(x, axis=None, keepdims=False):
    def vjp(dys, outs, v):
        xp = _xp(v)
        return (xp.broadcast_to(_expand_reduced(dys[0], v, axis, keepdims, xp), v.shape),)
    return op("sum", lambda v: _xp(v).sum(v, axis=axis, keepdims=keepdims), vjp, (x,))


def mean(x, axis=None, keepdims=False):
    def vjp(dys, outs, v):
        xp = _xp(v)
        n = math.prod(v.shape[a] for a in _axes(axis, v.ndim))
        return (xp.broadcast_to(_expand_reduced(dys[0], v, axis, keepdims, xp), v.shape) / n,)
    return op("mean", lambda v: _xp(v).mean(v, axis=axis, keepdims=keepdims), vjp, (x,))


def _extreme(name, reduce):
    def fn(x, axis=None, keepdims=False, initial=None):
        if initial is not None:
            raise NotImplementedError(f"ops.{name}: initial= is not supported")

        def vjp(dys, outs, v):
            xp = _xp(v)
            y = _expand_reduced(outs[0], v, axis, keepdims, xp)
            hit = xp.astype(v == y, v.dtype)
            count = xp.sum(hit, axis=_axes(axis, v.ndim), keepdims=True)
            dy = _expand_reduced(dys[0], v, axis, keepdims, xp)
            return (hit * dy / count,)
        return op(name, lambda v: getattr(_xp(v), reduce)(v, axis=axis, keepdims=keepdims),
                  vjp, (x,))
    fn.__name__ = name
    return fn


max = _extreme("max", "max")
min = _extreme("min", "min")


def prod(x, axis=None, keepdims=False):
    def vjp(dys, outs, v):
        xp = _xp(v)
        y = _expand_reduced(outs[0], v, axis, keepdims, xp)
        return (_expand_reduced(dys[0], v, axis, keepdims, xp) * y / v,)
    return op("prod", lambda v: _xp(v).prod(v, axis=axis, keepdims=keepdims), vjp, (x,))


def var(x, axis=None, keepdims=False):
    m = mean(x, axis=axis, keepdims=True)
    return mean(square(subtract(x, m)), axis=axis, keepdims=keepdims)


def std(x, axis=None, keepdims=False):
    return sqrt(var(x, axis=axis, keepdims=keepdims))


def norm(x, ord=None, axis=None, keepdims=False):
    """The Euclidean norm (``ord`` None or 2 on vectors) or Frobenius norm."""
    if ord not in (None, 2, "fro", "euclidean"):
        raise NotImplementedError(f"ops.norm: ord={ord!r}")
    return sqrt(sum(square(x), axis=axis, keepdims=keepdims))


def logsumexp(x, axis=None, keepdims=False):
    """``log(sum(exp(x)))`` computed from ``x - max(x)``."""
    def fn(v):
        xp = _xp(v)
        m = xp.max(v, axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0.0)
        out = xp.log(xp.sum(xp.exp(v - m), axis=axis, keepdims=True)) + m
        return out if keepdims else xp.squeeze(out, axis=_axes(axis, v.ndim))

    def vjp(dys, outs, v):
        xp = _xp(v)
        y = _expand_reduced(outs[0], v, axis, keepdims, xp)
        return (_expand_reduced(dys[0], v, axis, keepdims, xp) * xp.exp(v - y),)
    return op("logsumexp", fn, vjp, (x,))


argmax = _nograd("argmax", lambda x, axis=None, keepdims=False: _xp(x).argmax(
    x, axis=axis, keepdims=keepdims))
argmin = _nograd("argmin", lambda x, axis=None, keepdims=False: _xp(x).argmin(
    x, axis=axis, keepdims=keepdims))
all = _nograd("all", lambda x, axis=None, keepdims=False: _xp(x).all(
    x, axis=axis, keepdims=keepdims))
any = _nograd("any", lambda x, axis=None, keepdims=False: _xp(x).any(
    x, axis=axis, keepdims=keepdims))
equal = _nograd("equal", lambda a, b: a == b)
not_equal = _nograd("not_equal", lambda a, b: a != b)
greater = _nograd("greater", lambda a, b: a > b)
greater_equal = _nograd("greater_equal", lambda a, b: a >= b)
less = _nograd("less", lambda a, b: a < b)
less_equal = _nograd("less_equal", lambda a, b: a <= b)
logical_and = _nograd("logical_and", lambda a, b: _xp(a, b).logical_and(a, b))
logical_or = _nograd("logical_or", lambda a, b: _xp(a, b).logical_or(a, b))
logical_not = _nograd("logical_not", lambda a: _xp(a).logical_not(a))
isnan = _nograd("isnan", lambda a: _xp(a).isnan(a))
isfinite = _nograd("isfinite", lambda a: _xp(a).isfinite(a))


# -- dtypes, conversion, creation ----------------------------------------------------------
_DTYPES = ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64",
           "uint8", "uint16", "uint32", "uint64", "bool")


def _dtype(xp, dt):
    if dt is None or not isinstance(dt, str):
        return dt
    name = dt.rsplit(".", 1)[-1]
    if name not in _DTYPES or not hasattr(xp, name):
        raise TypeError(f"unsupported dtype {dt!r}; expected one of "
                        f"{[d for d in _DTYPES if hasattr(xp, d)]}")
    return getattr(xp, name)


def cast(x, dtype):
    """``x`` converted to ``dtype``; the gradient flows back to float inputs."""
    def fn(v):
        xp = _xp(v)
        return xp.astype(v, _dtype(xp, dtype))

    def vjp(dys, outs, v):
        xp = _xp(v)
        if not xp.isdtype(v.dtype, "real floating"):
            return (None,)
        return (xp.astype(dys[0], v.dtype),)
    return op("cast", fn, vjp, (x,))


def convert_to_tensor(x, dtype=None, sparse=None):
    """``x`` as an array of the current backend (traced values pass through)."""
    if isinstance(x, Traced) or getattr(x, "_xpnet_value", None) is not None:
        return x if dtype is None else cast(x, dtype)
    if hasattr(x, "__array_namespace__") and hasattr(x, "shape"):
        backend = backend_of(x)
    else:
        backend = _current_backend()
    a = backend.asarray(x)
    xp = backend.xp
    if not (xp.isdtype(a.dtype, ("bool", "numeric"))):
        raise TypeError(f"ops.convert_to_tensor: unsupported dtype {a.dtype}; expected "
                        "numbers or booleans")
    if dtype is not None:
        a = xp.astype(a, _dtype(xp, dtype))
    elif xp.isdtype(a.dtype, "real floating") and a.dtype == xp.float64 and \
            not hasattr(x, "dtype"):
        a = xp.astype(a, xp.float32)  # Python floats become float32, as Keras
    return a


def _current_backend():
    """The backend of the layer whose call is running, else the default."""
    stack = state().stack
    for layer in reversed(stack):
        if layer.backend is not None:
            return layer.backend
    return get_backend(None)


def convert_to_numpy(x):
    """A NumPy array of ``x``."""
    v = unwrap(x)
    if not hasattr(v, "shape"):
        return get_backend("cpu").asarray(v)
    return backend_of(v).to_numpy(v)


def stop_gradient(x):
    """``x`` with no gradient flowing back through it (a new view: never the object a tape
    watches)."""
    v = unwrap(x)
    if not hasattr(v, "shape"):
        return v
    view = v[...]
    return Traced(view) if isinstance(x, Traced) or hasattr(x, "_xpnet_value") else view


def is_tensor(x):
    v = unwrap(x)
    return hasattr(v, "shape") and hasattr(v, "dtype")


def _creation(xp_fn):
    def fn(shape, dtype=None, **kwargs):
        backend = _current_backend()
        xp = backend.xp
        dt = _dtype(xp, dtype) if dtype is not None else xp.float32
        shape = (shape,) if isinstance(shape, int) else tuple(int(s) for s in shape)
        return xp_fn(xp, shape, dt, backend.device, **kwargs)
    return fn


zeros = _creation(lambda xp, s, dt, dev: xp.zeros(s, dtype=dt, device=dev))
ones = _creation(lambda xp, s, dt, dev: xp.ones(s, dtype=dt, device=dev))


def full(shape, fill_value, dtype=None):
    backend = _current_backend()
    xp = backend.xp
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return xp.full(shape, fill_value, dtype=_dtype(xp, dtype) or xp.float32,
                   device=backend.device)


def _like(fill):
    def fn(x, dtype=None):
        v = unwrap(x)
        xp = _xp(v)
        return xp.full(v.shape, fill, dtype=_dtype(xp, dtype) or v.dtype, device=_dev(v))
    return fn


zeros_like = _like(0)
ones_like = _like(1)


def full_like(x, fill_value, dtype=None):
    return _like(fill_value)(x, dtype)


def arange(start, stop=None, step=1, dtype=None):
    backend = _current_backend()
    xp = backend.xp
    if dtype is None:
        is_int = builtins.all(isinstance(v, int) for v in (start, stop, step) if v is not None)
        dt = xp.int64 if is_int else xp.float32
    else:
        dt = _dtype(xp, dtype)
    return xp.arange(start, stop, step, dtype=dt, device=backend.device)


def eye(n, m=None, k=0, dtype=None):
    backend = _current_backend()
    xp = backend.xp
    return xp.eye(n, m, k=k, dtype=_dtype(xp, dtype) or xp.float32, device=backend.device)


def linspace(start, stop, num=50, endpoint=True, dtype=None):
    backend = _current_backend()
    xp = backend.xp
    return xp.linspace(start, stop, num, endpoint=endpoint,
                       dtype=_dtype(xp, dtype) or xp.float32, device=backend.device)


def one_hot(x, num_classes, axis=-1, dtype=None):
    """One-hot rows of the integer labels ``x`` (no gradient)."""
    v = unwrap(x)
    xp = _xp(v)
    out = xp.astype(xp.expand_dims(v, axis=-1) == xp.arange(num_classes, device=_dev(v)),
                    _dtype(xp, dtype) or xp.float32)
    return out if axis in (-1, out.ndim - 1) else xp.moveaxis(out, -1, axis)


def _dev(a):
    from array_api_compat import device

    return device(a)
