"""Scalar math shared by the Numba CPU and CUDA kernels (compiled by each, not imported as
Python at run time): the activation derivatives, written once."""

import math

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)

# Elementwise activations by code; softmax and log_softmax are row-wise, handled apart.
CODES = {"relu": 0, "relu6": 1, "leaky_relu": 2, "elu": 3, "selu": 4, "sigmoid": 5,
         "hard_sigmoid": 6, "tanh": 7, "softplus": 8, "softsign": 9, "exponential": 10,
         "gelu": 11, "gelu_tanh": 12, "silu": 13}


def dact(code, g, s, alpha):
    """``g * f'(.)`` from the saved value ``s`` (output or input, as reference.SAVES says)."""
    if code == 0:  # relu
        return g if s > 0 else g * 0
    if code == 1:  # relu6
        return g if 0 < s < 6 else g * 0
    if code == 2:  # leaky_relu
        return g if s > 0 else g * alpha
    if code == 3:  # elu
        return g if s > 0 else g * (s + alpha)
    if code == 4:  # selu
        return g * SELU_SCALE if s > 0 else g * (s + SELU_SCALE * SELU_ALPHA)
    if code == 5:  # sigmoid
        return g * s * (1 - s)
    if code == 6:  # hard_sigmoid
        return g / 6 if 0 < s < 1 else g * 0
    if code == 7:  # tanh
        return g * (1 - s * s)
    if code == 8:  # softplus: sigmoid(z) = 1 - exp(-y)
        return -g * math.expm1(-s)
    if code == 9:  # softsign: (1 - |y|)^2
        t = 1 - abs(s)
        return g * t * t
    if code == 10:  # exponential
        return g * s
    if code == 11:  # gelu (exact): Phi(z) + z phi(z)
        cdf = 0.5 * (1.0 + math.erf(s * INV_SQRT_2))
        return g * (cdf + s * INV_SQRT_2PI * math.exp(-0.5 * s * s))
    if code == 12:  # gelu_tanh
        t = math.tanh(SQRT_2_OVER_PI * (s + 0.044715 * s * s * s))
        du = SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * s * s)
        return g * (0.5 * (1.0 + t) + 0.5 * s * (1.0 - t * t) * du)
    # 13: silu, its sigmoid computed without overflow
    e = math.exp(-abs(s))
    sig = 1.0 / (1.0 + e) if s >= 0 else e / (1.0 + e)
    return g * sig * (1.0 + s * (1.0 - sig))
