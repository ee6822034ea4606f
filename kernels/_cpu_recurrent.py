"""``numba.njit`` LSTM and GRU cell kernels for NumPy arrays: the gates, the state update,
their derivatives and the mask in one call per step, writing into the caller's
preallocated per-step buffers; and the LSTM's and GRU's whole recurrence in one call per
range of batch rows (each step's product through Numba's ``np.dot``, i.e. SciPy's BLAS,
then the step kernel).

Each row runs as a few short loops that each write one array: LLVM vectorizes a loop only
while its runtime alias checks stay few, and one loop writing gates, c and h at once ran
scalar (383 us a step at batch 64, 128 units, against 20-40 us split). float32 uses a
branch-free rational tanh that vectorizes (Numba's ``math.tanh``/``exp`` are scalar libm
calls here: no SVML), ``sigmoid(x) = (1 + tanh(x/2)) / 2``; float64 uses libm's, exact,
for gradient checks. The equations are those of ``_recurrent_math`` (the CUDA kernels'
and, as array-API code, ``recurrent.py``'s reference).
"""

import numba
import numpy as np

from xpnet.kernels import _recurrent_math as rm


def _inline(f):
    return numba.njit(inline="always")(f)


def _jit(f):
    return numba.njit(cache=True, error_model="numpy", nogil=True)(f)


@_inline
def _add_rows(dst, src, i0):
    """``dst[i0 + b] += src[b]`` for every row ``b`` of ``src``."""
    for b in range(src.shape[0]):
        for j in range(src.shape[1]):
            dst[i0 + b, j] += src[b, j]


_HALF32 = np.float32(0.5)
_tanh32 = _inline(rm.tanh_rational)
_tanh64 = _inline(rm.tanh_exact)


@_inline
def _sigmoid32(x):
    return _HALF32 + _HALF32 * _tanh32(_HALF32 * x)


_sigmoid64 = _inline(rm.sigmoid_exact)


