"""One harness for every layer, loss and activation: configuration round trip, forward
shapes and dtypes in float32, float64 finite-difference gradients for the input and every
parameter, and gradient accumulation when a layer is called twice."""

import math

import numpy as np

EPS, RTOL, ATOL = 1e-6, 1e-5, 1e-6
FULL_LIMIT = 300  # up to this many entries: perturb each one; above: random directions
DIRECTIONS = 8


def _draw(rng, shape, low=-1.0, high=1.0, dodge=None):
    x = rng.uniform(low, high, size=shape)
    if dodge is not None:  # keep inputs off kinks (ReLU at 0, ...), as chainer does
        for kink in np.atleast_1d(dodge):
            near = np.abs(x - kink) < 0.05
            x[near] = kink + np.where(x[near] >= kink, 0.05, -0.05)
    return x


def numerical_grad(f, x0, rng):
    """Central differences of the scalar ``f`` at the host array ``x0``.

    Returns ``(directions, derivatives)``: the identity basis for small inputs, else random
    unit directions; the analytic gradient ``g`` must satisfy ``directions @ g.ravel() ==
    derivatives``.
    """
    n = x0.size
    if n <= FULL_LIMIT:
        dirs = np.eye(n)
    else:
        dirs = rng.standard_normal((DIRECTIONS, n))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    derivs = []
    for d in dirs:
        step = (EPS * d).reshape(x0.shape)
        derivs.append((f(x0 + step) - f(x0 - step)) / (2 * EPS))
    return dirs, np.array(derivs)


def assert_grad_close(analytic, dirs, derivs, what):
    got = dirs @ np.asarray(analytic, dtype=np.float64).ravel()
    np.testing.assert_allclose(got, derivs, rtol=RTOL, atol=ATOL,
                               err_msg=f"gradient mismatch: {what}")


def _as_list(shape):
    return shape if isinstance(shape, list) else [shape]


def check_layer(backend, cls, kwargs, input_shape, expected_output_shape=None,
                expected_num_params=None, expected_weights=None, training=False,
                dodge=None, low=-1.0, high=1.0, seed=0, twice=True, x_fn=None):
    """Run the whole contract check on ``cls(**kwargs)`` for inputs of ``input_shape``
    (a tuple, or a list of tuples for merge layers), on ``backend``."""
    rng = np.random.default_rng(seed)
    multi = isinstance(input_shape, list)
    shapes = _as_list(input_shape)
    batchless = [(None,) + tuple(s[1:]) for s in shapes]

    def draw():
        xs = [x_fn(rng, s) if x_fn else _draw(rng, s, low, high, dodge) for s in shapes]
        return xs

    # (1) configuration and weights, float32
    layer = cls(**kwargs)
    layer.build_on(backend, batchless if multi else batchless[0])
    names = layer.weight_names()
    if expected_weights is not None:
        assert {k: tuple(layer.params[k].shape) for k in names} == expected_weights
    if expected_num_params is not None:
        assert len(names) == expected_num_params, names
    clone = cls.from_config(layer.get_config())
    clone.build_on(backend, batchless if multi else batchless[0])
    assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    assert [tuple(w.shape) for w in clone.weights] == [tuple(w.shape) for w in layer.weights]
    assert all(isinstance(w, np.ndarray) for w in layer.get_weights())

    # (2) forward in float32: shape and dtype
    xp = backend.xp
    xs = [backend.asarray(a, dtype=xp.float32) for a in draw()]
    y, _ = layer.forward(xs if multi else xs[0], training=training)
    if expected_output_shape is not None:
        assert tuple(y.shape) == tuple(expected_output_shape)
    assert tuple(y.shape) == tuple(_resolve(layer.compute_output_shape(
        batchless if multi else batchless[0]), y.shape))
    assert y.dtype == xp.float32

    # (3) float64 gradients of sum(forward(x) * r) for the input(s) and every parameter
    layer64 = cls(**{**kwargs, "dtype": "float64"})
    layer64.build_on(backend, batchless if multi else batchless[0])
    x_host = draw()
    r = rng.standard_normal(tuple(y.shape))
    check_gradients(backend, layer64, x_host, r, multi, training, rng)

    # (4) two calls: gradients add up
    if twice and any(h.grads for h in layer64._all_layers()):
        _check_accumulation(backend, layer64, draw(), draw(), r, multi, training)
    return layer


def _resolve(shape, actual):
    return tuple(a if s is None else s for s, a in zip(shape, actual))


def _forward64(backend, layer, xs_host, multi, training, rng_state=None):
    """Forward in float64. A layer that draws random numbers (dropout, noise) restarts
    from ``rng_state`` each time, so every call of one check sees the same mask."""
    if rng_state is not None:
        layer.set_rng_state(rng_state)
    xs = [backend.asarray(a, dtype=backend.xp.float64) for a in xs_host]
    return layer.forward(xs if multi else xs[0], training=training)


