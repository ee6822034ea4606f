"""LSTM and GRU cell steps, one dispatch point each: the gates, the state update, their
derivatives and the mask in one pass (``numba.njit`` on NumPy from ``_cpu_recurrent.py``,
``numba.cuda`` on CuPy from ``_cuda_recurrent.py``), with the array-API composition below as
the fallback for every other namespace, for other activations, and as the test oracle.

A recurrent layer keeps its sequence in time-major buffers that it allocates once per call
(``gates (T, B, k*units)``, states ``(T + 1, B, units)`` with the initial state at 0); each
step function reads step ``t`` of them and writes step ``t`` (``t + 1`` for states). The
recurrent product ``h_{t-1} @ recurrent_kernel`` stays with the caller (one matrix product a
step); the input projection of every step is one product before the loop.

Masks: ``mask`` is None or a bool ``(T, B)`` array; a row whose mask is False at step ``t``
carries its state through (Keras's ``backend.rnn``) and passes its gradient straight back.
"""

import importlib

from array_api_compat import is_cupy_namespace
from array_api_compat import is_numpy_namespace

from xpnet.backend import namespace
from xpnet.kernels import activation as _act
from xpnet.kernels import activation_grad as _act_grad
from xpnet.kernels import enabled
from xpnet.kernels import threads

__all__ = ["lstm_forward_step", "lstm_backward_step", "gru_forward_step",
           "gru_backward_step", "fused", "over_batch", "whole_sequence",
           "lstm_forward_sequence", "lstm_backward_sequence", "gru_forward_sequence",
           "gru_backward_sequence"]

_MODULES = {}


def _load(name):
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = importlib.import_module(f"xpnet.kernels._{name}_recurrent")
    return mod


def fused(xp, activation, recurrent_activation, dtype=None):
    """"cpu", "cuda" or None: the kernel module for these arrays and activations (the
    kernels are written for Keras's defaults, tanh and sigmoid, in float32 and float64)."""
    if not enabled() or activation != "tanh" or recurrent_activation != "sigmoid":
        return None
    if dtype is not None and dtype not in (xp.float32, xp.float64):
        return None
    if is_numpy_namespace(xp):
        return "cpu"
    if is_cupy_namespace(xp):
        return "cuda"
    return None


# Rows per thread below which the recurrence is not split (each step's product shrinks).
_MIN_ROWS = 16


def over_batch(xp, batch, fn, activation="tanh", recurrent_activation="sigmoid", dtype=None):
    """``fn(i, j)`` over ranges of batch rows, which are independent through the whole
    recurrence: on NumPy with the fused kernels and several of xpnet's threads (inside
    ``fit``), the ranges run side by side, each loop with its own products and kernels on
    ``[:, i:j]`` views of the time-major buffers; elsewhere ``fn(None, None)`` once (the
    whole batch, no views). Returns the list of results in row order."""
    if fused(xp, activation, recurrent_activation, dtype) == "cpu" and threads.count() > 1 and \
            batch >= 2 * _MIN_ROWS:
        return threads.run(fn, batch, min_chunk=_MIN_ROWS)
    return [fn(None, None)]


_ONES = {}


def _mask_t(xp, mask, t, like):
    """Step ``t``'s row mask for a kernel; all True when there is no mask (one array per
    batch size and namespace, kept: a fresh ``ones`` each step cost more than the step's
    kernel)."""
    if mask is not None:
        return mask[t]
    key = (like.shape[0], xp, str(getattr(like, "device", "")))
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = xp.ones((like.shape[0],), dtype=xp.bool)
    return ones


def _where(m, new, old):
    return new if m is None else _namespace(new).where(m[:, None], new, old)


def _namespace(a):
    return namespace(a)


# -- LSTM ------------------------------------------------------------------------------
def lstm_forward_step(t, xz, rz, mask, gates, cs, hs, activation="tanh",
                      recurrent_activation="sigmoid"):
    """Step ``t``: ``[i, f, g, o] = [ra, ra, a, ra](xz[t] + rz)``,
    ``c = f c_{t-1} + i g``, ``h = o a(c)``; writes ``gates[t]``, ``cs[t+1]``, ``hs[t+1]``.

    ``xz (T, B, 4u)`` holds ``x_t @ kernel + bias`` for every step, ``rz (B, 4u)`` is
    ``h_{t-1} @ recurrent_kernel``.
    """
    xp = namespace(rz)
    route = fused(xp, activation, recurrent_activation, rz.dtype)
    if route is not None:
        return _load(route).lstm_forward(xz[t], rz, cs[t], hs[t], _mask_t(xp, mask, t, rz),
                                         gates[t], cs[t + 1], hs[t + 1])
    u = cs.shape[-1]
    z = xz[t, ...] + rz
    i, f, o = (_act(recurrent_activation, z[:, k * u:(k + 1) * u]) for k in (0, 1, 3))
    g = _act(activation, z[:, 2 * u:3 * u])
    c_prev, h_prev = cs[t, ...], hs[t, ...]
    c = f * c_prev + i * g
    h = o * _act(activation, c)
    m = None if mask is None else mask[t, ...]
    gates[t, ...] = xp.concat([i, f, g, o], axis=-1)
    cs[t + 1, ...] = _where(m, c, c_prev)
    hs[t + 1, ...] = _where(m, h, h_prev)


