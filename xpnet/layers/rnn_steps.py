"""RNN over a cell of one's own: the cell's forward at every step, its backward at every
step in reverse, with Keras's masking (``backend.rnn``: at a masked step every state is
carried and the output is the previous output, ``states[0]``, or 0 with
``zero_output_for_mask``).

Two kinds of cells: one written to xpnet's layer contract (``forward(x, training,
states=...) -> ([output, *new_states], ctx)``, ``backward`` returning
``InputGrads(dx, {"states": [...]})``), and one answering as Keras's cells do, ``(output,
new_states)``: a Keras cell written as ``call(inputs, states, training)`` over ``keras.ops``,
which runs on the define-by-run engine's tape (one tape per step; its backward walks that
tape), or a built-in cell that the fused path did not take (inside a cell of one's own).
"""

from xpnet.backend import namespace
from xpnet.engine.calls import is_call_based
from xpnet.layers.base import InputGrads

__all__ = ["forward_steps", "backward_steps"]


def forward_steps(layer, x, training, initial_state, mask):
    xp = namespace(x)
    xt, m = layer._time_major(xp, x, mask)
    states = layer._initial(xp, x.shape[0], x.dtype, initial_state)
    ctxs, outs = [], []
    keras_style = is_call_based(layer.cell)
    nested = True
    for t in range(xt.shape[0]):
        ys, ctx = layer.cell.forward(xt[t, ...], training=training, states=states)
        if t == 0 and not keras_style:  # a built-in cell answers as Keras's do
            keras_style = isinstance(ys, tuple) and len(ys) == 2 and isinstance(
                ys[1], (list, tuple))
        if keras_style:  # Keras's (output, new_states); new_states a list or one tensor
            out, new = ys[0], ys[1]
            nested = isinstance(new, (list, tuple))
            new = list(new) if nested else [new]
        else:
            out, new = ys[0], list(ys[1:])
        if m is not None:
            keep = m[t, ...][:, None]
            out = xp.where(keep, out, 0.0 if layer.zero_output_for_mask else states[0])
            new = [xp.where(keep, n, s) for n, s in zip(new, states)]
        ctxs.append(ctx)
        outs.append(out)
        states = new
    seq = xp.stack(outs)
    if layer.stateful:
        layer.states = [xp.asarray(s, copy=True) for s in states]
    y = xp.permute_dims(seq, (1, 0, 2)) if layer.return_sequences else seq[-1, ...]
    ctx = {"steps": ctxs, "m": m, "given": initial_state is not None, "like": seq,
           "n_states": len(states), "keras_style": keras_style, "nested": nested,
           "states_like": [xp.zeros_like(s) for s in states]}
    return ([y] + states if layer.return_state else y), ctx


def backward_steps(layer, ctx, dy):
    xp = namespace(ctx["like"])
    seq, m, k = ctx["like"], ctx["m"], ctx["n_states"]
    dys = list(dy) if layer.return_state else [dy]
    dys += [None] * (1 + k - len(dys))
    t_len = seq.shape[0]
    if dys[0] is None:
        dseq = None
    elif layer.return_sequences:
        dseq = xp.permute_dims(dys[0], (1, 0, 2))
    else:
        dseq = xp.concat([xp.zeros_like(seq[:-1, ...]), dys[0][None, ...]], axis=0)
    d_states = [None if d is None else d + 0.0 for d in dys[1:]]
    dxs = [None] * t_len
    for t in range(t_len - 1, -1, -1):
        d_out = None if dseq is None else dseq[t, ...]
        carry_out, carry = None, [None] * k
        if m is not None:
            keep = m[t, ...][:, None]
            if d_out is not None:
                if not layer.zero_output_for_mask:
                    carry_out = xp.where(keep, 0.0, d_out)
                d_out = xp.where(keep, d_out, 0.0)
            carry = [None if d is None else xp.where(keep, 0.0, d) for d in d_states]
            d_states = [None if d is None else xp.where(keep, d, 0.0) for d in d_states]
        g = layer.cell.backward(ctx["steps"][t], _cell_dy(ctx, seq, d_out, d_states))
        dxs[t] = g.args
        prev = g.kwargs["states"]
        prev = list(prev) if isinstance(prev, (list, tuple)) else [prev]
        d_states = [_add(p, c) for p, c in zip(prev, carry)]
        d_states[0] = _add(d_states[0], carry_out)
    dxt = xp.stack(dxs)
    if layer.go_backwards:
        dxt = xp.flip(dxt, axis=0)
    dx = xp.permute_dims(dxt, (1, 0, 2))
    if ctx["given"]:
        return InputGrads(args=dx, kwargs={"initial_state": d_states})
    return dx


def _cell_dy(ctx, seq, d_out, d_states):
    """The cotangent in the structure the cell's output had."""
    if not ctx["keras_style"]:
        return [d_out] + d_states
    xp = namespace(seq)
    d_out = xp.zeros_like(seq[0, ...]) if d_out is None else d_out
    d_states = [xp.zeros_like(z) if d is None else d
                for d, z in zip(d_states, ctx["states_like"])]
    return [d_out, d_states if ctx["nested"] else d_states[0]]


def _add(a, b):
    if a is None:
        return b
    return a if b is None else a + b
