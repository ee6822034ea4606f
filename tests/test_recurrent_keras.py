"""Keras layout: weights laid out as Keras lays them (kernel (F, k*u), recurrent_kernel
(u, k*u), gate blocks i, f, c, o / z, r, h; GRU bias (2, 3u) with reset_after) give the
outputs of loops written here from Keras's cell equations (keras/src/layers/rnn/lstm.py,
gru.py, simple_rnn.py), within rtol 1e-12 in float64; and, transposed, PyTorch's nn.LSTM
and nn.GRU outputs within 1e-10."""

import numpy as np
import pytest

from xpnet.backend import get_backend
from xpnet.layers.recurrent import GRU
from xpnet.layers.recurrent import LSTM
from xpnet.layers.recurrent import SimpleRNN

B, T, F, U = 3, 6, 4, 5


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def keras_lstm(x, w, u, b, mask):
    h, c, out = np.zeros((B, U)), np.zeros((B, U)), []
    for t in range(T):
        z = x[:, t] @ w + h @ u + b
        i, f = sig(z[:, :U]), sig(z[:, U:2 * U])
        g, o = np.tanh(z[:, 2 * U:3 * U]), sig(z[:, 3 * U:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        m = mask[:, t:t + 1]
        c, h = np.where(m, c_new, c), np.where(m, h_new, h)
        out.append(h)
    return np.stack(out, 1), h, c


def keras_gru(x, w, u, b, mask, reset_after):
    h, out = np.zeros((B, U)), []
    b_in, b_rec = (b[0], b[1]) if reset_after else (b, np.zeros(3 * U))
    for t in range(T):
        xz = x[:, t] @ w + b_in
        if reset_after:
            inner = h @ u + b_rec
            z, r = sig(xz[:, :U] + inner[:, :U]), sig(xz[:, U:2 * U] + inner[:, U:2 * U])
            hh = np.tanh(xz[:, 2 * U:] + r * inner[:, 2 * U:])
        else:
            inner = h @ u[:, :2 * U]
            z, r = sig(xz[:, :U] + inner[:, :U]), sig(xz[:, U:2 * U] + inner[:, U:])
            hh = np.tanh(xz[:, 2 * U:] + (r * h) @ u[:, 2 * U:])
        h = np.where(mask[:, t:t + 1], z * h + (1 - z) * hh, h)
        out.append(h)
    return np.stack(out, 1), h


def keras_simple(x, w, u, b, mask):
    h, out = np.zeros((B, U)), []
    for t in range(T):
        h = np.where(mask[:, t:t + 1], np.tanh(x[:, t] @ w + b + h @ u), h)
        out.append(h)
    return np.stack(out, 1), h


def _weights(shapes, seed):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.5, 0.5, s) for s in shapes]


def _run(layer, weights, x, mask):
    cpu = get_backend("cpu")
    layer.build_on(cpu, (None, T, F))
    layer.set_weights(weights)
    ys, _ = layer.forward(x, mask=mask)
    return ys


def _case():
    rng = np.random.default_rng(0)
    mask = np.ones((B, T), bool)
    mask[1, 4:] = False
    mask[2, 1] = False
    return rng.standard_normal((B, T, F)), mask


def test_lstm_keras_layout():
    x, mask = _case()
    w = _weights([(F, 4 * U), (U, 4 * U), (4 * U,)], 1)
    ys = _run(LSTM(U, return_sequences=True, return_state=True, dtype="float64"), w, x, mask)
    for got, want in zip(ys, keras_lstm(x, *w, mask)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_keras_layout(reset_after):
    x, mask = _case()
    w = _weights([(F, 3 * U), (U, 3 * U), (2, 3 * U) if reset_after else (3 * U,)], 2)
    layer = GRU(U, return_sequences=True, return_state=True, reset_after=reset_after,
                dtype="float64")
    for got, want in zip(_run(layer, w, x, mask), keras_gru(x, *w, mask, reset_after)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_simple_rnn_keras_layout():
    x, mask = _case()
    w = _weights([(F, U), (U, U), (U,)], 3)
    ys = _run(SimpleRNN(U, return_sequences=True, return_state=True, dtype="float64"), w, x,
              mask)
    for got, want in zip(ys, keras_simple(x, *w, mask)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_against_pytorch():
    torch = pytest.importorskip("torch")
    x, _ = _case()
    mask = np.ones((B, T), bool)
    w = _weights([(F, 4 * U), (U, 4 * U), (4 * U,)], 4)
    lstm = torch.nn.LSTM(F, U, batch_first=True).double()
    g = _weights([(F, 3 * U), (U, 3 * U), (2, 3 * U)], 5)
    gru = torch.nn.GRU(F, U, batch_first=True).double()

    def zr(a):  # Keras z, r, h -> PyTorch r, z, n along the first axis
        return np.concatenate([a[U:2 * U], a[:U], a[2 * U:]])
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(w[0].T))
        lstm.weight_hh_l0.copy_(torch.tensor(w[1].T))
        lstm.bias_ih_l0.copy_(torch.tensor(w[2]))
        lstm.bias_hh_l0.zero_()
        gru.weight_ih_l0.copy_(torch.tensor(zr(g[0].T)))
        gru.weight_hh_l0.copy_(torch.tensor(zr(g[1].T)))
        gru.bias_ih_l0.copy_(torch.tensor(zr(g[2][0])))
        gru.bias_hh_l0.copy_(torch.tensor(zr(g[2][1])))
        want_l = lstm(torch.tensor(x))[0].numpy()
        want_g = gru(torch.tensor(x))[0].numpy()
    got_l = _run(LSTM(U, return_sequences=True, dtype="float64"), w, x, mask)
    got_g = _run(GRU(U, return_sequences=True, dtype="float64"), g, x, mask)
    np.testing.assert_allclose(got_l, want_l, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-10, atol=1e-12)
