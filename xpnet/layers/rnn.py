"""RNN(cell): cells as layers, a stack of cells, and the layer that runs any cell over time.

Built-in cells (``SimpleRNNCell``, ``LSTMCell``, ``GRUCell``) and stacks of them run through
the same sequence code as ``LSTM`` & co. (one input product, a fused pass per step); called
alone, they answer as Keras's cells do: ``cell(x, states) -> (output, new_states)``, and a
stack's states nest one list per cell (also in ``RNN``'s ``initial_state`` and
``return_state``). Any other cell runs step by step (:mod:`xpnet.layers.rnn_steps`): one
written with ``call()`` over ``keras.ops`` on the tape, or one written to the layer contract,
``forward(x_t, training, states=...) -> ([output, *new_states], ctx)`` and ``backward(ctx,
[d_output, *d_new_states]) -> InputGrads(args=dx_t, kwargs={"states": [...]})``.
"""

from xpnet.backend import namespace
from xpnet.engine.node import flatten
from xpnet.engine.node import pack_as
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer
from xpnet.layers.recurrent import GRUMath
from xpnet.layers.recurrent import LSTMMath
from xpnet.layers.recurrent import SimpleMath
from xpnet.layers.recurrent_base import CellCore
from xpnet.layers.recurrent_base import SequenceDriver

__all__ = ["SimpleRNNCell", "LSTMCell", "GRUCell", "StackedRNNCells", "RNN"]


class _Cell(Layer):
    """One step of a built-in cell as a layer, called as Keras calls a cell:
    ``cell(x, states) -> (h, new_states)``; ``new_states`` is ``[h, c]`` for an LSTM cell,
    and for the one-state cells ``[h]`` when ``states`` came as a list (one array: one
    array back)."""

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

    def forward(self, x, states=None, training=False):
        xp = namespace(x)
        listed = states is None or isinstance(states, (list, tuple))
        if states is None:
            states = [xp.zeros((x.shape[0], self.units), dtype=x.dtype,
                               device=self.backend.device) for _ in range(self.n_states)]
        states = list(states) if listed else [states]
        run = self.run_sequence(xp, x[None, ...], states, None, training)
        new = run["finals"] if listed else run["finals"][0]
        return (run["hs"][1, ...], new), dict(run, listed=listed)

    def backward(self, ctx, dy, need_dx=True):
        xp = namespace(ctx["hs"])
        d_out, d_new = dy
        d_new = list(d_new) if ctx["listed"] else [d_new]
        dseq = None if d_out is None else d_out[None, ...]
        dxt, d0 = self.backward_sequence(xp, ctx, dseq, d_new, None, need_dx)
        return InputGrads(args=None if dxt is None else dxt[0, ...],
                          kwargs={"states": d0 if ctx["listed"] else d0[0]})

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
    """Cells applied one after the other at every step, as Keras's: ``stack(x, states) ->
    (output, new_states)`` with one entry of ``states`` per cell (that cell's list, or its
    one array), and a stack of one cell behaving as that cell."""

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        self.cells = [_deserialize(c) for c in cells]
        if not self.cells or not all(isinstance(c, CellCore) for c in self.cells):
            raise ValueError(f"{self.name}: cells must be a non-empty list of built-in cells "
                             f"(SimpleRNNCell, LSTMCell, GRUCell). Received: {cells!r}")

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        return self.cells[-1].units

    def build(self, input_shape):
        width = input_shape[-1]
        for c in self.cells:
            c.build_on(self.backend, (None, width))
            width = c.units

    def forward(self, x, states=None, training=False):
        xp = namespace(x)
        if states is None:
            states = [[xp.zeros((x.shape[0], c.units), dtype=x.dtype,
                                device=self.backend.device)
                       for _ in range(c.n_states)] for c in self.cells]
        per_cell = [states] if len(self.cells) == 1 else list(states)
        if len(per_cell) != len(self.cells):
            raise ValueError(f"{self.name}: states must hold one entry per cell "
                             f"({len(self.cells)}). Received: {len(per_cell)}")
        ctxs, new = [], []
        for c, s in zip(self.cells, per_cell):
            (x, s_new), ctx = c.forward(x, s, training)
            ctxs.append(ctx)
            new.append(s_new)
        return (x, new[0] if len(self.cells) == 1 else new), ctxs

    def backward(self, ctxs, dy, need_dx=True):
        d_out, d_new = dy
        d_new = [d_new] if len(self.cells) == 1 else list(d_new)
        d0 = []
        for c, ctx, d in zip(reversed(self.cells), reversed(ctxs), reversed(d_new)):
            g = c.backward(ctx, (d_out, d))
            d_out = g.args
            d0.insert(0, g.kwargs["states"])
        return InputGrads(args=d_out, kwargs={"states": d0[0] if len(self.cells) == 1
                                              else d0})

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

    # -- Keras's nesting of a stack's states: one list per cell ----------------------------
    def _groups(self):
        """The number of states of each cell of a stack of several cells, else None."""
        if isinstance(self.cell, StackedRNNCells) and len(self.cell.cells) > 1:
            return [c.n_states for c in self.cell.cells]
        return None

    def _nest(self, flat):
        return pack_as([[None] * n for n in self._groups()], flat)

    def _nested_states(self, states):
        return self._groups() is not None and isinstance(states, (list, tuple)) and any(
            isinstance(s, (list, tuple)) for s in states)

    def compute_output_shape(self, input_shape):
        shapes = super().compute_output_shape(input_shape)
        if self.return_state and self._groups():
            return [shapes[0]] + self._nest(shapes[1:])
        return shapes

    def compute_mask(self, x, mask=None):
        masks = super().compute_mask(x, mask)
        if self.return_state and self._groups():
            return [masks[0]] + self._nest(masks[1:])
        return masks

    def forward(self, x, training=False, initial_state=None, mask=None):
        nested = self._nested_states(initial_state)
        if nested:
            initial_state = flatten(initial_state)
        if self.cores():
            y, ctx = super().forward(x, training, initial_state, mask)
        else:
            from xpnet.layers.rnn_steps import forward_steps

            y, ctx = forward_steps(self, x, training, initial_state, mask)
        if self.return_state and self._groups():
            y = [y[0]] + self._nest(y[1:])
        ctx["nested_initial"] = nested
        return y, ctx

    def backward(self, ctx, dy, need_dx=True):
        if self.return_state and self._groups():
            dy = [dy[0]] + flatten(dy[1:])
        if "steps" not in ctx:
            g = super().backward(ctx, dy, need_dx)
        else:
            from xpnet.layers.rnn_steps import backward_steps

            g = backward_steps(self, ctx, dy)
        if ctx["nested_initial"] and isinstance(g, InputGrads):
            g = InputGrads(args=g.args, kwargs={"initial_state": self._nest(
                g.kwargs["initial_state"])})
        return g

    def get_config(self):
        return {**super().get_config(), **self.driver_config(), "cell": _serialize(self.cell)}