def _rng_state(layer):
    get = getattr(layer, "get_rng_state", None)
    return get() if get is not None else None


def check_gradients(backend, layer, xs_host, r_host, multi, training, rng, holders=None):
    """Compare backward's dx and grads with central differences (float64).

    ``holders`` are the layers whose parameters to check (a model's leaf layers); by
    default the layer itself.
    """
    xp = backend.xp
    holders = holders or [h for h in layer._all_layers() if h.grads] or [layer]
    r = backend.asarray(r_host, dtype=xp.float64)
    for h in holders:
        h.zero_grads()
    state = _rng_state(layer)
    y, ctx = _forward64(backend, layer, xs_host, multi, training, state)
    dx = layer.backward(ctx, r)
    dxs = dx if multi else [dx]
    analytic_params = {(h, k): backend.to_numpy(h.grads[k]).copy()
                       for h in holders for k in h.grads}

    def objective(xs):
        out, _ = _forward64(backend, layer, xs, multi, training, state)
        return float(xp.sum(out * r))

    for i, x0 in enumerate(xs_host):
        def f(xi, i=i):
            xs = list(xs_host)
            xs[i] = xi
            return objective(xs)
        dirs, derivs = numerical_grad(f, x0, rng)
        assert_grad_close(backend.to_numpy(dxs[i]), dirs, derivs,
                          f"{layer.name}: d/d input {i}")
    assert_param_grads(backend, analytic_params, lambda: objective(xs_host), rng)


def assert_param_grads(backend, analytic, objective, rng):
    """Each weight's gradient ``analytic[(holder, name)]`` against central differences of
    ``objective()`` (which reads the weights in place); every weight is restored."""
    xp = backend.xp
    for (h, name), g in analytic.items():
        p0 = backend.to_numpy(h.params[name]).astype(np.float64).copy()

        def f(p, h=h, name=name):
            h.params[name][...] = backend.asarray(p, dtype=xp.float64)
            return objective()
        dirs, derivs = numerical_grad(f, p0, rng)
        h.params[name][...] = backend.asarray(p0, dtype=xp.float64)
        assert_grad_close(g, dirs, derivs, f"{h.name}: d/d {name}")


def _check_accumulation(backend, layer, xs1, xs2, r_host, multi, training):
    xp = backend.xp
    r = backend.asarray(r_host, dtype=xp.float64)
    state = _rng_state(layer)
    single = []
    holders = [h for h in layer._all_layers() if h.grads]

    def grads():
        return {(id(h), k): backend.to_numpy(g).copy() for h in holders
                for k, g in h.grads.items()}
    for xs in (xs1, xs2):
        layer.zero_grads()
        _, ctx = _forward64(backend, layer, xs, multi, training, state)
        layer.backward(ctx, r)
        single.append(grads())
    layer.zero_grads()
    _, c1 = _forward64(backend, layer, xs1, multi, training, state)
    _, c2 = _forward64(backend, layer, xs2, multi, training, state)
    layer.backward(c2, r)
    layer.backward(c1, r)
    for key, g in grads().items():
        np.testing.assert_allclose(g, single[0][key] + single[1][key],
                                   rtol=1e-10, atol=1e-12,
                                   err_msg=f"{layer.name}: gradients of two calls must add")


def check_loss(backend, loss, y_true_host, y_pred_host, sample_weight=None, seed=0):
    """``loss.value_and_grad`` against ``loss(...)`` and its central differences."""
    xp = backend.xp
    rng = np.random.default_rng(seed)
    as_target = (lambda a: backend.asarray(a)) if y_true_host.dtype.kind in "iu" else \
        (lambda a: backend.asarray(a, dtype=xp.float64))
    y_true = loss.prepare(as_target(y_true_host), backend.asarray(y_pred_host,
                                                                  dtype=xp.float64))
    sw = None if sample_weight is None else backend.asarray(sample_weight, dtype=xp.float64)

    def value(p):
        return float(loss(y_true, backend.asarray(p, dtype=xp.float64), sample_weight=sw))

    p = backend.asarray(y_pred_host, dtype=xp.float64)
    v, g = loss.value_and_grad(y_true, p, loss.weights(y_true, p, sw))
    assert math.isclose(float(v), value(y_pred_host), rel_tol=1e-12, abs_tol=1e-12)
    dirs, derivs = numerical_grad(value, y_pred_host.astype(np.float64), rng)
    assert_grad_close(backend.to_numpy(g), dirs, derivs, f"{loss.name}: d/d y_pred")
    return float(v)
