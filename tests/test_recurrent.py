"""SimpleRNN, LSTM and GRU: float64 central differences of every output, the input, the
initial state and every weight (tests/harness_rnn.py), at odd sizes (T = 1 and 7, batch 3,
units 5), with masks ending at different steps, go_backwards, return_state, initial_state,
stateful across two calls, and dropout + recurrent dropout with the RNG replayed; on NumPy
(the fused njit kernels) and array-api-strict (the composition)."""

import numpy as np
import pytest
from harness_rnn import check_call

from xpnet.layers.recurrent import GRU
from xpnet.layers.recurrent import LSTM
from xpnet.layers.recurrent import SimpleRNN

B, F, U = 3, 4, 5
LAYERS = {
    "simple_rnn": (SimpleRNN, {}),
    "lstm": (LSTM, {}),
    "gru": (GRU, {}),
    "gru_before": (GRU, {"reset_after": False}),
}


def _mask(t, kind):
    m = np.ones((B, t), bool)
    if kind == "right":  # sequences ending at different steps
        for b, n in enumerate([t, max(1, t - 3), 1]):
            m[b, n:] = False
    elif kind == "holes":
        m[1, 2:4] = False
        m[2, 0] = False
    return m


def _layer(backend, name, t=7, **kw):
    cls, base = LAYERS[name]
    layer = cls(U, dtype="float64", seed=3, **{**base, **kw})
    layer.build_on(backend, (None, t, F))
    rng = np.random.default_rng(11)
    # weights away from Keras's zero bias, so every term of the gradient is exercised
    for k in layer.params:
        layer.params[k][...] = backend.asarray(
            rng.uniform(-0.6, 0.6, tuple(layer.params[k].shape)), dtype=backend.xp.float64)
    return layer


def _x(t, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (B, t, F))


def _states(name, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-1, 1, (B, U)) for _ in range(2 if name == "lstm" else 1)]


@pytest.mark.parametrize("name", list(LAYERS))
@pytest.mark.parametrize("t", [1, 7])
def test_sequences_states_mask_initial_state(backend, name, t):
    layer = _layer(backend, name, t, return_sequences=True, return_state=True)
    mask = backend.asarray(_mask(t, "right"))
    ys = check_call(backend, layer, _x(t), {"initial_state": _states(name)},
                    const_kwargs={"mask": mask})
    assert tuple(ys[0].shape) == (B, t, U) and len(ys) == 1 + (2 if name == "lstm" else 1)


@pytest.mark.parametrize("name", list(LAYERS))
def test_go_backwards_holes_last_output(backend, name):
    layer = _layer(backend, name, go_backwards=True)
    check_call(backend, layer, _x(7), const_kwargs={"mask": backend.asarray(_mask(7, "holes"))})


@pytest.mark.parametrize("name", list(LAYERS))
def test_dropout_and_recurrent_dropout(backend, name):
    layer = _layer(backend, name, dropout=0.3, recurrent_dropout=0.4, return_sequences=True)
    ys = check_call(backend, layer, _x(7), training=True,
                    const_kwargs={"mask": backend.asarray(_mask(7, "right"))})
    inference, _ = layer.forward(backend.asarray(_x(7), dtype=backend.xp.float64))
    assert not np.allclose(backend.to_numpy(ys[0]), backend.to_numpy(inference))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_input_dropout_only(backend, name):
    check_call(backend, _layer(backend, name, dropout=0.5), _x(7), training=True)


@pytest.mark.parametrize("name", list(LAYERS))
def test_stateful_two_calls(backend, name):
    layer = _layer(backend, name, stateful=True, return_sequences=True)
    xp = backend.xp
    first, _ = layer.forward(backend.asarray(_x(7, 1), dtype=xp.float64))
    carried = [xp.asarray(s, copy=True) for s in layer.states]
    np.testing.assert_allclose(backend.to_numpy(carried[0]), backend.to_numpy(first[:, -1, :]))

    def restore():
        layer.states = [xp.asarray(s, copy=True) for s in carried]
    check_call(backend, layer, _x(7, 2), restore=restore)
    restore()
    second, _ = layer.forward(backend.asarray(_x(7, 2), dtype=xp.float64))
    layer.reset_states()
    fresh, _ = layer.forward(backend.asarray(_x(7, 2), dtype=xp.float64))
    assert not np.allclose(backend.to_numpy(second), backend.to_numpy(fresh))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_zero_output_for_mask(backend, name):
    layer = _layer(backend, name, return_sequences=True, zero_output_for_mask=True)
    mask = _mask(7, "right")
    (y,) = check_call(backend, layer, _x(7), const_kwargs={"mask": backend.asarray(mask)})
    assert np.all(backend.to_numpy(y)[~mask] == 0.0)