def _make(tanh, sigmoid, one, suffix):
    def lstm_forward(xz, rz, c_prev, h_prev, m, gates, c, h):
        u = c.shape[1]
        for b in range(c.shape[0]):
            for j in range(2 * u):  # loops from 0: an offset start ran 3x slower
                gates[b, j] = sigmoid(xz[b, j] + rz[b, j])
            for j in range(u):
                gates[b, 2 * u + j] = tanh(xz[b, 2 * u + j] + rz[b, 2 * u + j])
            for j in range(u):
                gates[b, 3 * u + j] = sigmoid(xz[b, 3 * u + j] + rz[b, 3 * u + j])
            if m[b]:
                for j in range(u):
                    c[b, j] = gates[b, u + j] * c_prev[b, j] + gates[b, j] * gates[b, 2 * u + j]
                for j in range(u):
                    h[b, j] = gates[b, 3 * u + j] * tanh(c[b, j])
            else:
                for j in range(u):
                    c[b, j] = c_prev[b, j]
                for j in range(u):
                    h[b, j] = h_prev[b, j]

    def lstm_backward(dh, dc, gates, c, c_prev, m, dz):
        u = c.shape[1]
        for b in range(c.shape[0]):
            if not m[b]:  # carried: dz 0, dh and dc pass through unchanged
                for j in range(4 * u):
                    dz[b, j] = 0
                continue
            for j in range(u):
                tc = tanh(c[b, j])
                o = gates[b, 3 * u + j]
                dz[b, 3 * u + j] = dh[b, j] * tc * o * (one - o)
            for j in range(u):
                tc = tanh(c[b, j])
                dc[b, j] = dc[b, j] + dh[b, j] * gates[b, 3 * u + j] * (one - tc * tc)
            for j in range(u):
                i, f, g = gates[b, j], gates[b, u + j], gates[b, 2 * u + j]
                d = dc[b, j]
                dz[b, j] = d * g * i * (one - i)
                dz[b, u + j] = d * c_prev[b, j] * f * (one - f)
                dz[b, 2 * u + j] = d * i * (one - g * g)
            for j in range(u):
                dc[b, j] = dc[b, j] * gates[b, u + j]
            for j in range(u):
                dh[b, j] = 0

    def gru_forward(xz, rz, h_prev, m, gates, h):
        u = h.shape[1]
        for b in range(h.shape[0]):
            for j in range(2 * u):
                gates[b, j] = sigmoid(xz[b, j] + rz[b, j])
            for j in range(u):
                gates[b, 3 * u + j] = rz[b, 2 * u + j]
            for j in range(u):
                gates[b, 2 * u + j] = tanh(xz[b, 2 * u + j] + gates[b, u + j] *
                                           gates[b, 3 * u + j])
            if m[b]:
                for j in range(u):
                    z = gates[b, j]
                    h[b, j] = z * h_prev[b, j] + (one - z) * gates[b, 2 * u + j]
            else:
                for j in range(u):
                    h[b, j] = h_prev[b, j]

    def gru_backward(dh, gates, h_prev, m, dx, dr):
        u = h_prev.shape[1]
        for b in range(h_prev.shape[0]):
            if not m[b]:
                for j in range(3 * u):
                    dx[b, j] = 0
                for j in range(3 * u):
                    dr[b, j] = 0
                continue
            for j in range(u):
                z, r, hh, rh = gates[b, j], gates[b, u + j], gates[b, 2 * u + j], \
                    gates[b, 3 * u + j]
                g = dh[b, j]
                dah = g * (one - z) * (one - hh * hh)
                dx[b, j] = g * (h_prev[b, j] - hh) * z * (one - z)
                dx[b, u + j] = dah * rh * r * (one - r)
                dx[b, 2 * u + j] = dah
            for j in range(2 * u):
                dr[b, j] = dx[b, j]
            for j in range(u):
                dr[b, 2 * u + j] = dx[b, 2 * u + j] * gates[b, u + j]
            for j in range(u):
                dh[b, j] = dh[b, j] * gates[b, j]

    out = {}
    for f in (lstm_forward, lstm_backward, gru_forward, gru_backward):
        name = f.__name__
        f.__name__ = f.__qualname__ = f"{name}_{suffix}"
        out[name] = _jit(f)
    step_forward, step_backward = out["lstm_forward"], out["lstm_backward"]

    # Rows i0:i1 of the whole arrays (one range per thread): Numba types a row range of a
    # C-contiguous array as C-contiguous, so the step loops vectorise and np.dot reads it
    # in place (a range passed in from Python would be typed any-layout: 2.7x slower).
    def lstm_forward_seq(xz, kernel, m, gates, cs, hs, rz, i0, i1):
        for t in range(xz.shape[0]):
            np.dot(hs[t, i0:i1], kernel, rz)
            step_forward(xz[t, i0:i1], rz, cs[t, i0:i1], hs[t, i0:i1], m[t, i0:i1],
                         gates[t, i0:i1], cs[t + 1, i0:i1], hs[t + 1, i0:i1])

    def lstm_backward_seq(dseq, has_dseq, dh, dc, kernel_t, m, gates, cs, dz, dr, i0, i1):
        for t in range(gates.shape[0] - 1, -1, -1):
            if has_dseq:
                _add_rows(dh, dseq[t, i0:i1], i0)
            step_backward(dh[i0:i1], dc[i0:i1], gates[t, i0:i1], cs[t + 1, i0:i1],
                          cs[t, i0:i1], m[t, i0:i1], dz[t, i0:i1])
            np.dot(dz[t, i0:i1], kernel_t, dr)
            _add_rows(dh, dr, i0)

    gru_step_forward, gru_step_backward = out["gru_forward"], out["gru_backward"]

    def gru_forward_seq(xz, kernel, bias, m, gates, hs, rz, i0, i1):
        for t in range(xz.shape[0]):
            np.dot(hs[t, i0:i1], kernel, rz)
            for b in range(rz.shape[0]):
                for j in range(rz.shape[1]):
                    rz[b, j] += bias[j]
            gru_step_forward(xz[t, i0:i1], rz, hs[t, i0:i1], m[t, i0:i1], gates[t, i0:i1],
                             hs[t + 1, i0:i1])

    def gru_backward_seq(dseq, has_dseq, dh, kernel_t, m, gates, hs, dxz, drz, dr, i0, i1):
        for t in range(gates.shape[0] - 1, -1, -1):
            if has_dseq:
                _add_rows(dh, dseq[t, i0:i1], i0)
            gru_step_backward(dh[i0:i1], gates[t, i0:i1], hs[t, i0:i1], m[t, i0:i1],
                              dxz[t, i0:i1], drz[t, i0:i1])
            np.dot(drz[t, i0:i1], kernel_t, dr)
            _add_rows(dh, dr, i0)

    for f in (lstm_forward_seq, lstm_backward_seq, gru_forward_seq, gru_backward_seq):
        name = f.__name__
        f.__name__ = f.__qualname__ = f"{name}_{suffix}"
        out[name] = _jit(f)
    return out


