"""``numba.njit`` scatter-add for NumPy arrays: one pass over the rows, in place."""

import numba


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _scatter_add_rows(table, ids, rows):
    v = table.shape[0]
    for i in range(ids.shape[0]):
        r = ids[i]
        if r < 0:  # NumPy-style negative indices, as the gather (xp.take) accepts them
            r += v
        for j in range(rows.shape[1]):
            table[r, j] += rows[i, j]


def scatter_add_rows(table, ids, rows):
    """``table[ids[i]] += rows[i]`` in place (duplicates summed); returns ``table``."""
    if ids.shape[0]:
        _scatter_add_rows(table, ids, rows)
    return table
