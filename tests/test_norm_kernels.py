"""The fused layer-normalisation kernels (``kernels/norm.py``, njit) against the array-API
composition of ``LayerNormalization``: float32 and float64, rows split over threads, one
row, constant rows (zero variance), large offsets, a strided input, no scale or offset."""

import numpy as np
import pytest

from xpnet import kernels
from xpnet.backend import get_backend
from xpnet.kernels import threads
from xpnet.layers import LayerNormalization


def _run(layer, x, dy):
    layer.zero_grads()
    y, ctx = layer.forward(x, training=True)
    dx = layer.backward(ctx, dy)
    return [y, dx] + [layer.grads[k].copy() for k in sorted(layer.grads)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 7), (3, 5, 16), (40, 33, 128)])
@pytest.mark.parametrize("kind", ["plain", "offset", "constant", "strided", "bare"])
def test_layer_norm_kernel_matches_composition(njit, dtype, shape, kind):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(shape)
    if kind == "offset":
        x = x + 1e4  # the mean is subtracted before squaring
    if kind == "constant":
        x[..., :] = x[..., :1]  # zero variance: 1 / sqrt(eps)
    if kind == "strided":  # a transposed view: the kernel copies it once
        x = np.swapaxes(rng.standard_normal(shape[:-2] + (shape[-1], shape[-2])), -1, -2) \
            if len(shape) > 2 else rng.standard_normal(shape[::-1]).T
    x = x.astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    bare = kind == "bare"
    layers = []
    for dt in (dtype, np.float64):  # the reference: the composition on float64 copies
        layer = LayerNormalization(epsilon=1e-3, center=not bare, scale=not bare,
                                   dtype=np.dtype(dt).name)
        layer.build_on(get_backend("cpu"), (None,) + x.shape[1:])
        layers.append(layer)
    for k in layers[0].params:
        layers[0].params[k][...] = rng.uniform(0.5, 1.5, layers[0].params[k].shape)
        layers[1].params[k][...] = layers[0].params[k]
    with threads.using(2):
        fused = _run(layers[0], x, dy)
    kernels.enabled(False)
    try:
        composition = _run(layers[1], x.astype(np.float64), dy.astype(np.float64))
    finally:
        kernels.enabled(True)
    # float32 against the float64 composition: the kernel sums in float64, so it stays
    # within float32's rounding even where the float32 composition does not (a constant
    # row's mean rounded off x leaves noise that 1 / sqrt(eps) magnifies)
    tol = 2e-4 if dtype == np.float32 else 1e-10
    for a, c in zip(fused, composition):
        assert a.dtype == dtype and a.shape == c.shape
        np.testing.assert_allclose(a, c, rtol=tol, atol=tol * max(1.0, np.abs(c).max()))
    assert len(fused) == (2 if bare else 4)