def lstm_backward_step(t, dh, dc, mask, gates, cs, dz, activation="tanh",
                       recurrent_activation="sigmoid"):
    """Step ``t`` backwards: from ``dh = dL/dh_t`` and ``dc = dL/dc_t`` writes ``dz[t]``
    (the pre-activations' gradient) and returns ``(dh_direct, dc_prev)``: the part of
    ``dL/dh_{t-1}`` that skips the recurrent product (all of ``dh`` on masked rows) and
    ``dL/dc_{t-1}``. ``dh`` and ``dc`` may be overwritten."""
    xp = namespace(dh)
    route = fused(xp, activation, recurrent_activation, dh.dtype)
    if route is not None:
        _load(route).lstm_backward(dh, dc, gates[t], cs[t + 1], cs[t],
                                   _mask_t(xp, mask, t, dh), dz[t])
        return dh, dc
    u = cs.shape[-1]
    gt = gates[t, ...]
    i, f, g, o = (gt[:, k * u:(k + 1) * u] for k in range(4))
    c, c_prev = cs[t + 1, ...], cs[t, ...]
    m = None if mask is None else mask[t, ...][:, None]
    dh_in = dh if m is None else xp.where(m, dh, 0.0)
    dc_in = dc if m is None else xp.where(m, dc, 0.0)
    tc = _act(activation, c)
    dct = dc_in + _act_grad(activation, dh_in * o, tc)
    parts = [_act_grad(recurrent_activation, dct * g, i),
             _act_grad(recurrent_activation, dct * c_prev, f),
             _act_grad(activation, dct * i, g),
             _act_grad(recurrent_activation, dh_in * tc, o)]
    dz[t, ...] = xp.concat(parts, axis=-1)
    dc_prev = dct * f
    if m is None:
        return xp.zeros_like(dh), dc_prev
    return xp.where(m, 0.0, dh), dc_prev + xp.where(m, 0.0, dc)


def whole_sequence(xp, activation, recurrent_activation, dtype):
    """Whether the whole-sequence kernels (``lstm_forward_sequence`` and the like: each
    thread's rows through every step in one njit call, the recurrent products included)
    take this layer (NumPy with the fused kernels); otherwise the caller loops over the
    steps."""
    return fused(xp, activation, recurrent_activation, dtype) == "cpu"


def _mask_seq(xp, mask, t, b):
    if mask is not None:
        return mask
    key = ("seq", t, b)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = xp.ones((t, b), dtype=xp.bool)
    return ones


