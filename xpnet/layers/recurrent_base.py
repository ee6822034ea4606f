"""What SimpleRNN, LSTM and GRU share: arguments, weights, dropout masks, masks, states,
and the parts of backpropagation through time that are one matrix product over all steps.

A call runs in time-major order: ``xz = x @ kernel + bias`` for every step at once (one
product), then a loop whose step is ``h_{t-1} @ recurrent_kernel`` plus one fused pointwise
pass (:mod:`xpnet.kernels.recurrent`) writing into buffers allocated once per call. The
backward loop writes the pre-activations' gradient of every step into one ``(T, B, k*units)``
buffer; the kernel, recurrent kernel and bias gradients are then one product each.

Keras's semantics (``keras/src/layers/rnn/rnn.py`` and ``backend.rnn``): ``go_backwards``
reads the sequence from its end and returns the outputs in that (reversed) order; a step
whose mask is False carries the state through, and its output is the carried state (or 0
with ``zero_output_for_mask``, which Bidirectional sets with ``return_sequences``);
dropout masks are drawn once per call and reused at every step (``k`` independent masks, one
per gate, once ``recurrent_dropout`` is on, as Keras's ``implementation=1``).
"""

from xpnet import activations
from xpnet import initializers
from xpnet import kernels
from xpnet import regularizers
from xpnet.backend import namespace
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer
from xpnet.utils import next_seed

__all__ = ["CellCore", "SequenceDriver", "RecurrentBase"]


def _mm(a, b):
    # the products over all steps: split over xpnet's threads inside fit (kernels.matmul)
    return kernels.matmul(a, b)


def _rate(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{layer.name}: {name} must be a float in [0, 1]. "
                         f"Received: {name}={value!r}")
    return min(1.0, max(0.0, float(value)))  # Keras clips


def _activation(layer, name, value):
    kind = activations.get(value)[0]
    if kernels.SAVES.get(kind) not in (None, "y"):
        raise ValueError(f"{layer.name}: {name}={value!r} is not supported in recurrent "
                         "layers (its derivative needs its input; use tanh, sigmoid, relu...)")
    return kind


