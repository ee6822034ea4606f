"""Cells, StackedRNNCells and RNN(cell): built-in cells through the fused sequence code, a
cell of one's own step by step; float64 central differences on NumPy and strict."""

import numpy as np
import pytest
from harness_rnn import check_call

from xpnet.backend import namespace
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer
from xpnet.layers.recurrent import GRU
from xpnet.layers.recurrent import LSTM
from xpnet.layers.rnn import RNN
from xpnet.layers.rnn import GRUCell
from xpnet.layers.rnn import LSTMCell
from xpnet.layers.rnn import SimpleRNNCell
from xpnet.layers.rnn import StackedRNNCells

B, F, U, T = 3, 4, 5, 7
CELLS = {"simple": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _randomize(backend, layers, seed=11):
    rng = np.random.default_rng(seed)
    for layer in layers:
        for k in layer.params:
            layer.params[k][...] = backend.asarray(
                rng.uniform(-0.6, 0.6, tuple(layer.params[k].shape)), dtype=backend.xp.float64)


def _mask():
    m = np.ones((B, T), bool)
    m[1, 4:] = False
    m[2, 1:] = False
    return m


@pytest.mark.parametrize("name", list(CELLS))
def test_cell_one_step(backend, name):
    cell = CELLS[name](U, dtype="float64", dropout=0.2, recurrent_dropout=0.3, seed=1)
    cell.build_on(backend, (None, F))
    _randomize(backend, [cell])
    rng = np.random.default_rng(0)
    states = [rng.uniform(-1, 1, (B, U)) for _ in range(cell.n_states)]
    ys = check_call(backend, cell, rng.uniform(-1, 1, (B, F)), {"states": states},
                    training=True)
    assert len(ys) == 1 + cell.n_states
    # Keras's structure: cell(x, states) -> (h, new_states), new_states a list as states was
    # (one array given to a one-state cell: one array back)
    x = backend.asarray(rng.uniform(-1, 1, (B, F)), dtype=backend.xp.float64)
    s = [backend.asarray(a, dtype=backend.xp.float64) for a in states]
    h, new = cell(x, s)
    assert isinstance(new, list) and len(new) == cell.n_states
    np.testing.assert_array_equal(backend.to_numpy(h), backend.to_numpy(new[0]))
    if cell.n_states == 1:
        h1, new1 = cell(x, s[0])
        assert not isinstance(new1, (list, tuple))
        np.testing.assert_array_equal(backend.to_numpy(h1), backend.to_numpy(h))
    clone = type(cell).from_config(cell.get_config())
    assert clone.get_config() | {"name": None} == cell.get_config() | {"name": None}


@pytest.mark.parametrize("pair", [(LSTMCell, LSTM), (GRUCell, GRU)])
def test_rnn_of_builtin_cell_equals_layer(backend, pair):
    cell_cls, layer_cls = pair
    rnn = RNN(cell_cls(U, dtype="float64"), return_sequences=True, dtype="float64")
    layer = layer_cls(U, return_sequences=True, dtype="float64")
    rnn.build_on(backend, (None, T, F))
    layer.build_on(backend, (None, T, F))
    layer.set_weights(rnn.cell.get_weights())
    x = backend.asarray(np.random.default_rng(1).uniform(-1, 1, (B, T, F)),
                        dtype=backend.xp.float64)
    mask = backend.asarray(_mask())
    np.testing.assert_array_equal(backend.to_numpy(rnn.forward(x, mask=mask)[0]),
                                  backend.to_numpy(layer.forward(x, mask=mask)[0]))


def test_stacked_cells_gradients(backend):
    cells = [LSTMCell(3, dtype="float64"), GRUCell(3, dtype="float64", reset_after=False),
             SimpleRNNCell(2, dtype="float64")]
    rnn = RNN(cells, return_sequences=True, return_state=True, go_backwards=True,
              dtype="float64")
    rnn.build_on(backend, (None, T, F))
    _randomize(backend, cells)
    rng = np.random.default_rng(2)
    # Keras nests a stack's states, one list per cell, in initial_state and return_state
    states = [[rng.uniform(-1, 1, (B, 3)), rng.uniform(-1, 1, (B, 3))],
              [rng.uniform(-1, 1, (B, 3))], [rng.uniform(-1, 1, (B, 2))]]
    ys = check_call(backend, rnn, rng.uniform(-1, 1, (B, T, F)), {"initial_state": states},
                    const_kwargs={"mask": backend.asarray(_mask())})
    assert [tuple(y.shape) for y in ys] == [(B, T, 2), (B, 3), (B, 3), (B, 3), (B, 2)]
    x = backend.asarray(rng.uniform(-1, 1, (B, T, F)), dtype=backend.xp.float64)
    out = rnn(x)
    assert len(out) == 4 and [len(s) for s in out[1:]] == [2, 1, 1]
    assert isinstance(rnn.cell, StackedRNNCells) and rnn.cell.state_size == [[3, 3], 3, 2]
    assert rnn.compute_output_shape((B, T, F)) == [(B, T, 2), [(B, 3), (B, 3)], [(B, 3)],
                                                   [(B, 2)]]
    clone = RNN.from_config(rnn.get_config())
    clone.build_on(backend, (None, T, F))
    assert [c.units for c in clone.cell.cells] == [3, 3, 2]


class MinimalCell(Layer):
    """A cell of one's own (Keras's MinimalRNNCell): ``h = tanh(x W) + h_prev U``, with its
    step written to the contract by hand."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = self.state_size = units

    def build(self, input_shape):
        self.add_weight(name="kernel", shape=(input_shape[-1], self.units))
        self.add_weight(name="recurrent_kernel", shape=(self.units, self.units))

    def forward(self, x, training=False, states=None):
        a = namespace(x).tanh(x @ self.params["kernel"])
        h = a + states[0] @ self.params["recurrent_kernel"]
        return [h, h], (x, a, states[0])

    def backward(self, ctx, dy, need_dx=True):
        x, a, h_prev = ctx
        dh = dy[0] if dy[1] is None else (dy[1] if dy[0] is None else dy[0] + dy[1])
        da = dh * (1.0 - a * a)
        self.grads["kernel"] += x.mT @ da
        self.grads["recurrent_kernel"] += h_prev.mT @ dh
        return InputGrads(args=da @ self.params["kernel"].mT,
                          kwargs={"states": [dh @ self.params["recurrent_kernel"].mT]})


@pytest.mark.parametrize("zero_output", [False, True])
def test_rnn_of_own_cell(backend, zero_output):
    cell = MinimalCell(U, dtype="float64")
    rnn = RNN(cell, return_sequences=True, return_state=True, go_backwards=True,
              zero_output_for_mask=zero_output, dtype="float64")
    rnn.build_on(backend, (None, T, F))
    rng = np.random.default_rng(3)
    check_call(backend, rnn, rng.uniform(-1, 1, (B, T, F)),
               {"initial_state": [rng.uniform(-1, 1, (B, U))]},
               const_kwargs={"mask": backend.asarray(_mask())})


def test_own_cell_masking_matches_builtin_semantics(backend):
    """The step-by-step path and the fused path mask alike: a SimpleRNNCell wrapped so that
    RNN does not recognise it runs step by step and gives the fused outputs."""
    xp = backend.xp

    class Wrapped(Layer):
        def __init__(self, inner, **kw):
            super().__init__(**kw)
            self.inner, self.state_size = inner, inner.units

        def build(self, shape):
            self.inner.build_on(self.backend, shape)

        def forward(self, x, training=False, states=None):
            return self.inner.forward(x, states, training)

        def backward(self, ctx, dy, need_dx=True):
            return self.inner.backward(ctx, dy)

    inner = SimpleRNNCell(U, dtype="float64")
    slow = RNN(Wrapped(inner, dtype="float64"), return_sequences=True, dtype="float64")
    fast = RNN(inner, return_sequences=True, dtype="float64")
    slow.build_on(backend, (None, T, F))
    fast.build_on(backend, (None, T, F))
    x = backend.asarray(np.random.default_rng(4).uniform(-1, 1, (B, T, F)), dtype=xp.float64)
    mask = backend.asarray(_mask())
    np.testing.assert_allclose(backend.to_numpy(slow.forward(x, mask=mask)[0]),
                               backend.to_numpy(fast.forward(x, mask=mask)[0]), rtol=1e-12)


def _keras_cell_class():
    from xpnet import keras

    class MinimalRNNCell(keras.layers.Layer):
        """Keras's documentation example of a cell, written with call() over keras.ops."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.state_size = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units),
                                          initializer="uniform", name="kernel")
            self.recurrent_kernel = self.add_weight(shape=(self.units, self.units),
                                                    initializer="uniform",
                                                    name="recurrent_kernel")

        def call(self, inputs, states):
            prev_output = states[0]
            h = keras.ops.matmul(inputs, self.kernel)
            output = keras.ops.tanh(h + keras.ops.matmul(prev_output, self.recurrent_kernel))
            return output, [output]

    return MinimalRNNCell


