"""Bidirectional and TimeDistributed: layers that wrap a layer (Keras 3's wrappers).

Both hold their sublayers as attributes (the engine tracks them) and run them through their
``forward`` / ``backward`` directly.
"""

from xpnet.backend import namespace
from xpnet.engine import calls
from xpnet.layers.base import InputGrads
from xpnet.layers.base import Layer

__all__ = ["Bidirectional", "TimeDistributed"]

_MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _serialize(layer):
    from xpnet.saving import serialize_layer

    return serialize_layer(layer)


def _clone(layer, **changes):
    from xpnet.saving import deserialize_layer

    entry = _serialize(layer)
    entry["config"].update(changes)
    return deserialize_layer(entry)


def _list(y):
    # several outputs come as a list; a tuple is one shape
    return list(y) if isinstance(y, list) else [y]


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards, and merges their outputs.

    Parameters
    ----------
    layer : RNN layer
        The forward direction is a fresh copy of it (from its config, as Keras does).
    merge_mode : {"concat", "sum", "mul", "ave", None}, default="concat"
        None returns the two outputs as a list.
    backward_layer : RNN layer, default=None
        The backward direction; by default a copy of ``layer`` with ``go_backwards=True``.
        With ``return_sequences`` its outputs are put back in time order before merging,
        and both directions output 0 at masked steps (Keras sets ``zero_output_for_mask``).
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            from xpnet.saving import deserialize_layer

            layer = deserialize_layer(layer)
        if not hasattr(layer, "return_sequences"):
            raise ValueError(f"{self.name}: layer must be a recurrent layer. "
                             f"Received: layer={layer!r}")
        if merge_mode not in _MERGE_MODES:
            raise ValueError(f"{self.name}: merge_mode must be one of {_MERGE_MODES}. "
                             f"Received: merge_mode={merge_mode!r}")
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        self.forward_layer = _clone(layer, name="forward_" + layer.name)
        self._custom_backward = backward_layer is not None
        if backward_layer is None:
            backward_layer = _clone(layer, name="backward_" + layer.name,
                                    go_backwards=not layer.go_backwards)
        elif isinstance(backward_layer, dict):
            from xpnet.saving import deserialize_layer

            backward_layer = deserialize_layer(backward_layer)
        if (backward_layer.return_sequences, backward_layer.return_state) != \
                (self.return_sequences, self.return_state):
            raise ValueError(f"{self.name}: backward_layer must have the same "
                             "return_sequences and return_state as layer")
        self.backward_layer = backward_layer
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = self.return_sequences
        self._initial_weights = weights
        self.supports_masking = True

    def build(self, input_shape):
        self.forward_layer.build_on(self.backend, input_shape)
        self.backward_layer.build_on(self.backend, input_shape)
        if self._initial_weights is not None:
            half = len(self._initial_weights) // 2
            self.forward_layer.set_weights(self._initial_weights[:half])
            self.backward_layer.set_weights(self._initial_weights[half:])
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        f = _list(self.forward_layer.compute_output_shape(input_shape))
        b = _list(self.backward_layer.compute_output_shape(input_shape))
        y = f[0][:-1] + (f[0][-1] + b[0][-1],) if self.merge_mode == "concat" else f[0]
        ys = [f[0], b[0]] if self.merge_mode is None else [y]
        if self.return_state:
            return ys + f[1:] + b[1:]
        return ys if self.merge_mode is None else y

    def compute_mask(self, x, mask=None):
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            n = len(_list(self.forward_layer.compute_output_shape((None, 1, 1)))) - 1
            return outs + [None] * (2 * n)
        return outs if self.merge_mode is None else out

    def forward(self, x, training=False, initial_state=None, mask=None):
        xp = namespace(x)
        init_f = init_b = None
        if initial_state is not None:
            half = len(initial_state) // 2
            init_f, init_b = list(initial_state[:half]), list(initial_state[half:])
        yf, cf = self.forward_layer.forward(x, training, initial_state=init_f, mask=mask)
        yb, cb = self.backward_layer.forward(x, training, initial_state=init_b, mask=mask)
        yf, yb = _list(yf), _list(yb)
        of, ob = yf[0], yb[0]
        if self.return_sequences:
            ob = xp.flip(ob, axis=1)
        if self.merge_mode == "concat":
            out = [xp.concat([of, ob], axis=-1)]
        elif self.merge_mode == "sum":
            out = [of + ob]
        elif self.merge_mode == "ave":
            out = [(of + ob) * 0.5]
        elif self.merge_mode == "mul":
            out = [of * ob]
        else:
            out = [of, ob]
        ctx = {"f": cf, "b": cb, "of": of, "ob": ob, "nf": len(yf) - 1,
               "given": initial_state is not None}
        if self.return_state:
            return out + yf[1:] + yb[1:], ctx
        return (out if self.merge_mode is None else out[0]), ctx

    def _split(self, xp, ctx, dy):
        dys = _list(dy) if (self.return_state or self.merge_mode is None) else [dy]
        n_out = 2 if self.merge_mode is None else 1
        outs, states = dys[:n_out], dys[n_out:]
        d = outs[0]
        if self.merge_mode is None:
            df, db = outs
        elif d is None:
            df = db = None
        elif self.merge_mode == "concat":
            uf = ctx["of"].shape[-1]
            df, db = d[..., :uf], d[..., uf:]
        elif self.merge_mode == "sum":
            df = db = d
        elif self.merge_mode == "ave":
            df = db = d * 0.5
        else:
            df, db = d * ctx["ob"], d * ctx["of"]
        if db is not None and self.return_sequences:
            db = xp.flip(db, axis=1)
        nf = ctx["nf"]
        states = states + [None] * (2 * nf - len(states))
        return [df] + states[:nf], [db] + states[nf:]

    def backward(self, ctx, dy, need_dx=True):
        xp = namespace(ctx["of"])
        dyf, dyb = self._split(xp, ctx, dy)
        gf = self.forward_layer.backward(ctx["f"], dyf if self.return_state else dyf[0],
                                         need_dx)
        gb = self.backward_layer.backward(ctx["b"], dyb if self.return_state else dyb[0],
                                          need_dx)
        if not need_dx:
            return None
        if ctx["given"]:
            return InputGrads(args=gf.args + gb.args, kwargs={
                "initial_state": gf.kwargs["initial_state"] + gb.kwargs["initial_state"]})
        return gf + gb

    def get_config(self):
        config = {**super().get_config(), "merge_mode": self.merge_mode,
                  "layer": _serialize(self.forward_layer)}
        config["layer"]["config"]["name"] = self.forward_layer.name[len("forward_"):]
        if self._custom_backward:
            config["backward_layer"] = _serialize(self.backward_layer)
        return config


