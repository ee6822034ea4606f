"""``numba.cuda`` LSTM and GRU cell kernels for CuPy arrays: one thread per (row, unit),
grid-stride, the same scalar math as the CPU kernels (``_recurrent_math.py``), queued on
CuPy's current stream. Under the CUDA simulator the launchers take NumPy arrays."""

from numba import cuda

from xpnet.kernels import _recurrent_math as rm
from xpnet.kernels._cuda import TPB
from xpnet.kernels._cuda import _grid
from xpnet.kernels._cuda import _stream


def _device(f):
    return cuda.jit(device=True, inline=True)(f)


_lstm_cell, _lstm_cell_grad, _gru_cell, _gru_cell_grad = rm.make_cells(
    _device(rm.tanh_exact), _device(rm.sigmoid_exact), _device)


@cuda.jit
def _lstm_forward(xz, rz, c_prev, h_prev, m, gates, c, h):
    u = c.shape[1]
    for k in range(cuda.grid(1), c.shape[0] * u, cuda.gridsize(1)):
        b = k // u
        j = k - b * u
        i, f, g, o, cn, hn = _lstm_cell(xz[b, j] + rz[b, j], xz[b, u + j] + rz[b, u + j],
                                        xz[b, 2 * u + j] + rz[b, 2 * u + j],
                                        xz[b, 3 * u + j] + rz[b, 3 * u + j],
                                        c_prev[b, j], h_prev[b, j], m[b])
        gates[b, j] = i
        gates[b, u + j] = f
        gates[b, 2 * u + j] = g
        gates[b, 3 * u + j] = o
        c[b, j] = cn
        h[b, j] = hn


@cuda.jit
def _lstm_backward(dh, dc, gates, c, c_prev, m, dz):
    u = c.shape[1]
    for k in range(cuda.grid(1), c.shape[0] * u, cuda.gridsize(1)):
        b = k // u
        j = k - b * u
        dzi, dzf, dzg, dzo, dcp, dhp = _lstm_cell_grad(
            dh[b, j], dc[b, j], gates[b, j], gates[b, u + j], gates[b, 2 * u + j],
            gates[b, 3 * u + j], c[b, j], c_prev[b, j], m[b])
        dz[b, j] = dzi
        dz[b, u + j] = dzf
        dz[b, 2 * u + j] = dzg
        dz[b, 3 * u + j] = dzo
        dc[b, j] = dcp
        dh[b, j] = dhp


@cuda.jit
def _gru_forward(xz, rz, h_prev, m, gates, h):
    u = h.shape[1]
    for k in range(cuda.grid(1), h.shape[0] * u, cuda.gridsize(1)):
        b = k // u
        j = k - b * u
        rh = rz[b, 2 * u + j]
        z, r, hh, hn = _gru_cell(xz[b, j], xz[b, u + j], xz[b, 2 * u + j], rz[b, j],
                                 rz[b, u + j], rh, h_prev[b, j], m[b])
        gates[b, j] = z
        gates[b, u + j] = r
        gates[b, 2 * u + j] = hh
        gates[b, 3 * u + j] = rh
        h[b, j] = hn


@cuda.jit
def _gru_backward(dh, gates, h_prev, m, dx, dr):
    u = h_prev.shape[1]
    for k in range(cuda.grid(1), h_prev.shape[0] * u, cuda.gridsize(1)):
        b = k // u
        j = k - b * u
        daz, dar, dah, drh, dhp = _gru_cell_grad(dh[b, j], gates[b, j], gates[b, u + j],
                                                 gates[b, 2 * u + j], gates[b, 3 * u + j],
                                                 h_prev[b, j], m[b])
        dx[b, j] = daz
        dx[b, u + j] = dar
        dx[b, 2 * u + j] = dah
        dr[b, j] = daz
        dr[b, u + j] = dar
        dr[b, 2 * u + j] = drh
        dh[b, j] = dhp


def _launch(kernel, n, first, *args):
    kernel[_grid(n), TPB, _stream(first)](first, *args)


def lstm_forward(xz, rz, c_prev, h_prev, m, gates, c, h):
    _launch(_lstm_forward, c.size, xz, rz, c_prev, h_prev, m, gates, c, h)


def lstm_backward(dh, dc, gates, c, c_prev, m, dz):
    _launch(_lstm_backward, c.size, dh, dc, gates, c, c_prev, m, dz)


def gru_forward(xz, rz, h_prev, m, gates, h):
    _launch(_gru_forward, h.size, xz, rz, h_prev, m, gates, h)


def gru_backward(dh, gates, h_prev, m, dx, dr):
    _launch(_gru_backward, h_prev.size, dh, gates, h_prev, m, dx, dr)
