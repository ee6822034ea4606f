"""RNN(cell): cells as layers, a stack of cells, and the layer that runs any cell over time.

Built-in cells (``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``) and stacks of them run through
the same sequence code as ``LSTM`` & co. (one input product, a fused pass per step). Any
other cell runs step by step through its own contract: ``forward(x_t, training, states=...)
-> ([output, *new_states], ctx)`` and ``backward(ctx, [d_output, *d_new_states]) ->
InputGrads(args=dx_t, kwargs={"states": [...]})`` (a cell written as ``call()`` over
``keras.ops`` needs the define-by-run engine: see the report of issue 12).
"""

from xpnet.backend import namespace
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer
from xpnet.layers.recurrent import GRUMath
from xpnet.layers.recurrent import LSTMMath
from xpnet.layers.recurrent import SimpleMath
from xpnet.layers.recurrent_base import CellCore
from xpnet.layers.recurrent_base import SequenceDriver

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells", "RNN"]


class _Cell(Layer):
    """One step of a built-in cell as a layer: ``forward(x, training, states)`` gives
    ``[h, *new_states]`` (Keras's ``cell(inputs, states)``)."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, **kwargs):
        kwargs.pop("implementation", None)
        Layer.__init__(self, **kwargs)
        self._init_cell(units, activation, recurrent_activation, use_bias, kernel_initializer,
                        recurrent_initializer, bias_initializer, kernel_regularizer,
                        recurrent_regularizer, bias_regularizer, kernel_constraint,
                        recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                        seed)

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{self.name}: a cell takes one step, (batch, features). "
                             f"Received: input_shape={input_shape}")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def forward(self, x, training=False, states=None):
        xp = namespace(x)
        if states is None:
            states = [xp.zeros((x.shape[0], self.units), dtype=x.dtype,
                               device=self.backend.device) for _ in range(self.n_states)]
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        run = self.run_sequence(xp, x[None, ...], states, None, training)
        return [run["hs"][1, ...]] + run["finals"], run

    def backward(self, ctx, dy, need_dx=True):
        xp = namespace(ctx["hs"])
        dys = list(dy) + [None] * (1 + self.n_states - len(dy))
        dseq = None if dys[0] is None else dys[0][None, ...]
        dxt, d0 = self.backward_sequence(xp, ctx, dseq, dys[1:], None, need_dx)
        return InputGrads(args=None if dxt is None else dxt[0, ...], kwargs={"states": d0})

    def get_config(self):
        return {**Layer.get_config(self), **self.cell_config()}


class SimpleRNNCell(SimpleMath, _Cell):
    """One step of :class:`~xpnet.layers.SimpleRNN`."""

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.pop("recurrent_activation", None)
        super().__init__(units, activation=activation, recurrent_activation=None, **kwargs)


class LSTMCell(LSTMMath, _Cell):
    """One step of :class:`~xpnet.layers.LSTM`; states ``[h, c]``."""

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)


class GRUCell(GRUMath, _Cell):
    """One step of :class:`~xpnet.layers.GRU`."""

    def __init__(self, units, reset_after=True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)


def _serialize(layer):
    from xpnet.saving import serialize_layer

    return serialize_layer(layer)


def _deserialize(entry):
    from xpnet.saving import deserialize_layer

    return deserialize_layer(entry) if isinstance(entry, dict) else entry


class StackedRNNCells(Layer):
    """Cells applied one after the other at every step; states are the cells' states in
    order, flattened (``[h1, c1, h2, ...]``; Keras nests them per cell)."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        self.cells = [_deserialize(c) for c in cells]
        if not self.cells or not all(isinstance(c, CellCore) for c in self.cells):
            raise ValueError(f"{self.name}: cells must be a non-empty list of built-in cells "
                             f"(SimpleRNNCell, LSTMCell, GRUCell). Received: {cells!r}")

    @property
    def state_size(self):
        return [c.units for c in self.cells for _ in range(c.n_states)]

    @property
    def output_size(self):
        return self.cells[-1].units

    def build(self, input_shape):
        width = input_shape[-1]
        for c in self.cells:
            c.build_on(self.backend, (None, width))
            width = c.units

    def forward(self, x, training=False, states=None):
        """One step through every cell: ``[output, *new_states]`` (states flattened)."""
        xp = namespace(x)
        if states is None:
            states = [xp.zeros((x.shape[0], n), dtype=x.dtype, device=self.backend.device)
                      for n in self.state_size]
        states, ctxs, new = list(states), [], []
        for c in self.cells:
            ys, ctx = c.forward(x, training, states=states[:c.n_states])
            states = states[c.n_states:]
            ctxs.append(ctx)
            x, new = ys[0], new + list(ys[1:])
        return [x] + new, ctxs

    def backward(self, ctxs, dy, need_dx=True):
        dys = list(dy) + [None] * (1 + len(self.state_size) - len(dy))
        d_out, d_states, d0 = dys[0], dys[1:], []
        for c, ctx in zip(reversed(self.cells), reversed(ctxs)):
            mine, d_states = d_states[len(d_states) - c.n_states:], \
                d_states[:len(d_states) - c.n_states]
            g = c.backward(ctx, [d_out] + mine)
            d_out, d0 = g.args, list(g.kwargs["states"]) + d0
        return InputGrads(args=d_out, kwargs={"states": d0})

    def get_config(self):
        return {**super().get_config(), "cells": [_serialize(c) for c in self.cells]}


class RNN(SequenceDriver, Layer):
    """Runs ``cell`` over the time axis, as Keras's ``RNN``.

    Parameters
    ----------
    cell : Layer
        A built-in cell, a ``StackedRNNCells``, a list of cells (stacked), or a cell of
        one's own with ``state_size`` (and ``output_size``) following the step contract in
        this module's docstring.
    return_sequences, return_state, go_backwards, stateful, unroll, zero_output_for_mask
        As in Keras (``unroll`` is accepted and changes nothing).
    """

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(list(cell))
        self.cell = _deserialize(cell)
        if not isinstance(self.cell, Layer) or getattr(self.cell, "state_size", None) is None:
            raise ValueError(f"{self.name}: cell must be a Layer with a state_size. "
                             f"Received: cell={cell!r}")
        self._init_driver(return_sequences, return_state, go_backwards, stateful, unroll,
                          zero_output_for_mask)

    def cores(self):
        if isinstance(self.cell, CellCore):
            return [self.cell]
        if isinstance(self.cell, StackedRNNCells):
            return self.cell.cells
        return []

    def _state_sizes(self):
        if self.cores():
            return super()._state_sizes()
        size = self.cell.state_size
        return list(size) if isinstance(size, (list, tuple)) else [size]

    def _output_size(self):
        if self.cores():
            return super()._output_size()
        return getattr(self.cell, "output_size", None) or self._state_sizes()[0]

    def build(self, input_shape):
        self.cell.build_on(self.backend, (None, input_shape[-1]))

    def forward(self, x, training=False, initial_state=None, mask=None):
        if self.cores():
            return super().forward(x, training, initial_state, mask)
        from xpnet.layers.rnn_steps import forward_steps

        return forward_steps(self, x, training, initial_state, mask)

    def backward(self, ctx, dy, need_dx=True):
        if "steps" not in ctx:
            return super().backward(ctx, dy, need_dx)
        from xpnet.layers.rnn_steps import backward_steps

        return backward_steps(self, ctx, dy)

    def get_config(self):
        return {**super().get_config(), **self.driver_config(), "cell": _serialize(self.cell)}