def test_masked_steps_carry_state(backend):
    """Keras's outputs at masked steps: the carried state (zero_output_for_mask=False); a
    right-padded sequence's last output equals that of the unpadded sequence."""
    xp = backend.xp
    layer = _layer(backend, "lstm", return_sequences=True)
    x, mask = _x(7), _mask(7, "right")
    y, _ = layer.forward(backend.asarray(x, dtype=xp.float64), mask=backend.asarray(mask))
    y = backend.to_numpy(y)
    short = _layer(backend, "lstm", t=4, return_sequences=True)
    y4, _ = short.forward(backend.asarray(x[1:2, :4], dtype=xp.float64))
    np.testing.assert_allclose(y[1, 3:], np.repeat(backend.to_numpy(y4)[0, -1:], 4, 0),
                               rtol=1e-12)


@pytest.mark.parametrize("name", list(LAYERS))
def test_config_shapes_and_keras_layout(backend, name):
    cls, base = LAYERS[name]
    layer = cls(U, return_state=True, **base)
    layer.build_on(backend, (None, 7, F))
    k = {"simple_rnn": 1, "lstm": 4}.get(name, 3)
    want = {"kernel": (F, k * U), "recurrent_kernel": (U, k * U),
            "bias": (2, 3 * U) if name == "gru" else (k * U,)}
    assert {n: tuple(p.shape) for n, p in layer.params.items()} == want
    assert layer.weight_names() == ["kernel", "recurrent_kernel", "bias"]
    clone = cls.from_config(layer.get_config())
    assert clone.get_config() | {"name": None} == layer.get_config() | {"name": None}
    shapes = layer.compute_output_shape((None, 7, F))
    assert shapes[0] == (None, U) and len(shapes) == 1 + (2 if name == "lstm" else 1)
    r = np.asarray(layer.get_weights()[1])
    np.testing.assert_allclose(r @ r.T, np.eye(U), atol=1e-6)  # orthogonal rows
    if name == "lstm":  # unit_forget_bias: forget block 1, the rest 0
        np.testing.assert_array_equal(layer.get_weights()[2],
                                      np.r_[np.zeros(U), np.ones(U), np.zeros(2 * U)])


def test_errors():
    with pytest.raises(ValueError, match="units"):
        LSTM(0)
    with pytest.raises(ValueError, match="activation"):
        GRU(3, activation="gelu")
    layer = LSTM(3)
    with pytest.raises(ValueError, match="timesteps"):
        layer.check_input_shape((None, 4))


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_batch_split_over_threads_matches(cpu, name):
    """Inside fit, the recurrence runs over row ranges side by side (xpnet's threads): the
    same outputs and gradients as the whole batch on one thread."""
    from xpnet.kernels import threads

    cls, base = LAYERS[name]
    layer = cls(U, dtype="float64", return_sequences=True, return_state=True,
                dropout=0.2, recurrent_dropout=0.2, seed=1, **base)
    layer.build_on(cpu, (None, 7, F))
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (40, 7, F))
    mask = np.ones((40, 7), bool)
    mask[::3, 4:] = False
    results = []
    for n in (1, 2):
        layer.zero_grads()
        state = layer.get_rng_state()
        with threads.using(n):
            ys, ctx = layer.forward(x, training=True, mask=mask)
            dys = [np.ones_like(y) for y in ys]
            dx = layer.backward(ctx, dys)
        layer.set_rng_state(state)
        results.append((ys, dx, {k: g.copy() for k, g in layer.grads.items()}))
    (y1, dx1, g1), (y2, dx2, g2) = results
    for a, b in zip(y1, y2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-12, atol=1e-13)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-11, atol=1e-12)
