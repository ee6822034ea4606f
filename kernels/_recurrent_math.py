"""Scalar math of the LSTM and GRU cells for the Numba kernels. ``make_cells(tanh,
sigmoid)`` builds the per-element cell functions the CUDA kernels run (exact ``math.tanh``
and an overflow-free sigmoid). The CPU kernels (``_cpu_recurrent``) run the same equations
as row loops, with ``tanh_rational`` in float32: a branch-free rational tanh that LLVM
vectorizes (Numba's ``math.exp``/``math.tanh`` are scalar libm calls here, no SVML: an LSTM
step at batch 64, 128 units took 620 us with them, about 30 us with this).

A masked row (``m`` False) carries its state through: its outputs are the previous state
and its gradient passes straight to the previous step.
"""

import math

import numpy as np

_F = np.float32
# Eigen's float tanh (generic_fast_tanh_float): x P(x^2) / Q(x^2) on [-7.9053, 7.9053],
# +-1 beyond; absolute error <= 3.2e-7 against float64 tanh (measured on 32,768 draws).
_CLAMP = _F(7.90531110763549805)
_A13, _A11, _A9 = _F(-2.76076847742355e-16), _F(2.00018790482477e-13), _F(-8.60467152213735e-11)
_A7, _A5, _A3 = _F(5.12229709037114e-08), _F(1.48572235717979e-05), _F(6.37261928875436e-04)
_A1 = _F(4.89352455891786e-03)
_B6, _B4, _B2 = _F(1.19825839466702e-06), _F(1.18534705686654e-04), _F(2.26843463243900e-03)
_B0 = _F(4.89352518554385e-03)
_HALF = _F(0.5)


def tanh_rational(x):
    x = max(-_CLAMP, min(_CLAMP, x))
    x2 = x * x
    p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


def tanh_exact(x):
    return math.tanh(x)


def sigmoid_exact(x):
    e = math.exp(-abs(x))  # never overflows; full precision on both sides
    return (1.0 if x >= 0 else e) / (1.0 + e)


def make_cells(tanh, sigmoid, compile_fn, one=1.0):
    """``(lstm_cell, lstm_cell_grad, gru_cell, gru_cell_grad)`` around the compiled
    ``tanh`` and ``sigmoid``, each compiled by ``compile_fn``; ``one`` is 1 in the dtype the
    math should stay in (``np.float32(1)`` keeps float32 kernels in float32)."""

    def lstm_cell(zi, zf, zg, zo, c_prev, h_prev, m):
        """Gates ``i, f, g, o``, then ``c = f c_prev + i g`` and ``h = o tanh(c)``."""
        i, f, o = sigmoid(zi), sigmoid(zf), sigmoid(zo)
        g = tanh(zg)
        c = f * c_prev + i * g
        h = o * tanh(c)
        if not m:
            return i, f, g, o, c_prev, h_prev
        return i, f, g, o, c, h

    def lstm_cell_grad(dh, dc, i, f, g, o, c, c_prev, m):
        """Gradients of the pre-activations and of ``c_prev``, and the part of ``dh`` going
        straight to ``h_prev`` (all of it on a masked row)."""
        zero = dh - dh
        if not m:
            return zero, zero, zero, zero, dc, dh
        tc = tanh(c)
        dct = dc + dh * o * (one - tc * tc)
        return (dct * g * i * (one - i), dct * c_prev * f * (one - f), dct * i * (one - g * g),
                dh * tc * o * (one - o), dct * f, zero)

    def gru_cell(xz, xr, xh, rz, rr, rh, h_prev, m):
        """Keras's ``reset_after=True`` GRU: ``z, r``, ``hh = tanh(xh + r rh)``,
        ``h = z h_prev + (one - z) hh``."""
        z = sigmoid(xz + rz)
        r = sigmoid(xr + rr)
        hh = tanh(xh + r * rh)
        if not m:
            return z, r, hh, h_prev
        return z, r, hh, z * h_prev + (one - z) * hh

    def gru_cell_grad(dh, z, r, hh, rh, h_prev, m):
        """Gradients of the input part ``(dxz, dxr, dxh)``, of the recurrent candidate
        ``drh``, and the part of ``dh`` going straight to ``h_prev``."""
        zero = dh - dh
        if not m:
            return zero, zero, zero, zero, dh
        dah = dh * (one - z) * (one - hh * hh)
        daz = dh * (h_prev - hh) * z * (one - z)
        dar = dah * rh * r * (one - r)
        return daz, dar, dah, dah * r, dh * z

    return tuple(compile_fn(f) for f in (lstm_cell, lstm_cell_grad, gru_cell, gru_cell_grad))
