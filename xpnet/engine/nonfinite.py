"""What ``fit`` does when the loss becomes NaN or infinite: notice it without a host sync
per step, find the step and the first layer where it appeared, and stop.

- On the CPU backend the loss is a NumPy value on the host already, so ``fit`` checks it
  after each step's forward pass, before any gradient is applied: the trainable weights are
  those before the bad step.
- On a device backend ``fit`` records each step's loss in a device array and reads the
  record back every :data:`CHECK_EVERY` steps and at each epoch's end (one sync each), so
  a few updates with the bad loss may have been applied when it is noticed.

Either way the batch is re-run layer by layer to name the first non-finite output, the
callbacks' ``on_train_end`` runs (EarlyStopping puts back its best weights, so no work is
lost), and ``fit`` raises :class:`NonFiniteLossError`; with a
:class:`~xpnet.callbacks.TerminateOnNaN` callback it prints the same message and returns.
Keras keeps training through a NaN unless told otherwise; xpnet stops, as its design says.
"""

from xpnet import callbacks as callbacks_module
from xpnet.backend import namespace
from xpnet.engine.node import flatten

__all__ = ["NonFiniteLossError", "CHECK_EVERY", "first_bad", "stop", "locate",
           "first_nonfinite_node"]

# Steps between two reads of the device-side record of losses (off the CPU backend).
CHECK_EVERY = 200


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; ``fit`` stopped.

    Attributes: ``epoch`` and ``batch`` (0-based) of the first bad step, ``iteration`` (the
    optimizer's step count at it) and ``where`` (the first layer whose output is not
    finite, or what else made the loss so).
    """

    def __init__(self, message, epoch, batch, iteration, where):
        super().__init__(message)
        self.epoch, self.batch, self.iteration, self.where = epoch, batch, iteration, where


def all_finite(a):
    """Whether every entry of ``a`` is finite (one host read)."""
    xp = namespace(a)
    return bool(xp.all(xp.isfinite(a)))


def first_bad(xp, record):
    """Index of the first non-finite entry of a device array of losses, or None (one read
    back to the host)."""
    bad = ~xp.isfinite(record)
    if not bool(xp.any(bad)):
        return None
    return int(xp.argmax(xp.astype(bad, xp.int8)))


def stop(model, cb, cbs, epoch, batch, steps_after, guarded, data):
    """The loss of ``batch`` was NaN or inf: find where it first appeared, let the
    callbacks end training, then raise :class:`NonFiniteLossError`, or with a
    TerminateOnNaN callback print the message and return the history."""
    iteration = model.optimizer.iterations - steps_after - (0 if guarded else 1)
    where = locate(model, *data)
    note = "the trainable weights are those before that step" if guarded else \
        f"{steps_after + 1} update(s) with it were applied before it was noticed"
    message = (f"{model.name}: the loss became non-finite at epoch {epoch + 1}, batch "
               f"{batch} (optimizer step {iteration}); it first appeared in {where}; "
               f"training stopped ({note})")
    model.stop_training = True
    cb.on_train_end(model._read_logs())
    if any(isinstance(c, callbacks_module.TerminateOnNaN) for c in cbs):
        print(message)
        return model.history
    raise NonFiniteLossError(message, epoch, batch, iteration, where)


def locate(model, xs, ys, sw):
    """Re-run one batch layer by layer and name the first non-finite output (or the input,
    the loss, a penalty). Random and moving-average state is put back afterwards."""
    leaves = model._all_layers()
    states = [la.get_rng_state() for la in leaves]
    frozen = [(la, la.get_weights()) for la in leaves if la.non_trainable_weights]
    x = xs if model._multi_in else xs[0]
    try:
        where = first_nonfinite_node(model, x, True)
        if where is not None:
            return where
        outs, _ = model.forward(x, training=True)
        outs = flatten(outs) if model._multi_out else [outs]
        for k, (loss, y, out) in enumerate(zip(model._losses, ys, outs)):
            if not all_finite(loss(y, out, sample_weight=sw)):
                return f"the loss {loss.name!r} of output {model._output_name(k)!r} " \
                       "(every layer's output is finite)"
        return "a regularization penalty (every layer's output is finite)"
    finally:
        for la, state in zip(leaves, states):
            la.set_rng_state(state)
        for la, weights in frozen:
            la.set_weights(weights)


def first_nonfinite_node(model, x, training):
    """Where a forward pass of ``model`` first produces NaN or inf: ``"the input data
    'x'"``, ``"layer 'dense' (Dense)"`` (inside a nested model, its path), or None. One host
    read per node: for diagnosing, never per training step."""
    xs = flatten(x) if model._multi_in else [x]
    for t, a in zip(model.inputs, xs):
        if not all_finite(a):
            return f"the input data {t.name!r}"
    if model._graph is None:  # a subclassed model: its call is one step
        y, _ = model.forward(x, training=training)
        bad = not all(all_finite(v) for v in flatten(y))
        return f"the call of {model.name!r} ({type(model).__name__})" if bad else None
    vals = [None] * model._n_slots
    vals[:len(xs)] = xs
    for step in model._graph:
        if step.simple and getattr(step.layer, "_graph", None) is not None:
            inner = first_nonfinite_node(step.layer, vals[step.args[0].i], training)
            if inner is not None:
                return f"{inner} inside {step.layer.name!r}"
        y, _ = model._forward_step(step, vals, None, training)
        if not all(all_finite(v) for v in flatten(y)):
            return f"layer {step.layer.name!r} ({type(step.layer).__name__})"
    return None