_F32 = _make(_tanh32, _sigmoid32, np.float32(1), "f32")
_F64 = _make(_tanh64, _sigmoid64, 1.0, "f64")


def _kernels(a):
    return _F32 if a.dtype == np.float32 else _F64


def lstm_forward(xz, rz, c_prev, h_prev, m, gates, c, h):
    """``gates = [i, f, g, o]`` of ``xz + rz``; ``c``, ``h`` the new (or carried) state."""
    _kernels(xz)["lstm_forward"](xz, rz, c_prev, h_prev, m, gates, c, h)


def lstm_backward(dh, dc, gates, c, c_prev, m, dz):
    """``dz`` of the pre-activations; ``dc`` becomes dL/dc_prev and ``dh`` the part of dL/dh
    reaching ``h_prev`` directly (both in place)."""
    _kernels(dh)["lstm_backward"](dh, dc, gates, c, c_prev, m, dz)


def gru_forward(xz, rz, h_prev, m, gates, h):
    """``gates = [z, r, hh, rh]`` (``rh`` the recurrent candidate part, kept for the
    gradient of ``r``); ``h`` the new (or carried) state; ``rz`` includes its bias."""
    _kernels(xz)["gru_forward"](xz, rz, h_prev, m, gates, h)


def gru_backward(dh, gates, h_prev, m, dx, dr):
    """``dx`` (input part) and ``dr`` (recurrent part) of the pre-activations; ``dh``
    becomes the part of dL/dh reaching ``h_prev`` directly (in place)."""
    _kernels(dh)["gru_backward"](dh, gates, h_prev, m, dx, dr)


def lstm_forward_seq(xz, kernel, mask, gates, cs, hs, rows):
    """Rows ``rows[0]:rows[1]`` of every step of :func:`lstm_forward` with its recurrent
    product ``hs[t] @ kernel``, in one call (Numba's ``np.dot``: BLAS without a Python round
    trip a step). ``mask`` is a bool ``(T, B)`` array; buffers as in
    :mod:`xpnet.kernels.recurrent`, C-contiguous, whole (every thread passes the same)."""
    i, j = rows
    rz = np.empty((j - i, kernel.shape[1]), dtype=hs.dtype)
    _kernels(xz)["lstm_forward_seq"](xz, kernel, mask, gates, cs, hs, rz, i, j)


def lstm_backward_seq(dseq, dh, dc, kernel_t, mask, gates, cs, dz, rows):
    """Rows ``rows[0]:rows[1]`` of every step of :func:`lstm_backward` in reverse, with
    ``dz[t] @ kernel_t`` (the recurrent kernel, transposed, C-contiguous) added to ``dh``;
    ``dseq (T, B, u)`` (or None) joins ``dh`` at each step. ``dh`` and ``dc`` (whole) are
    updated in place into the initial state's gradients."""
    i, j = rows
    dr = np.empty((j - i, dh.shape[1]), dtype=dh.dtype)
    has = dseq is not None
    _kernels(dh)["lstm_backward_seq"](dseq if has else dh[None], has, dh, dc, kernel_t, mask,
                                      gates, cs, dz, dr, i, j)


def gru_forward_seq(xz, kernel, bias, mask, gates, hs, rows):
    """Rows ``rows[0]:rows[1]`` of every step of :func:`gru_forward` with its recurrent
    product ``hs[t] @ kernel + bias`` (``bias``: the recurrent bias row), in one call."""
    i, j = rows
    rz = np.empty((j - i, kernel.shape[1]), dtype=hs.dtype)
    _kernels(xz)["gru_forward_seq"](xz, kernel, bias, mask, gates, hs, rz, i, j)


def gru_backward_seq(dseq, dh, kernel_t, mask, gates, hs, dxz, drz, rows):
    """Rows ``rows[0]:rows[1]`` of every step of :func:`gru_backward` in reverse, with
    ``drz[t] @ kernel_t`` added to ``dh`` (whole, updated in place into the initial state's
    gradient); ``dseq`` (or None) joins ``dh`` at each step."""
    i, j = rows
    dr = np.empty((j - i, dh.shape[1]), dtype=dh.dtype)
    has = dseq is not None
    _kernels(dh)["gru_backward_seq"](dseq if has else dh[None], has, dh, kernel_t, mask,
                                     gates, hs, dxz, drz, dr, i, j)


def c(a):
    """``a`` C-contiguous (a copy only if it is not): the sequence kernels' arrays."""
    return np.ascontiguousarray(a)
