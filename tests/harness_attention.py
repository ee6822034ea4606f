"""The shared harness's float64 central differences for layers called with several tensors
and keyword arguments (attention): ``forward(*args, **kwargs)``, outputs that may be a tuple,
and backward results that may carry keyword gradients (``InputGrads``)."""

import numpy as np
from harness import assert_grad_close
from harness import assert_param_grads
from harness import numerical_grad

from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer


def leaves(layer):
    """The layer and every layer held in its attributes (alone, in lists, in dicts), depth
    first: where a composite's weights and gradients live until the engine tracks them."""
    out, seen = [], set()

    def walk(obj):
        if isinstance(obj, Layer):
            if id(obj) in seen:
                return
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
    walk(layer)
    return out


def _as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def check_call_gradients(backend, layer, args, kwargs=None, grad_kwargs=(), masks=None,
                         training=False, seed=0, rng_state=None, as_list=False):
    """Compare ``layer.backward`` with central differences of ``sum_k(y_k * r_k)``.

    ``args`` are host float arrays (positional tensors); ``kwargs`` host float arrays of
    keyword tensors whose gradients come back through ``InputGrads`` (``grad_kwargs``
    names them); ``masks`` keyword arrays passed as they are (bool masks, flags, or a list
    of masks under ``mask``); ``as_list`` calls ``forward([arrays...])``."""
    xp = backend.xp
    rng = np.random.default_rng(seed)
    kwargs, masks = dict(kwargs or {}), dict(masks or {})
    def dev(m):
        if isinstance(m, list):
            return [None if a is None else backend.asarray(a) for a in m]
        return backend.asarray(m) if hasattr(m, "shape") else m
    masks = {k: dev(v) for k, v in masks.items()}
    holders = leaves(layer)
    states = [h.get_rng_state() for h in holders]

    def run(a, kw):
        for h, st in zip(holders, states):
            if st is not None:
                h.set_rng_state(st)
        arrays = [backend.asarray(x, dtype=xp.float64)
                  if np.issubdtype(np.asarray(x).dtype, np.floating) else backend.asarray(x)
                  for x in a]
        kws = {k: backend.asarray(v, dtype=xp.float64) for k, v in kw.items()}
        if as_list:  # list-taking layers (Attention): forward([q, v, k], mask=...)
            return layer.forward(arrays, **kws, **masks, training=training)
        return layer.forward(*arrays, **kws, **masks, training=training)

    y, _ = run(args, kwargs)
    rs = [rng.standard_normal(tuple(t.shape)) for t in _as_tuple(y)]
    rs_dev = [backend.asarray(r, dtype=xp.float64) for r in rs]

    def objective(a, kw):
        out, _ = run(a, kw)
        return sum(float(xp.sum(t * r)) for t, r in zip(_as_tuple(out), rs_dev))

    for h in holders:
        h.zero_grads()
    y, ctx = run(args, kwargs)
    dy = rs_dev if isinstance(y, (tuple, list)) else rs_dev[0]
    dx = layer.backward(ctx, dy)
    kw_grads = {}
    if isinstance(dx, InputGrads):
        dx, kw_grads = dx.args, dx.kwargs
    dxs = _as_tuple(dx)
    params = {(h, k): backend.to_numpy(g).copy() for h in holders for k, g in h.grads.items()}
    for i, x0 in enumerate(args):
        if not np.issubdtype(np.asarray(x0).dtype, np.floating):
            continue  # integer ids
        def f(xi, i=i):
            a = list(args)
            a[i] = xi
            return objective(a, kwargs)
        dirs, derivs = numerical_grad(f, x0, rng)
        assert_grad_close(backend.to_numpy(dxs[i]), dirs, derivs, f"{layer.name}: arg {i}")
    for name in grad_kwargs:
        def f(xi, name=name):
            return objective(args, {**kwargs, name: xi})
        dirs, derivs = numerical_grad(f, kwargs[name], rng)
        assert_grad_close(backend.to_numpy(kw_grads[name]), dirs, derivs,
                          f"{layer.name}: {name}")
    assert_param_grads(backend, params, lambda: objective(args, kwargs), rng)
    return y