def _by_rows(batch, fn):
    """``fn((i, j))`` over one range of batch rows per thread of xpnet's (inside ``fit``),
    side by side: the rows are independent through the whole recurrence."""
    per = max(_MIN_ROWS, -(-batch // threads.count()))
    threads.run(lambda i, j: fn((i, j)), batch, min_chunk=per)


def _sequence_args(kernel, mask, t, b, transpose=False):
    """The njit module, the recurrent kernel (transposed for a backward) and the (T, B)
    row mask, C-contiguous."""
    cpu = _load("cpu")
    kernel = kernel.T if transpose else kernel
    return cpu, cpu.c(kernel), cpu.c(_mask_seq(namespace(kernel), mask, t, b))


def lstm_forward_sequence(xz, kernel, mask, gates, cs, hs):
    """Every step of :func:`lstm_forward_step`, the recurrent products included, in one
    njit call per thread (see :func:`whole_sequence`); ``kernel`` is the recurrent kernel."""
    cpu, kernel, m = _sequence_args(kernel, mask, xz.shape[0], xz.shape[1])
    xz = cpu.c(xz)
    _by_rows(xz.shape[1], lambda rows: cpu.lstm_forward_seq(xz, kernel, m, gates, cs, hs,
                                                            rows))


def lstm_backward_sequence(dseq, dh, dc, kernel, mask, gates, cs, dz):
    """Every step of :func:`lstm_backward_step` in reverse, with ``dz[t] @ kernel.T`` added
    to ``dh`` and ``dseq[t]`` (or None) joining it; ``dh``, ``dc`` (overwritten) end as the
    initial state's gradients."""
    cpu, kernel_t, m = _sequence_args(kernel, mask, gates.shape[0], gates.shape[1], True)
    dseq = None if dseq is None else cpu.c(dseq)
    _by_rows(dh.shape[0], lambda rows: cpu.lstm_backward_seq(dseq, dh, dc, kernel_t, m, gates,
                                                             cs, dz, rows))


def gru_forward_sequence(xz, kernel, bias, mask, gates, hs):
    """Every step of :func:`gru_forward_step` with ``hs[t] @ kernel + bias`` (``bias`` the
    recurrent bias row, or None) in one njit call per thread (see :func:`whole_sequence`)."""
    cpu, kernel, m = _sequence_args(kernel, mask, xz.shape[0], xz.shape[1])
    xz = cpu.c(xz)
    bias = cpu.c(namespace(xz).zeros((kernel.shape[1],), dtype=xz.dtype) if bias is None
                 else bias)
    _by_rows(xz.shape[1], lambda rows: cpu.gru_forward_seq(xz, kernel, bias, m, gates, hs,
                                                           rows))


def gru_backward_sequence(dseq, dh, kernel, mask, gates, hs, dxz, drz):
    """Every step of :func:`gru_backward_step` in reverse, with ``drz[t] @ kernel.T`` added
    to ``dh`` and ``dseq[t]`` (or None) joining it; ``dh`` (overwritten) ends as the initial
    state's gradient."""
    cpu, kernel_t, m = _sequence_args(kernel, mask, gates.shape[0], gates.shape[1], True)
    dseq = None if dseq is None else cpu.c(dseq)
    _by_rows(dh.shape[0], lambda rows: cpu.gru_backward_seq(dseq, dh, kernel_t, m, gates, hs,
                                                            dxz, drz, rows))


# -- GRU (reset_after=True) ------------------------------------------------------------
def gru_forward_step(t, xz, rz, mask, gates, hs, activation="tanh",
                     recurrent_activation="sigmoid"):
    """Step ``t`` of Keras's ``reset_after=True`` GRU: ``z = ra(xz_z + rz_z)``,
    ``r = ra(xz_r + rz_r)``, ``hh = a(xz_h + r rz_h)``, ``h = z h_{t-1} + (1 - z) hh``;
    ``rz = h_{t-1} @ recurrent_kernel + recurrent_bias``. Writes ``gates[t] = [z, r, hh,
    rz_h]`` and ``hs[t+1]``."""
    xp = namespace(rz)
    route = fused(xp, activation, recurrent_activation, rz.dtype)
    if route is not None:
        return _load(route).gru_forward(xz[t], rz, hs[t], _mask_t(xp, mask, t, rz), gates[t],
                                        hs[t + 1])
    u = hs.shape[-1]
    x = xz[t, ...]
    z = _act(recurrent_activation, x[:, :u] + rz[:, :u])
    r = _act(recurrent_activation, x[:, u:2 * u] + rz[:, u:2 * u])
    rh = rz[:, 2 * u:]
    hh = _act(activation, x[:, 2 * u:] + r * rh)
    h_prev = hs[t, ...]
    h = z * h_prev + (1.0 - z) * hh
    gates[t, ...] = xp.concat([z, r, hh, rh], axis=-1)
    hs[t + 1, ...] = _where(None if mask is None else mask[t, ...], h, h_prev)


def gru_backward_step(t, dh, mask, gates, hs, dxz, drz, activation="tanh",
                      recurrent_activation="sigmoid"):
    """Step ``t`` backwards: writes ``dxz[t]`` (gradient of the input part ``xz``) and
    ``drz[t]`` (of ``rz``) and returns the part of ``dL/dh_{t-1}`` that skips the recurrent
    product. ``dh`` may be overwritten."""
    xp = namespace(dh)
    route = fused(xp, activation, recurrent_activation, dh.dtype)
    if route is not None:
        _load(route).gru_backward(dh, gates[t], hs[t], _mask_t(xp, mask, t, dh), dxz[t],
                                  drz[t])
        return dh
    u = hs.shape[-1]
    gt = gates[t, ...]
    z, r, hh, rh = (gt[:, k * u:(k + 1) * u] for k in range(4))
    h_prev = hs[t, ...]
    m = None if mask is None else mask[t, ...][:, None]
    dh_in = dh if m is None else xp.where(m, dh, 0.0)
    dah = _act_grad(activation, dh_in * (1.0 - z), hh)
    daz = _act_grad(recurrent_activation, dh_in * (h_prev - hh), z)
    dar = _act_grad(recurrent_activation, dah * rh, r)
    dxz[t, ...] = xp.concat([daz, dar, dah], axis=-1)
    drz[t, ...] = xp.concat([daz, dar, dah * r], axis=-1)
    direct = dh_in * z
    return direct if m is None else direct + xp.where(m, 0.0, dh)