class TimeDistributed(Layer):
    """Applies ``layer`` to every time step: ``(B, T, ...)`` runs as ``(B*T, ...)``.

    Parameters
    ----------
    layer : Layer
    """

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if isinstance(layer, dict):
            from xpnet.saving import deserialize_layer

            layer = deserialize_layer(layer)
        if not isinstance(layer, Layer):
            raise ValueError(f"{self.name}: layer must be a Layer. Received: layer={layer!r}")
        self.layer = layer
        self.supports_masking = True

    def check_input_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 3:
            raise ValueError(f"{self.name}: expects inputs of rank >= 3 (batch, time, ...). "
                             f"Received: input_shape={input_shape}")

    def build(self, input_shape):
        self.layer.build_on(self.backend, (None,) + tuple(input_shape[2:]))

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return (input_shape[0], input_shape[1]) + tuple(inner[1:])

    def forward(self, x, training=False):
        xp = namespace(x)
        b, t = x.shape[0], x.shape[1]
        y, ctx = self.layer.forward(xp.reshape(x, (b * t,) + tuple(x.shape[2:])), training)
        return xp.reshape(y, (b, t) + tuple(y.shape[1:])), (ctx, tuple(x.shape))

    def backward(self, ctx, dy, need_dx=True):
        xp = namespace(dy)
        inner, shape = ctx
        b, t = shape[0], shape[1]
        d2 = xp.reshape(dy, (b * t,) + tuple(dy.shape[2:]))
        if not need_dx:
            if calls.signature(self.layer, "backward").need_dx:
                self.layer.backward(inner, d2, need_dx=False)
            else:
                self.layer.backward(inner, d2)
            return None
        dx = self.layer.backward(inner, d2)
        return xp.reshape(dx, shape)

    def get_config(self):
        return {**super().get_config(), "layer": _serialize(self.layer)}
