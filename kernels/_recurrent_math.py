"""Scalar math of the LSTM and GRU cells (sigmoid gates, tanh candidate), written once and
compiled by both the Numba CPU kernels and the CUDA kernels. A masked row (``m`` False)
carries its state through: its outputs are the previous state and its gradients pass
straight to the previous step."""

import math


def lstm_cell(zi, zf, zg, zo, c_prev, h_prev, m):
    """Gates ``i, f, g, o``, then ``c = f c_prev + i g`` and ``h = o tanh(c)``."""
    # sigmoid written out (a helper would need jitting for each target) as
    # (1 or e) / (1 + e), e = exp(-|x|): no overflow, full precision on both sides
    ei, ef, eo = math.exp(-abs(zi)), math.exp(-abs(zf)), math.exp(-abs(zo))
    i = (1.0 if zi >= 0 else ei) / (1.0 + ei)
    f = (1.0 if zf >= 0 else ef) / (1.0 + ef)
    o = (1.0 if zo >= 0 else eo) / (1.0 + eo)
    g = math.tanh(zg)
    c = f * c_prev + i * g
    h = o * math.tanh(c)
    if not m:
        return i, f, g, o, c_prev, h_prev
    return i, f, g, o, c, h


def lstm_cell_grad(dh, dc, i, f, g, o, c, c_prev, m):
    """Gradients of the pre-activations ``(dzi, dzf, dzg, dzo)`` and of ``c_prev``, and the
    part of ``dh`` that goes straight to ``h_prev`` (all of it on a masked row)."""
    if not m:
        return 0.0 * dh, 0.0 * dh, 0.0 * dh, 0.0 * dh, dc, dh
    tc = math.tanh(c)
    dct = dc + dh * o * (1.0 - tc * tc)
    dzi = dct * g * i * (1.0 - i)
    dzf = dct * c_prev * f * (1.0 - f)
    dzg = dct * i * (1.0 - g * g)
    dzo = dh * tc * o * (1.0 - o)
    return dzi, dzf, dzg, dzo, dct * f, 0.0 * dh


def gru_cell(xz, xr, xh, rz, rr, rh, h_prev, m):
    """Keras's ``reset_after=True`` GRU: ``z, r`` from input and recurrent parts,
    ``hh = tanh(xh + r rh)``, ``h = z h_prev + (1 - z) hh``."""
    az, ar = xz + rz, xr + rr
    ez, er = math.exp(-abs(az)), math.exp(-abs(ar))
    z = (1.0 if az >= 0 else ez) / (1.0 + ez)
    r = (1.0 if ar >= 0 else er) / (1.0 + er)
    hh = math.tanh(xh + r * rh)
    h = z * h_prev + (1.0 - z) * hh
    if not m:
        return z, r, hh, h_prev
    return z, r, hh, h


def gru_cell_grad(dh, z, r, hh, rh, h_prev, m):
    """Gradients of the input part ``(dxz, dxr, dxh)``, of the recurrent part's candidate
    ``drh`` (``z, r``'s recurrent parts share ``dxz, dxr``) and the part of ``dh`` going
    straight to ``h_prev``."""
    if not m:
        return 0.0 * dh, 0.0 * dh, 0.0 * dh, 0.0 * dh, dh
    dah = dh * (1.0 - z) * (1.0 - hh * hh)
    daz = dh * (h_prev - hh) * z * (1.0 - z)
    dar = dah * rh * r * (1.0 - r)
    return daz, dar, dah, dah * r, dh * z
