"""SimpleRNN, LSTM and GRU with Keras 3's arguments, weight layouts and gate orders.

Weights (as Keras): ``kernel (features, k*units)``, ``recurrent_kernel (units, k*units)``,
``bias (k*units,)``; the gate blocks are ``i, f, c, o`` (LSTM) and ``z, r, h`` (GRU), and a
``reset_after=True`` GRU (the default) has ``bias (2, 3*units)``: input bias, then recurrent
bias. See :mod:`xpnet.layers.recurrent_base` for the loop and the masks.
"""

from xpnet import initializers
from xpnet.kernels import activation as _act
from xpnet.kernels import activation_grad as _act_grad
from xpnet.kernels import recurrent as rk
from xpnet.layers.recurrent_base import CellCore
from xpnet.layers.recurrent_base import RecurrentBase

__all__ = ["SimpleRNN", "LSTM", "GRU", "SimpleMath", "LSTMMath", "GRUMath"]


def _rows(i, j, *arrays):
    """``a[:, i:j]`` of each array (rows of a time-major buffer, or of a dropout mask), or
    the arrays themselves for ``i`` None; None stays None."""
    if i is None:
        return arrays
    return tuple(None if a is None else a[:, i:j] for a in arrays)


def _empty(xp, shape, like):
    from array_api_compat import device

    return xp.empty(shape, dtype=like.dtype, device=device(like))


class SimpleMath(CellCore):
    """``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``."""

    def run(self, xp, xz, states0, m, rec):
        t, b = xz.shape[0], xz.shape[1]
        hs = _empty(xp, (t + 1, b, self.units), xz)
        hs[0, ...] = states0[0]
        u_w = self.params["recurrent_kernel"]
        for s in range(t):
            h_prev = hs[s, ...]
            h = _act(self.activation, xz[s, ...] + self.recur(xp, h_prev, u_w, rec))
            hs[s + 1, ...] = h if m is None else xp.where(m[s, ...][:, None], h, h_prev)
        return {"hs": hs, "finals": [hs[t, ...]]}

    def run_backward(self, xp, ctx, dseq, d_finals):
        hs, m, rec = ctx["hs"], ctx["m"], ctx["rec_masks"]
        t = hs.shape[0] - 1
        u_w = self.params["recurrent_kernel"]
        dxz = _empty(xp, (t,) + tuple(hs.shape[1:]), hs)
        (dh,) = self._state_grads(xp, d_finals, hs[0, ...])
        for s in range(t - 1, -1, -1):
            if dseq is not None:
                dh = dh + dseq[s, ...]
            keep = None if m is None else m[s, ...][:, None]
            dz = _act_grad(self.activation, dh if keep is None else xp.where(keep, dh, 0.0),
                           hs[s + 1, ...])
            dxz[s, ...] = dz
            dh = self.recur_grad_h(xp, dz, u_w, rec) + (0.0 if keep is None else
                                                        xp.where(keep, 0.0, dh))
        if "recurrent_kernel" in self.grads:
            self.grads["recurrent_kernel"] += self.recur_grad_kernel(xp, hs[:-1, ...], u_w,
                                                                     rec, dxz)
        return dxz, [dh]

    def cell_config(self):
        config = super().cell_config()
        config.pop("recurrent_activation")
        return config


class SimpleRNN(SimpleMath, RecurrentBase):
    """Fully connected recurrence, ``h_t = activation(x_t @ kernel + h_{t-1} @
    recurrent_kernel + bias)``; Keras's arguments (no ``recurrent_activation``)."""

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, recurrent_activation=None, **kwargs)


