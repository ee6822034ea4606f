"""Shared fixtures: ``backend`` runs a test on NumPy, on array-api-strict (on a non-CPU
device, so any NumPy call on its arrays fails), and on CuPy where a GPU is present."""

import os

import pytest

from xpnet.backend import BackendUnavailableError
from xpnet.backend import get_backend


def _cuda_tests_can_run():
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return True
    try:
        get_backend("cuda")
        return True
    except BackendUnavailableError:
        return False


# tests/cuda runs under the CUDA simulator in its own process (.ci/run), or on a GPU.
collect_ignore = [] if _cuda_tests_can_run() else ["cuda"]

MNIST_DIR = os.environ.get(
    "XPNET_MNIST", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist"))


def _backends():
    params = [pytest.param("cpu", id="numpy")]
    params.append(pytest.param("strict", id="strict"))
    try:
        get_backend("cuda")
        params.append(pytest.param("cuda", id="cupy", marks=pytest.mark.cuda))
    except BackendUnavailableError:
        pass
    return params


def make_backend(name):
    if name == "strict":
        import array_api_strict

        return get_backend(array_api_strict, device=array_api_strict.Device("device1"))
    return get_backend(name)


@pytest.fixture(params=_backends())
def backend(request):
    """A Backend: NumPy, array-api-strict on Device("device1"), and CuPy with a GPU."""
    return make_backend(request.param)


@pytest.fixture
def njit():
    """The Numba kernels on for one test, even under XPNET_KERNELS=0."""
    from xpnet import kernels

    was = kernels.enabled()
    kernels.enabled(True)
    yield
    kernels.enabled(was)


@pytest.fixture
def cpu():
    return get_backend("cpu")


@pytest.fixture
def mnist_dir():
    if not os.path.exists(os.path.join(MNIST_DIR, "t10k-images-idx3-ubyte.gz")):
        pytest.skip(f"MNIST test set not found in {MNIST_DIR} (set XPNET_MNIST)")
    return MNIST_DIR
