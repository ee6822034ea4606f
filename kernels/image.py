"""Image sampling for the preprocessing layers, one dispatch point per operation: resizing
(a matrix product per axis, the same on every namespace) and affine sampling, which runs the
``numba.njit`` loops of ``_cpu_image.py`` on NumPy arrays and the array-API composition of
:mod:`xpnet.kernels.reference_image` on any other namespace (CuPy included: its gather and
sort-based scatter are device operations). Layers call these functions only.
"""

import importlib
from typing import NamedTuple

from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import enabled
from xpnet.kernels import reference_image as ref
from xpnet.kernels.reference_image import INTERPOLATIONS
from xpnet.kernels.reference_image import resize
from xpnet.kernels.reference_image import resize_grad
from xpnet.kernels.reference_image import resize_weights

__all__ = ["INTERPOLATIONS", "resize_weights", "resize", "resize_grad", "affine",
           "affine_grad", "AffineContext"]

_CPU = []


def _cpu():
    if not _CPU:
        _CPU.append(importlib.import_module("xpnet.kernels._cpu_image"))
    return _CPU[0]


class AffineContext(NamedTuple):
    """What :func:`affine_grad` needs: the transforms and options, and the composition's
    gather plan (None on the njit path, which recomputes the taps)."""

    transforms: object
    interpolation: str
    fill_mode: str
    plan: object


def affine(x, transforms, interpolation, fill_mode, fill_value):
    """Images ``x (batch, h, w, c)`` sampled by per-image affine ``transforms`` (float64
    ``(batch, 6)``, ``[a0, a1, a2, b0, b1, b2]``); returns ``(y, ctx)``."""
    xp = namespace(x)
    # float32/float64 only: Numba has no float16 (robust, #11); other dtypes: the reference
    if enabled() and is_numpy_namespace(xp) and x.dtype.kind == "f" and \
            x.dtype.itemsize in (4, 8):
        import numpy as np

        cpu = _cpu()
        out = np.empty_like(x)
        cpu.affine_forward(np.ascontiguousarray(x), np.ascontiguousarray(transforms),
                           int(interpolation == "bilinear"), cpu.MODES[fill_mode],
                           float(fill_value), out)
        return out, AffineContext(transforms, interpolation, fill_mode, None)
    plan = ref.affine_plan(transforms, x.shape, interpolation, fill_mode, x.dtype)
    return (ref.affine_sample(x, plan, fill_value),
            AffineContext(transforms, interpolation, fill_mode, plan))


def affine_grad(ctx, dy):
    """The gradient of :func:`affine` with respect to its images."""
    if ctx.plan is not None:
        return ref.affine_sample_grad(dy, ctx.plan)
    import numpy as np

    cpu = _cpu()
    dx = np.empty_like(dy)
    cpu.affine_backward(np.ascontiguousarray(dy), np.ascontiguousarray(ctx.transforms),
                        int(ctx.interpolation == "bilinear"), cpu.MODES[ctx.fill_mode], dx)
    return dx