class LSTMMath(CellCore):
    """``[i, f, g, o] = [σ, σ, tanh, σ](x_t W + h_{t-1} U + b)``, ``c_t = f c_{t-1} + i g``,
    ``h_t = o tanh(c_t)``, in Keras's gate order."""

    gates = 4
    n_states = 2
    unit_forget_bias = True

    def bias_init(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        return _UnitForgetBias(self.bias_initializer, self.units)

    def run(self, xp, xz, states0, m, rec):
        t, b, u = xz.shape[0], xz.shape[1], self.units
        hs, cs = _empty(xp, (t + 1, b, u), xz), _empty(xp, (t + 1, b, u), xz)
        gates = _empty(xp, (t, b, 4 * u), xz)
        hs[0, ...], cs[0, ...] = states0[0], states0[1]
        u_w = self.params["recurrent_kernel"]

        out = {"hs": hs, "cs": cs, "gates": gates, "finals": [hs[t, ...], cs[t, ...]]}
        if rec is None and rk.whole_sequence(xp, self.activation, self.recurrent_activation,
                                            xz.dtype):
            # one njit call: products and cells, no Python between the steps
            rk.lstm_forward_sequence(xz, u_w, m, gates, cs, hs)
            return out

        def loop(i, j):
            xz_, gates_, cs_, hs_, m_, rec_ = _rows(i, j, xz, gates, cs, hs, m, rec)
            for s in range(t):
                rz = self.recur(xp, hs_[s, ...], u_w, rec_)
                rk.lstm_forward_step(s, xz_, rz, m_, gates_, cs_, hs_, self.activation,
                                     self.recurrent_activation)
        rk.over_batch(xp, b, loop, self.activation, self.recurrent_activation, xz.dtype)
        return out

    def run_backward(self, xp, ctx, dseq, d_finals):
        hs, cs, gates, m, rec = ctx["hs"], ctx["cs"], ctx["gates"], ctx["m"], ctx["rec_masks"]
        t = gates.shape[0]
        u_w = self.params["recurrent_kernel"]
        dz = xp.empty_like(gates)
        dh0, dc0 = self._state_grads(xp, d_finals, hs[0, ...])

        if rec is None and rk.whole_sequence(xp, self.activation, self.recurrent_activation,
                                            gates.dtype):
            # _state_grads gave fresh arrays: the kernels turn them into dL/dstates0
            rk.lstm_backward_sequence(dseq, dh0, dc0, u_w, m, gates, cs, dz)
            return self._lstm_grads(xp, hs, u_w, rec, dz, dh0, dc0)

        def loop(i, j):
            dz_, gates_, cs_, m_, rec_, dseq_ = _rows(i, j, dz, gates, cs, m, rec, dseq)
            dh, dc = _rows(i, j, dh0[None, ...], dc0[None, ...])
            dh, dc = dh[0, ...], dc[0, ...]
            for s in range(t - 1, -1, -1):
                if dseq_ is not None:
                    dh = dh + dseq_[s, ...]
                dh, dc = rk.lstm_backward_step(s, dh, dc, m_, gates_, cs_, dz_,
                                               self.activation, self.recurrent_activation)
                dh = dh + self.recur_grad_h(xp, dz_[s, ...], u_w, rec_)
            return dh, dc
        parts = rk.over_batch(xp, gates.shape[1], loop, self.activation,
                              self.recurrent_activation, gates.dtype)
        dh, dc = (xp.concat([p[k] for p in parts], axis=0) if len(parts) > 1 else parts[0][k]
                  for k in (0, 1))
        return self._lstm_grads(xp, hs, u_w, rec, dz, dh, dc)

    def _lstm_grads(self, xp, hs, u_w, rec, dz, dh, dc):
        if "recurrent_kernel" in self.grads:
            self.grads["recurrent_kernel"] += self.recur_grad_kernel(xp, hs[:-1, ...], u_w,
                                                                     rec, dz)
        return dz, [dh, dc]

    def cell_config(self):
        return {**super().cell_config(), "unit_forget_bias": self.unit_forget_bias}


class LSTM(LSTMMath, RecurrentBase):
    """Long short-term memory: ``[i, f, g, o] = [σ, σ, tanh, σ](x_t W + h_{t-1} U + b)``,
    ``c_t = f c_{t-1} + i g``, ``h_t = o tanh(c_t)`` (Keras's ``activation`` replaces tanh
    and ``recurrent_activation`` σ). ``unit_forget_bias`` starts the forget bias at 1."""

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)


class _UnitForgetBias(initializers.Initializer):
    """Keras's LSTM bias at ``unit_forget_bias``: the initializer's values with the forget
    block set to 1."""

    def __init__(self, inner, units):
        self.inner, self.units = inner, units

    def __call__(self, shape, dtype, backend):
        xp, u = backend.xp, self.units
        parts = [self.inner((u,), dtype, backend), xp.ones((u,), dtype=dtype,
                                                           device=backend.device),
                 self.inner((2 * u,), dtype, backend)]
        return xp.concat([xp.asarray(p, dtype=dtype) for p in parts])


