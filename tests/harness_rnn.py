"""Gradient checks for sequence layers, on top of tests/harness.py: several outputs (an RNN
with ``return_state``), keyword tensors (``initial_state``, ``mask``), integer inputs
(``Embedding``), layers holding layers, state to restore before each call (``stateful``)
and random masks replayed (dropout)."""

import numpy as np
from harness import assert_grad_close
from harness import assert_param_grads
from harness import numerical_grad

from xpnet.engine.node import flatten
from xpnet.engine.node import pack_as
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer


def holders_of(layer):
    """``layer`` and every layer it holds in attributes (alone, in lists or dicts)."""
    found, stack = [], [layer]
    while stack:
        h = stack.pop()
        if any(h is f for f in found):
            continue
        found.append(h)
        for v in vars(h).values():
            items = v.values() if isinstance(v, dict) else v if isinstance(v, (list, tuple)) \
                else [v]
            stack.extend(i for i in items if isinstance(i, Layer))
    return found


def check_call(backend, layer, x_host, kwargs_host=None, training=False, seed=0,
               diff_x=True, restore=None, int_x=False, const_kwargs=None):
    """Float64 central differences of ``sum_k sum(y_k * r_k)`` against ``backward``.

    ``layer`` is built in float64 already. ``x_host`` is the positional input (host array),
    ``kwargs_host`` float keyword tensors to differentiate (``initial_state`` as a list),
    ``const_kwargs`` keyword values passed as they are (``mask``). ``restore()`` runs before
    every forward (a stateful layer's state). Returns the outputs of the first forward.
    """
    xp = backend.xp
    rng = np.random.default_rng(seed)
    kwargs_host = kwargs_host or {}
    const_kwargs = const_kwargs or {}
    holders = [h for h in holders_of(layer) if h.built]
    states = [(h, h.get_rng_state()) for h in holders]

    def put(a):
        return backend.asarray(a) if int_x else backend.asarray(a, dtype=xp.float64)

    def to_dev(kw):
        return {k: pack_as(v, [backend.asarray(a, dtype=xp.float64) for a in flatten(v)])
                for k, v in kw.items()}

    def run(x, kw):
        if restore is not None:
            restore()
        for h, s in states:
            h.set_rng_state(s)
        return layer.forward(put(x), training=training, **to_dev(kw), **const_kwargs)

    for h in holders:
        h.zero_grads()
    y, ctx = run(x_host, kwargs_host)
    ys = flatten(y)
    rs = [rng.standard_normal(tuple(a.shape)) for a in ys]
    dys = [backend.asarray(r, dtype=xp.float64) for r in rs]
    out = layer.backward(ctx, pack_as(y, dys) if isinstance(y, (list, tuple)) else dys[0])
    dx, dkw = (out.args, out.kwargs) if isinstance(out, InputGrads) else (out, {})
    analytic = {(h, k): backend.to_numpy(h.grads[k]).copy() for h in holders for k in h.grads}

    def objective(x, kw):
        yy, _ = run(x, kw)
        return sum(float(xp.sum(a * backend.asarray(r, dtype=xp.float64)))
                   for a, r in zip(flatten(yy), rs))

    if diff_x:
        dirs, derivs = numerical_grad(lambda v: objective(v, kwargs_host), x_host, rng)
        assert_grad_close(backend.to_numpy(dx), dirs, derivs, f"{layer.name}: d/d input")
    for name, value in kwargs_host.items():
        parts = flatten(value)  # a list of states may nest (a stack's, one list per cell)
        got = flatten(dkw[name])
        assert len(got) == len(parts), f"{layer.name}: d/d {name} has {len(got)} parts"
        for i, part in enumerate(parts):
            def f(v, i=i, name=name, parts=parts, value=value):
                kw = dict(kwargs_host)
                kw[name] = pack_as(value, [v if j == i else p for j, p in enumerate(parts)])
                return objective(x_host, kw)
            dirs, derivs = numerical_grad(f, part, rng)
            assert_grad_close(backend.to_numpy(got[i]), dirs, derivs,
                              f"{layer.name}: d/d {name}[{i}]")
    assert_param_grads(backend, analytic, lambda: objective(x_host, kwargs_host), rng)
    return ys