class CellCore:
    """The weights and math of a built-in cell (mixed into a Layer): arguments, weights,
    dropout masks, and the products over a whole sequence. Subclasses give ``gates``,
    ``n_states``, ``run(xp, xz, states0, m, rec)`` and ``run_backward(xp, ctx, dseq,
    d_finals)``; both the layers (``LSTM``) and the cells (``LSTMCell``) are one of these.
    """

    gates = 1
    n_states = 1

    def _init_cell(self, units, activation="tanh", recurrent_activation="sigmoid",
                   use_bias=True, kernel_initializer="glorot_uniform",
                   recurrent_initializer="orthogonal", bias_initializer="zeros",
                   kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                   kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                   dropout=0.0, recurrent_dropout=0.0, seed=None):
        if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
            raise ValueError(f"{self.name}: units must be a positive int. "
                             f"Received: units={units!r}")
        if any(c is not None for c in (kernel_constraint, recurrent_constraint,
                                        bias_constraint)):
            raise NotImplementedError(f"{self.name}: weight constraints are not supported")
        self.units = units
        self.activation = _activation(self, "activation", activation)
        self.recurrent_activation = _activation(self, "recurrent_activation",
                                                recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate(self, "dropout", dropout)
        self.recurrent_dropout = _rate(self, "recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._seed = next_seed(seed)

    @property
    def state_size(self):
        return self.units if self.n_states == 1 else [self.units] * self.n_states

    @property
    def output_size(self):
        return self.units

    # -- weights -----------------------------------------------------------------------
    def bias_shape(self):
        return (self.gates * self.units,)

    def bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        k, u = self.gates, self.units
        self.add_weight(name="kernel", shape=(input_shape[-1], k * u),
                        initializer=self.kernel_initializer,
                        regularizer=self.kernel_regularizer)
        self.add_weight(name="recurrent_kernel", shape=(u, k * u),
                        initializer=self.recurrent_initializer,
                        regularizer=self.recurrent_regularizer)
        if self.use_bias:
            self.add_weight(name="bias", shape=self.bias_shape(), initializer=self.bias_init(),
                            regularizer=self.bias_regularizer)
        self._rng = self.backend.rng(self._seed)

    # -- dropout masks -------------------------------------------------------------------
    def _dropout_masks(self, x, training):
        """``(input_masks, recurrent_masks)``: None or ``(n, B, F)`` / ``(n, B, units)``
        arrays of 0 and ``1 / (1 - rate)``, ``n`` = 1, or ``gates`` under recurrent dropout
        (Keras's implementation 1)."""
        n = self.gates if self.recurrent_dropout > 0.0 else 1
        b = x.shape[0]  # x: one step's input (B, F)

        def draw(rate, width):
            if not training or not 0.0 < rate < 1.0:
                return None
            keep = 1.0 - rate
            return self._rng.bernoulli(keep, (n, b, width), dtype=x.dtype) * (1.0 / keep)

        return draw(self.dropout, x.shape[-1]), draw(self.recurrent_dropout, self.units)

    # -- products shared by every cell ---------------------------------------------------
    def _blocks(self, a, n):
        u = a.shape[-1] // n
        return [a[..., g * u:(g + 1) * u] for g in range(n)]

    def project(self, xp, xt, kernel, masks):
        """``xt @ kernel`` over ``(T, B, F)``, each gate's block with its dropout mask."""
        t, b, f = xt.shape
        if masks is None or masks.shape[0] == 1:
            xm = xt if masks is None else xt * masks[0, None, ...]
            return xp.reshape(_mm(xp.reshape(xm, (t * b, f)), kernel), (t, b, kernel.shape[1]))
        parts = [xp.reshape(xp.reshape(xt * masks[g, None, ...], (t * b, f)) @ w, (t, b, -1))
                 for g, w in enumerate(self._blocks(kernel, masks.shape[0]))]
        return xp.concat(parts, axis=-1)

    def project_grad(self, xp, xt, kernel, masks, dxz, need_dx=True):
        """``(dL/dkernel, dL/dxt)`` from ``dxz = dL/d(xt @ kernel)``."""
        t, b, f = xt.shape
        d2 = xp.reshape(dxz, (t * b, dxz.shape[-1]))
        if masks is None or masks.shape[0] == 1:
            xm = xt if masks is None else xt * masks[0, None, ...]
            dw = _mm(xp.reshape(xm, (t * b, f)).mT, d2)
            if not need_dx:
                return dw, None
            dx = xp.reshape(_mm(d2, kernel.mT), (t, b, f))
            return dw, (dx if masks is None else dx * masks[0, None, ...])
        n = masks.shape[0]
        dws, dx = [], None
        for g, (w, dg) in enumerate(zip(self._blocks(kernel, n), self._blocks(d2, n))):
            dws.append(xp.reshape(xt * masks[g, None, ...], (t * b, f)).mT @ dg)
            part = xp.reshape(dg @ w.mT, (t, b, f)) * masks[g, None, ...]
            dx = part if dx is None else dx + part
        return xp.concat(dws, axis=-1), dx

    def recur(self, xp, h, kernel, masks):
        """``h @ kernel`` for one step, each gate's block with its recurrent dropout mask."""
        if masks is None:
            return h @ kernel
        if masks.shape[0] == 1:
            return (h * masks[0, ...]) @ kernel
        return xp.concat([(h * masks[g, ...]) @ w for g, w in
                          enumerate(self._blocks(kernel, masks.shape[0]))], axis=-1)

    def recur_grad_h(self, xp, dr, kernel, masks):
        """``dL/dh`` of one step's ``recur`` from ``dr = dL/d(h @ kernel)``."""
        if masks is None:
            return dr @ kernel.mT
        if masks.shape[0] == 1:
            return (dr @ kernel.mT) * masks[0, ...]
        n = masks.shape[0]
        out = None
        for g, (w, dg) in enumerate(zip(self._blocks(kernel, n), self._blocks(dr, n))):
            part = (dg @ w.mT) * masks[g, ...]
            out = part if out is None else out + part
        return out

    def recur_grad_kernel(self, xp, hs_prev, kernel, masks, drs):
        """``dL/dkernel`` of ``recur`` over all steps: ``hs_prev (T, B, u)``, ``drs (T, B,
        n*u)``: one product (or one per gate under recurrent dropout)."""
        t, b, u = hs_prev.shape
        d2 = xp.reshape(drs, (t * b, drs.shape[-1]))
        if masks is None or masks.shape[0] == 1:
            hm = hs_prev if masks is None else hs_prev * masks[0, None, ...]
            return _mm(xp.reshape(hm, (t * b, u)).mT, d2)
        n = masks.shape[0]
        return xp.concat([xp.reshape(hs_prev * masks[g, None, ...], (t * b, u)).mT @ dg
                          for g, dg in enumerate(self._blocks(d2, n))], axis=-1)

    def run_sequence(self, xp, xt, states0, m, training):
        """Forward over a time-major ``xt (T, B, F)``: the input product, the bias, then the
        cell's loop; returns the cell's record (``hs`` holds the states, step 0 initial)."""
        in_masks, rec_masks = self._dropout_masks(xt[0, ...], training)
        xz = self.project(xp, xt, self.params["kernel"], in_masks)
        bias = self.params.get("bias")
        if bias is not None:
            xz = xz + (bias[0, ...] if bias.ndim == 2 else bias)
        run = self.run(xp, xz, states0, m, rec_masks)
        return dict(run, xt=xt, m=m, in_masks=in_masks, rec_masks=rec_masks)

    def backward_sequence(self, xp, run, dseq, d_finals, m, need_dx=True):
        """``(dL/dxt, dL/dstates0)`` from the output sequence's gradient ``dseq`` (or None)
        and the final states' (None for none); adds into ``grads``."""
        dxz, d_states0 = self.run_backward(xp, run, dseq, d_finals)
        t, b = dxz.shape[0], dxz.shape[1]
        if "bias" in self.grads:
            db = xp.sum(xp.reshape(dxz, (t * b, dxz.shape[-1])), axis=0)
            if self.grads["bias"].ndim == 2:
                self.grads["bias"][0, ...] += db
            else:
                self.grads["bias"] += db
        dw, dxt = self.project_grad(xp, run["xt"], self.params["kernel"], run["in_masks"], dxz,
                                    need_dx)
        if "kernel" in self.grads:
            self.grads["kernel"] += dw
        return dxt, d_states0

    def cell_config(self):
        s = regularizers.serialize
        return {"units": self.units,
                "activation": activations.serialize(self.activation),
                "recurrent_activation": activations.serialize(self.recurrent_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": s(self.kernel_regularizer),
                "recurrent_regularizer": s(self.recurrent_regularizer),
                "bias_regularizer": s(self.bias_regularizer),
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "seed": self.seed}

    def _state_grads(self, xp, d_finals, like):
        return [xp.zeros_like(like) if d is None else d + 0.0 for d in d_finals]


class SequenceDriver:
    """Runs cores (``CellCore``s) over a sequence (mixed into a Layer): time-major order,
    go_backwards, masks, initial and carried states, outputs and their gradients. A stack
    of cores runs core by core over the whole sequence (equivalent to interleaving them
    step by step: core k's input at step t is core k-1's output at step t, and at a masked
    step every core carries its state)."""

    def _init_driver(self, return_sequences=False, return_state=False, go_backwards=False,
                     stateful=False, unroll=False, zero_output_for_mask=False):
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self.unroll = bool(unroll)  # accepted for Keras; the loop is the same either way
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.states = None  # the carried state of a stateful layer
        self.supports_masking = True

    def cores(self):
        return [self]

    def _state_sizes(self):
        return [c.units for c in self.cores() for _ in range(c.n_states)]

    def _n_states(self):
        return len(self._state_sizes())

    def driver_config(self):
        return {"return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "stateful": self.stateful, "unroll": self.unroll,
                "zero_output_for_mask": self.zero_output_for_mask}

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != 3:
            raise ValueError(f"{self.name}: expects inputs of shape (batch, timesteps, "
                             f"features). Received: input_shape={input_shape}")
        kernel = self.cores()[0].params.get("kernel") if self.cores() else None
        if kernel is not None and input_shape[-1] != kernel.shape[0]:
            raise ValueError(f"{self.name}: built for {kernel.shape[0]} features. "
                             f"Received: input_shape={input_shape}")

    def compute_output_shape(self, input_shape):
        b, t, u = input_shape[0], input_shape[1], self._output_size()
        y = (b, t, u) if self.return_sequences else (b, u)
        if self.return_state:
            return [y] + [(b, n) for n in self._state_sizes()]
        return y

    def _output_size(self):
        return self.cores()[-1].units

    def macs(self, input_shape):
        """Multiply-adds per sample: every step multiplies by every kernel once."""
        steps = input_shape[1] or 1
        return steps * sum(c.count_params() for c in self.cores()) if self.cores() else \
            steps * self.count_params()

    def compute_mask(self, x, mask=None):
        out = mask if self.return_sequences else None
        return [out] + [None] * self._n_states() if self.return_state else out

    # -- states --------------------------------------------------------------------------
    def reset_states(self, states=None):
        """Zero a stateful layer's carried state (or set it to ``states``)."""
        if states is not None:
            states = states if isinstance(states, (list, tuple)) else [states]
            self.states = [self.backend.asarray(s, dtype=getattr(self.backend.xp, self.dtype))
                           for s in states]
        elif self.states is not None:
            self.states = [self.backend.xp.zeros_like(s) for s in self.states]

    reset_state = reset_states

    def _initial(self, xp, batch, dtype, initial_state):
        if initial_state is not None:
            given = initial_state if isinstance(initial_state, (list, tuple)) else \
                [initial_state]
            if len(given) != self._n_states():
                raise ValueError(f"{self.name}: initial_state needs {self._n_states()} "
                                 f"tensor(s). Received: {len(given)}")
            shapes = [(batch, n) for n in self._state_sizes()]
            if [tuple(g.shape) for g in given] != shapes:
                raise ValueError(f"{self.name}: initial_state must have shapes {shapes}. "
                                 f"Received: {[tuple(g.shape) for g in given]}")
            return list(given)
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != batch:
                raise ValueError(f"{self.name}: stateful layer built for batch "
                                 f"{self.states[0].shape[0]}. Received: batch {batch}")
            return list(self.states)
        return [xp.zeros((batch, n), dtype=dtype, device=self.backend.device)
                for n in self._state_sizes()]

    # -- the call --------------------------------------------------------------------------
    def _time_major(self, xp, x, mask):
        xt = xp.permute_dims(x, (1, 0, 2))
        m = None
        if mask is not None:
            mask = xp.astype(mask, xp.bool) if mask.dtype != xp.bool else mask
            m = xp.stack([mask[:, t] for t in range(mask.shape[1])])  # (T, B), contiguous
        if self.go_backwards:
            xt = xp.flip(xt, axis=0)
            m = None if m is None else xp.flip(m, axis=0)
        return xt, m

    def forward(self, x, training=False, initial_state=None, mask=None):
        """``y`` (``(B, units)``, or ``(B, T, units)`` with ``return_sequences``), and with
        ``return_state`` the final state(s) after it."""
        xp = namespace(x)
        xt, m = self._time_major(xp, x, mask)
        states0 = self._initial(xp, x.shape[0], x.dtype, initial_state)
        runs, finals, inp = [], [], xt
        for core in self.cores():
            k = core.n_states
            run = core.run_sequence(xp, inp, states0[:k], m, training)
            states0 = states0[k:]
            runs.append(run)
            finals += run["finals"]
            inp = run["hs"][1:, ...]
        seq = inp
        if self.zero_output_for_mask and m is not None:
            seq = xp.where(m[..., None], seq, 0.0)
        if self.stateful:
            self.states = [xp.asarray(s, copy=True) for s in finals]
        y = xp.permute_dims(seq, (1, 0, 2)) if self.return_sequences else seq[-1, ...]
        ctx = {"runs": runs, "m": m, "given": initial_state is not None,
               "shape": tuple(xt.shape)}
        return ([y] + finals if self.return_state else y), ctx

    def backward(self, ctx, dy, need_dx=True):
        dys = list(dy) if self.return_state else [dy]
        d_out = dys[0]
        d_finals = dys[1:] + [None] * (self._n_states() + 1 - len(dys))
        t, b = ctx["shape"][0], ctx["shape"][1]
        like = ctx["runs"][-1]["hs"]
        xp = namespace(like)
        dseq = None
        zeroed = self.zero_output_for_mask and ctx["m"] is not None
        if d_out is not None and not self.return_sequences and not zeroed:
            # the last output is the last core's final h: its gradient joins that state's
            k = self._n_states() - self.cores()[-1].n_states
            d_finals = list(d_finals)
            d_finals[k] = d_out if d_finals[k] is None else d_finals[k] + d_out
        elif d_out is not None:
            dseq = xp.permute_dims(d_out, (1, 0, 2)) if self.return_sequences else \
                xp.concat([xp.zeros((t - 1, b, d_out.shape[-1]), dtype=d_out.dtype,
                                    device=self.backend.device), d_out[None, ...]], axis=0)
            if zeroed:
                dseq = xp.where(ctx["m"][..., None], dseq, 0.0)
        cores = self.cores()
        d_states0 = []
        ends = [sum(c.n_states for c in cores[:i + 1]) for i in range(len(cores))]
        for i in range(len(cores) - 1, -1, -1):
            core, run = cores[i], ctx["runs"][i]
            mine = d_finals[ends[i] - core.n_states:ends[i]]
            dseq, d0 = core.backward_sequence(xp, run, dseq, mine, ctx["m"],
                                              need_dx=need_dx or i > 0)
            d_states0 = d0 + d_states0
        if not need_dx:
            return None
        if self.go_backwards:
            dseq = xp.flip(dseq, axis=0)
        dx = xp.permute_dims(dseq, (1, 0, 2))
        if ctx["given"]:
            return InputGrads(args=dx, kwargs={"initial_state": d_states0})
        return dx


class RecurrentBase(SequenceDriver, CellCore, Layer):
    """A built-in recurrent layer: its own weights (``kernel``, ``recurrent_kernel``,
    ``bias``) and the sequence around them."""

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid",
                 use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros",
                 kernel_regularizer=None, recurrent_regularizer=None, bias_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 zero_output_for_mask=False, **kwargs):
        kwargs.pop("implementation", None)
        kwargs.pop("use_cudnn", None)
        Layer.__init__(self, **kwargs)
        self._init_cell(units, activation, recurrent_activation, use_bias, kernel_initializer,
                        recurrent_initializer, bias_initializer, kernel_regularizer,
                        recurrent_regularizer, bias_regularizer, kernel_constraint,
                        recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                        seed)
        self._init_driver(return_sequences, return_state, go_backwards, stateful, unroll,
                          zero_output_for_mask)

    def get_config(self):
        return {**Layer.get_config(self), **self.cell_config(), **self.driver_config()}
