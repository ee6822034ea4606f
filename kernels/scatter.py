"""Scatter-add of rows, the gradient of a gather (``Embedding``): one dispatch point.

The array API has no scatter-add, and ``array_api_extra.at(x, idx).add(v)`` does not
accumulate duplicate indices (TOOLCHAIN.md, section 4), so the reference is a one-hot
product ``onehot(ids).mT @ rows``, which sums duplicates by construction. NumPy takes the
``numba.njit`` loop of ``_cpu_scatter.py`` and CuPy the ``numba.cuda`` kernel of
``_cuda_scatter.py`` (atomic adds); both add in place with no (N, V) one-hot matrix.
"""

import importlib

from array_api_compat import is_cupy_namespace
from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import enabled

__all__ = ["scatter_add_rows", "scatter_add_rows_reference"]

_MODULES = {}
# The reference's one-hot block: at most this many ids at a time, so its (chunk, V)
# temporary stays bounded for large vocabularies.
_CHUNK = 4096


def _load(name):
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = importlib.import_module(f"xpnet.kernels._{name}_scatter")
    return mod


def scatter_add_rows(table, ids, rows):
    """``table[ids[i]] += rows[i]`` for every ``i``, in place, duplicates summed.

    Parameters
    ----------
    table : array (V, D)
        Float array to add into (an embedding's gradient).
    ids : int array (N,)
        Row indices in ``[0, V)``.
    rows : array (N, D)
        What to add, same dtype as ``table``.
    """
    xp = namespace(table)
    if enabled() and rows.dtype == table.dtype:
        if is_numpy_namespace(xp):
            return _load("cpu").scatter_add_rows(table, _c(ids), _c(rows))
        if is_cupy_namespace(xp):
            return _load("cuda").scatter_add_rows(table, _c(ids), _c(rows))
    return scatter_add_rows_reference(table, ids, rows, xp)


def _c(a):
    # The kernels walk flat memory: a strided view (a slice, a transpose) is copied once.
    return a if a.flags.c_contiguous else a.copy(order="C")


def scatter_add_rows_reference(table, ids, rows, xp):
    """The array-API composition: ``table += onehot(ids).mT @ rows``, in chunks of ids."""
    classes = xp.arange(table.shape[0], dtype=ids.dtype, device=_device(table))
    n = ids.shape[0]
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)  # the standard leaves out-of-bounds stops undefined
        onehot = xp.astype(ids[start:stop][:, None] == classes[None, :], table.dtype)
        table += onehot.mT @ rows[start:stop, ...]
    return table


def _device(a):
    from array_api_compat import device

    return device(a)