@pytest.mark.parametrize("go_backwards", [False, True])
def test_rnn_of_keras_cell_written_with_ops(backend, go_backwards):
    """A user's cell written as call() over keras.ops runs step by step on the tape:
    gradients of the input, the initial state and the cell's weights, with a mask."""
    cell = _keras_cell_class()(U, dtype="float64")
    rnn = RNN(cell, return_sequences=True, return_state=True, go_backwards=go_backwards,
              dtype="float64")
    rnn.build_on(backend, (None, T, F))
    rng = np.random.default_rng(5)
    for k in cell.params:  # away from the tiny "uniform" start
        cell.params[k][...] = backend.asarray(rng.uniform(-0.6, 0.6, tuple(
            cell.params[k].shape)), dtype=backend.xp.float64)
    check_call(backend, rnn, rng.uniform(-1, 1, (B, T, F)),
               {"initial_state": [rng.uniform(-1, 1, (B, U))]},
               const_kwargs={"mask": backend.asarray(_mask())})


def test_keras_cell_in_a_model_trains(cpu):
    from xpnet import keras

    cell = _keras_cell_class()(8)
    model = keras.Sequential([keras.Input((T, F)), keras.layers.RNN(cell),
                              keras.layers.Dense(1)], backend="cpu")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, T, F)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None].astype("float32") / 10
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=20, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.5 * first
    assert len(model.trainable_weights) == 4  # the cell's two, Dense's two


def test_stacked_cells_one_step(backend):
    cells = [LSTMCell(3, dtype="float64"), GRUCell(2, dtype="float64")]
    stack = StackedRNNCells(cells, dtype="float64")
    stack.build_on(backend, (None, F))
    _randomize(backend, cells)
    rng = np.random.default_rng(6)
    states = [[rng.uniform(-1, 1, (B, 3)), rng.uniform(-1, 1, (B, 3))],
              [rng.uniform(-1, 1, (B, 2))]]
    ys = check_call(backend, stack, rng.uniform(-1, 1, (B, F)), {"states": states})
    assert [tuple(y.shape) for y in ys] == [(B, 2), (B, 3), (B, 3), (B, 2)]
    assert stack.state_size == [[3, 3], 2]
    # called as Keras calls it: (output, one list of states per cell)
    put = lambda a: backend.asarray(a, dtype=backend.xp.float64)  # noqa: E731
    out, new = stack(put(rng.uniform(-1, 1, (B, F))), [[put(a) for a in s] for s in states])
    assert tuple(out.shape) == (B, 2) and [len(s) for s in new] == [2, 1]
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(new[1][0]))
