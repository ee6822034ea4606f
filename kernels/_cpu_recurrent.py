"""``numba.njit`` LSTM and GRU cell kernels for NumPy arrays: the gates, the state update,
their derivatives and the mask in one pass over ``(batch, units)``, writing into the
caller's preallocated per-step buffers."""

import numba

from xpnet.kernels import _recurrent_math as rm

_lstm_cell = numba.njit(inline="always")(rm.lstm_cell)
_lstm_cell_grad = numba.njit(inline="always")(rm.lstm_cell_grad)
_gru_cell = numba.njit(inline="always")(rm.gru_cell)
_gru_cell_grad = numba.njit(inline="always")(rm.gru_cell_grad)


def _jit(f):
    return numba.njit(cache=True, error_model="numpy", nogil=True)(f)


@_jit
def lstm_forward(xz, rz, c_prev, h_prev, m, gates, c, h):
    """``gates = [i, f, g, o]`` of ``xz + rz``; ``c``, ``h`` the new (or carried) state."""
    u = c.shape[1]
    for b in range(c.shape[0]):
        mb = m[b]
        for j in range(u):
            i, f, g, o, cn, hn = _lstm_cell(xz[b, j] + rz[b, j], xz[b, u + j] + rz[b, u + j],
                                            xz[b, 2 * u + j] + rz[b, 2 * u + j],
                                            xz[b, 3 * u + j] + rz[b, 3 * u + j],
                                            c_prev[b, j], h_prev[b, j], mb)
            gates[b, j], gates[b, u + j], gates[b, 2 * u + j], gates[b, 3 * u + j] = i, f, g, o
            c[b, j], h[b, j] = cn, hn


@_jit
def lstm_backward(dh, dc, gates, c, c_prev, m, dz):
    """``dz`` of the pre-activations; ``dc`` becomes dL/dc_prev and ``dh`` the part of dL/dh
    that reaches ``h_prev`` directly (both in place)."""
    u = c.shape[1]
    for b in range(c.shape[0]):
        mb = m[b]
        for j in range(u):
            r = _lstm_cell_grad(dh[b, j], dc[b, j], gates[b, j], gates[b, u + j],
                                gates[b, 2 * u + j], gates[b, 3 * u + j], c[b, j],
                                c_prev[b, j], mb)
            dz[b, j], dz[b, u + j], dz[b, 2 * u + j], dz[b, 3 * u + j] = r[0], r[1], r[2], r[3]
            dc[b, j], dh[b, j] = r[4], r[5]


@_jit
def gru_forward(xz, rz, h_prev, m, gates, h):
    """``gates = [z, r, hh, rh]`` (``rh`` the recurrent candidate part, kept for the
    gradient of ``r``); ``h`` the new (or carried) state. ``rz`` includes its bias."""
    u = h.shape[1]
    for b in range(h.shape[0]):
        mb = m[b]
        for j in range(u):
            rh = rz[b, 2 * u + j]
            z, r, hh, hn = _gru_cell(xz[b, j], xz[b, u + j], xz[b, 2 * u + j], rz[b, j],
                                     rz[b, u + j], rh, h_prev[b, j], mb)
            gates[b, j], gates[b, u + j], gates[b, 2 * u + j], gates[b, 3 * u + j] = z, r, hh, rh
            h[b, j] = hn


@_jit
def gru_backward(dh, gates, h_prev, m, dx, dr):
    """``dx`` (input part) and ``dr`` (recurrent part) of the pre-activations; ``dh``
    becomes the part of dL/dh reaching ``h_prev`` directly (in place)."""
    u = h_prev.shape[1]
    for b in range(h_prev.shape[0]):
        mb = m[b]
        for j in range(u):
            daz, dar, dah, drh, dhp = _gru_cell_grad(dh[b, j], gates[b, j], gates[b, u + j],
                                                     gates[b, 2 * u + j], gates[b, 3 * u + j],
                                                     h_prev[b, j], mb)
            dx[b, j], dx[b, u + j], dx[b, 2 * u + j] = daz, dar, dah
            dr[b, j], dr[b, u + j], dr[b, 2 * u + j] = daz, dar, drh
            dh[b, j] = dhp
