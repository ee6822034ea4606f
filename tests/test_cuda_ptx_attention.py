"""The attention kernels compile to PTX for sm_80 (float32 and float64): the simulator does
not type-check them (see tests/test_cuda_ptx.py)."""

import pytest

numba = pytest.importorskip("numba")
if numba.config.ENABLE_CUDASIM:
    pytest.skip("PTX compilation is not available under the CUDA simulator",
                allow_module_level=True)

from numba import boolean  # noqa: E402
from numba import cuda  # noqa: E402
from numba import float64  # noqa: E402
from numba import int64  # noqa: E402
from numba import types  # noqa: E402
from test_cuda_ptx import nvvm  # noqa: E402,F401 - the fixture


def _signatures(f):
    a3, a2, u2, u3 = f[:, :, :], f[:, :], types.uint8[:, :], types.uint8[:, :, :]
    masks = (u2, u2, u3, int64, boolean, int64, float64, int64, int64, float64)
    return [(a3, a3, a3, *masks, a3, a2),
            (a3, a3, a3, a3, a3, a2, *masks, a3, a2),
            (a3, a3, a3, a3, a2, a2, *masks, a3, a3)]


@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize("index", [0, 1, 2], ids=["forward", "grad_q", "grad_kv"])
def test_attention_kernel_compiles_for_sm80(nvvm, index, dtype):  # noqa: F811
    from xpnet.kernels import _cuda_attention

    kernel = _cuda_attention._kernels(str(dtype))[index]
    ptx, _ = cuda.compile_ptx(kernel.py_func, _signatures(dtype)[index], cc=(8, 0))
    assert ".entry" in ptx and "sm_80" in ptx
