"""The shared harness for layers called as ``layer([features, rois])`` whose second input
is not differentiable: configuration round trip, float32 forward shape and dtype, and the
float64 finite-difference check of the feature gradient (``backward`` returns
``(dfeatures, None)``)."""

import numpy as np
from harness import assert_grad_close
from harness import numerical_grad


def check_roi_layer(backend, cls, kwargs, features, rois, seed=0):
    """Run the contract on ``cls(**kwargs)`` for host ``features`` (N, H, W, C) and host
    ``rois`` (K, 5); returns the float64 layer's output on the host."""
    xp = backend.xp
    rng = np.random.default_rng(seed)
    shapes = [(None,) + features.shape[1:], (None, 5)]
    layer = cls(**kwargs)
    layer.build_on(backend, shapes)
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    assert layer.weights == [] and layer.grads == {}

    f32 = backend.asarray(features, dtype=xp.float32)
    y, _ = layer.forward([f32, backend.asarray(rois, dtype=xp.float32)])
    out_shape = layer.compute_output_shape(shapes)
    assert tuple(y.shape) == (rois.shape[0],) + tuple(out_shape[1:])
    assert y.dtype == xp.float32

    layer64 = cls(**{**kwargs, "dtype": "float64"})
    layer64.build_on(backend, shapes)
    r64 = backend.asarray(rois, dtype=xp.float64)
    r = rng.standard_normal((rois.shape[0],) + tuple(out_shape[1:]))

    def objective(f):
        out, _ = layer64.forward([backend.asarray(f, dtype=xp.float64), r64])
        return float(xp.sum(out * backend.asarray(r, dtype=xp.float64)))

    y64, ctx = layer64.forward([backend.asarray(features, dtype=xp.float64), r64])
    dx = layer64.backward(ctx, backend.asarray(r, dtype=xp.float64))
    assert isinstance(dx, tuple) and len(dx) == 2 and dx[1] is None
    dirs, derivs = numerical_grad(objective, features.astype(np.float64), rng)
    assert_grad_close(backend.to_numpy(dx[0]), dirs, derivs, f"{layer64.name}: d/d features")
    return backend.to_numpy(y64)
