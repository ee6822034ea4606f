"""``numba.cuda`` scatter-add for CuPy arrays: one thread per element, atomic adds (two ids
may name the same row), queued on CuPy's current stream. Under the CUDA simulator the
launcher takes NumPy arrays."""

from numba import cuda

from xpnet.kernels._cuda import TPB
from xpnet.kernels._cuda import _grid
from xpnet.kernels._cuda import _stream


@cuda.jit
def _scatter_add_rows(table, ids, rows):
    start, stride = cuda.grid(1), cuda.gridsize(1)
    d, v = rows.shape[1], table.shape[0]
    for k in range(start, ids.shape[0] * d, stride):
        i = k // d
        j = k - i * d
        r = ids[i]
        if r < 0:
            r += v
        cuda.atomic.add(table, (r, j), rows[i, j])


def scatter_add_rows(table, ids, rows):
    """``table[ids[i]] += rows[i]`` in place on the device; returns ``table``."""
    n = ids.shape[0] * rows.shape[1]
    if n:
        _scatter_add_rows[_grid(n), TPB, _stream(table)](table, ids, rows)
    return table
