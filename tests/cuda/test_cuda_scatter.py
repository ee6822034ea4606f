"""The numba.cuda scatter-add (atomic adds) against np.add.at, duplicates included."""

import numpy as np
import pytest


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scatter_add_rows(device, dtype):
    from xpnet.kernels import scatter

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 9)
    ids[:4] = 2
    rows = rng.standard_normal((9, 3)).astype(dtype)
    start = rng.standard_normal((4, 3)).astype(dtype)
    want = start.copy()
    np.add.at(want, ids, rows)
    table = device.put(start)
    if device.gpu:
        scatter.scatter_add_rows(table, device.put(ids), device.put(rows))
    else:
        scatter._load("cuda").scatter_add_rows(table, ids, rows)
    np.testing.assert_allclose(device.get(table), want, rtol=1e-5, atol=1e-6)
