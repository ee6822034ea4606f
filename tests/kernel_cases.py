"""Inputs shared by the kernel tests on the CPU (njit) and on CUDA (GPU or simulator)."""

import numpy as np
from hypothesis import strategies as st

ELEMENTWISE = ["relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid",
               "tanh", "softplus", "softsign", "exponential", "gelu", "gelu_tanh", "silu"]
ROWWISE = ["softmax", "log_softmax"]
ALPHA = {"leaky_relu": 0.2, "elu": 1.0}


def activation_case(kind, shape, dtype, seed, scale=3.0):
    """``(dy, saved)`` with ``saved`` a plausible output (or input) of the activation."""
    import array_api_compat.numpy as xp

    from xpnet.kernels import SAVES
    from xpnet.kernels import reference

    rng = np.random.default_rng(seed)
    z = rng.standard_normal(shape) * scale
    saved = z if SAVES[kind] == "z" else reference.activation(kind, z, xp, ALPHA.get(kind))
    dy = rng.standard_normal(shape)
    return dy.astype(dtype), np.asarray(saved).astype(dtype)


def tolerance(dtype):
    # float32: the composition itself loses ~1e-6 to cancellation (gelu_tanh near t = -1)
    return {"rtol": 2e-5, "atol": 1e-5} if dtype == np.float32 else \
        {"rtol": 1e-11, "atol": 1e-12}


shapes = st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple)
dtypes = st.sampled_from([np.float32, np.float64])
