"""Every CUDA kernel compiles to PTX for a real GPU (sm_80), for float32 and float64.

The CUDA simulator runs kernels as Python and does not type-check them, so a kernel can pass
the simulator tests and still fail to compile; this compiles each one with NVVM, which needs
no GPU. It needs the NVVM/NVRTC wheels (``pip install 'numba-cuda[cu13]'``, as .ci/run
does); elsewhere it is skipped, unless XPNET_REQUIRE_PTX=1 makes their absence a failure.
"""

import os

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


def _signatures(f):
    v, m = f[:], f[:, :]
    return {
        "_activation_grad": (int64, v, v, float64, v),
        "_softmax_grad": (m, m, boolean, m),
        "_softmax_ce": (m, int64[:], m, boolean, v, float64, v, m),
        "_adam": (v, v, v, v, v, boolean, float64, float64, float64, float64, float64),
        "_rmsprop": (v, v, v, v, v, boolean, boolean, float64, float64, float64, float64),
        "_sgd": (v, v, v, boolean, boolean, float64, float64),
        "_adagrad": (v, v, v, float64, float64),
        "_cuda_scatter._scatter_add_rows": (m, int64[:], m),
        "_cuda_recurrent._lstm_forward": (m, m, m, m, boolean[:], m, m, m),
        "_cuda_recurrent._lstm_backward": (m, m, m, m, m, boolean[:], m),
        "_cuda_recurrent._gru_forward": (m, m, m, boolean[:], m, m),
        "_cuda_recurrent._gru_backward": (m, m, m, boolean[:], m, m),
        # kernels/_cuda_optim.py
        "_nadam": (v, v, v, v) + (float64,) * 7,
        "_adamax": (v, v, v, v) + (float64,) * 4,
        "_adadelta": (v, v, v, v) + (float64,) * 3,
        "_ftrl": (v, v, v, v) + (float64,) * 5,
        "_lion": (v, v, v) + (float64,) * 3,
    }


def _nvvm_available():
    try:
        cuda.compile_ptx(lambda a: None, (types.float32[:],), cc=(8, 0))
        return True
    except Exception:
        return False


@pytest.fixture(scope="module")
def nvvm():
    if not _nvvm_available():
        if os.environ.get("XPNET_REQUIRE_PTX") == "1":
            pytest.fail("XPNET_REQUIRE_PTX=1 but NVVM is missing: pip install "
                        "'numba-cuda[cu13]'")
        pytest.skip("NVVM/NVRTC wheels not installed (pip install 'numba-cuda[cu13]')")


@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize("name", list(_signatures(types.float32)))
def test_kernel_compiles_for_sm80(nvvm, name, dtype):
    import importlib

    from xpnet.kernels import _cuda
    from xpnet.kernels import _cuda_optim

    module, _, attr = name.rpartition(".")
    if module:  # "_cuda_recurrent._lstm_forward": a kernel of another module
        kernel = getattr(importlib.import_module(f"xpnet.kernels.{module}"), attr)
    else:
        kernel = getattr(_cuda, name, None) or getattr(_cuda_optim, name)
    ptx, _ = cuda.compile_ptx(kernel.py_func, _signatures(dtype)[name], cc=(8, 0))
    assert ".entry" in ptx and "sm_80" in ptx


# -- box kernels (issue 15) --
def _box_signatures(f):
    m, t = f[:, :], f[:, :, :, :]
    return {
        "_nms": (m, int64[:], float64, types.uint8[:]),
        "_roi_align": (t, m, float64, int64, boolean, t),
        "_roi_align_grad": (t, m, float64, int64, boolean, t),
        "_roi_pool": (t, m, float64, t, int64[:, :, :, :]),
        "_roi_pool_grad": (t, int64[:, :, :, :], m, t),
    }


@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize("name", list(_box_signatures(types.float32)))
def test_box_kernel_compiles_for_sm80(nvvm, name, dtype):
    from xpnet.kernels import _cuda_boxes

    kernel = getattr(_cuda_boxes, name)
    ptx, _ = cuda.compile_ptx(kernel.py_func, _box_signatures(dtype)[name], cc=(8, 0))
    assert ".entry" in ptx and "sm_80" in ptx