class GRUMath(CellCore):
    """Keras 3's GRU: ``z, r = σ(x W_{z,r} + h U_{z,r} + b)``, ``hh = tanh(x W_h + r (h U_h +
    b_h'))`` (``reset_after``) or ``tanh(x W_h + (r h) U_h + b_h)``, ``h = z h + (1-z) hh``."""

    gates = 3
    reset_after = True

    def bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def run(self, xp, xz, states0, m, rec):
        if not self.reset_after:
            return self._run_before(xp, xz, states0, m, rec)
        t, b, u = xz.shape[0], xz.shape[1], self.units
        hs, gates = _empty(xp, (t + 1, b, u), xz), _empty(xp, (t, b, 4 * u), xz)
        hs[0, ...] = states0[0]
        u_w, bias = self.params["recurrent_kernel"], self.params.get("bias")
        out = {"hs": hs, "gates": gates, "finals": [hs[t, ...]]}
        if rec is None and rk.whole_sequence(xp, self.activation, self.recurrent_activation,
                                            xz.dtype):
            rk.gru_forward_sequence(xz, u_w, None if bias is None else bias[1, ...], m, gates,
                                    hs)
            return out

        def loop(i, j):
            xz_, gates_, hs_, m_, rec_ = _rows(i, j, xz, gates, hs, m, rec)
            for s in range(t):
                rz = self.recur(xp, hs_[s, ...], u_w, rec_)
                if bias is not None:
                    rz = rz + bias[1, ...]
                rk.gru_forward_step(s, xz_, rz, m_, gates_, hs_, self.activation,
                                    self.recurrent_activation)
        rk.over_batch(xp, b, loop, self.activation, self.recurrent_activation, xz.dtype)
        return out

    def run_backward(self, xp, ctx, dseq, d_finals):
        if not self.reset_after:
            return self._backward_before(xp, ctx, dseq, d_finals)
        hs, gates, m, rec = ctx["hs"], ctx["gates"], ctx["m"], ctx["rec_masks"]
        t, b, u = gates.shape[0], gates.shape[1], self.units
        u_w = self.params["recurrent_kernel"]
        dxz, drz = _empty(xp, (t, b, 3 * u), gates), _empty(xp, (t, b, 3 * u), gates)
        (dh0,) = self._state_grads(xp, d_finals, hs[0, ...])
        if rec is None and rk.whole_sequence(xp, self.activation, self.recurrent_activation,
                                            gates.dtype):
            rk.gru_backward_sequence(dseq, dh0, u_w, m, gates, hs, dxz, drz)
            return self._gru_grads(xp, hs, u_w, rec, dxz, drz, dh0)

        def loop(i, j):
            dxz_, drz_, gates_, hs_, m_, rec_, dseq_ = _rows(i, j, dxz, drz, gates, hs, m, rec,
                                                             dseq)
            (dh,) = _rows(i, j, dh0[None, ...])
            dh = dh[0, ...]
            for s in range(t - 1, -1, -1):
                if dseq_ is not None:
                    dh = dh + dseq_[s, ...]
                dh = rk.gru_backward_step(s, dh, m_, gates_, hs_, dxz_, drz_, self.activation,
                                          self.recurrent_activation)
                dh = dh + self.recur_grad_h(xp, drz_[s, ...], u_w, rec_)
            return dh
        parts = rk.over_batch(xp, b, loop, self.activation, self.recurrent_activation,
                              gates.dtype)
        dh = xp.concat(parts, axis=0) if len(parts) > 1 else parts[0]
        return self._gru_grads(xp, hs, u_w, rec, dxz, drz, dh)

    def _gru_grads(self, xp, hs, u_w, rec, dxz, drz, dh):
        if "recurrent_kernel" in self.grads:
            self.grads["recurrent_kernel"] += self.recur_grad_kernel(xp, hs[:-1, ...], u_w,
                                                                     rec, drz)
        if "bias" in self.grads:
            self.grads["bias"][1, ...] += xp.sum(xp.reshape(drz, (-1, drz.shape[-1])), axis=0)
        return dxz, [dh]

    # reset_after=False: the reset gate scales h before its product, so the step needs two
    # products; it runs as the array-API composition.
    def _rec_masks(self, rec):
        if rec is None:
            return None, None
        if rec.shape[0] == 1:
            return rec, rec[0, ...]
        return rec[:2, ...], rec[2, ...]

    def _run_before(self, xp, xz, states0, m, rec):
        t, b, u = xz.shape[0], xz.shape[1], self.units
        hs, gates = _empty(xp, (t + 1, b, u), xz), _empty(xp, (t, b, 3 * u), xz)
        rhs = _empty(xp, (t, b, u), xz)
        hs[0, ...] = states0[0]
        u_w = self.params["recurrent_kernel"]
        rec_zr, rec_h = self._rec_masks(rec)
        for s in range(t):
            h_prev, x = hs[s, ...], xz[s, ...]
            a = self.recur(xp, h_prev, u_w[:, :2 * u], rec_zr)
            z = _act(self.recurrent_activation, x[:, :u] + a[:, :u])
            r = _act(self.recurrent_activation, x[:, u:2 * u] + a[:, u:])
            rh = r * (h_prev if rec_h is None else h_prev * rec_h)
            hh = _act(self.activation, x[:, 2 * u:] + rh @ u_w[:, 2 * u:])
            h = z * h_prev + (1.0 - z) * hh
            hs[s + 1, ...] = h if m is None else xp.where(m[s, ...][:, None], h, h_prev)
            gates[s, ...] = xp.concat([z, r, hh], axis=-1)
            rhs[s, ...] = rh
        return {"hs": hs, "gates": gates, "rhs": rhs, "finals": [hs[t, ...]]}

    def _backward_before(self, xp, ctx, dseq, d_finals):
        hs, gates, rhs, m = ctx["hs"], ctx["gates"], ctx["rhs"], ctx["m"]
        t, b, u = gates.shape[0], gates.shape[1], self.units
        u_w = self.params["recurrent_kernel"]
        rec_zr, rec_h = self._rec_masks(ctx["rec_masks"])
        dxz = _empty(xp, (t, b, 3 * u), gates)
        (dh,) = self._state_grads(xp, d_finals, hs[0, ...])
        for s in range(t - 1, -1, -1):
            if dseq is not None:
                dh = dh + dseq[s, ...]
            g, h_prev = gates[s, ...], hs[s, ...]
            z, r, hh = g[:, :u], g[:, u:2 * u], g[:, 2 * u:]
            keep = None if m is None else m[s, ...][:, None]
            dh_in = dh if keep is None else xp.where(keep, dh, 0.0)
            dah = _act_grad(self.activation, dh_in * (1.0 - z), hh)
            daz = _act_grad(self.recurrent_activation, dh_in * (h_prev - hh), z)
            drh = dah @ u_w[:, 2 * u:].mT
            hm = h_prev if rec_h is None else h_prev * rec_h
            dar = _act_grad(self.recurrent_activation, drh * hm, r)
            dzr = xp.concat([daz, dar], axis=-1)
            dxz[s, ...] = xp.concat([dzr, dah], axis=-1)
            dhm = drh * r
            dh = (dh_in * z + (dhm if rec_h is None else dhm * rec_h)
                  + self.recur_grad_h(xp, dzr, u_w[:, :2 * u], rec_zr)
                  + (0.0 if keep is None else xp.where(keep, 0.0, dh)))
        if "recurrent_kernel" in self.grads:
            d_zr = self.recur_grad_kernel(xp, hs[:-1, ...], u_w[:, :2 * u], rec_zr,
                                          dxz[..., :2 * u])
            d_h = xp.reshape(rhs, (t * b, u)).mT @ xp.reshape(dxz[..., 2 * u:], (t * b, u))
            self.grads["recurrent_kernel"] += xp.concat([d_zr, d_h], axis=-1)
        return dxz, [dh]

    def cell_config(self):
        return {**super().cell_config(), "reset_after": self.reset_after}


class GRU(GRUMath, RecurrentBase):
    """Gated recurrent unit (Keras 3): ``z, r = σ(x W_{z,r} + h U_{z,r} + b)``,
    ``hh = tanh(x W_h + r (h U_h + b_h'))`` with ``reset_after=True`` (the default; bias
    ``(2, 3*units)``: input then recurrent), or ``tanh(x W_h + (r h) U_h + b_h)`` with
    ``reset_after=False`` (bias ``(3*units,)``); ``h_t = z h_{t-1} + (1 - z) hh``."""

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)
