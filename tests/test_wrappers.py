"""Bidirectional (every merge mode, backward_layer, masks, states) and TimeDistributed:
float64 central differences through tests/harness_rnn.py on NumPy and strict."""

import numpy as np
import pytest
from harness_rnn import check_call

from xpnet.layers.core import Dense
from xpnet.layers.recurrent import GRU
from xpnet.layers.recurrent import LSTM
from xpnet.layers.wrappers import Bidirectional
from xpnet.layers.wrappers import TimeDistributed

B, F, T = 3, 4, 7


def _mask():
    m = np.ones((B, T), bool)
    m[1, 4:] = False
    m[2, 1:] = False
    return m


def _x(seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (B, T, F))


def _merge_mode_case(backend, merge_mode):
    layer = Bidirectional(LSTM(3, return_sequences=True, dtype="float64"),
                          merge_mode=merge_mode, dtype="float64")
    layer.build_on(backend, (None, T, F))
    ys = check_call(backend, layer, _x(), const_kwargs={"mask": backend.asarray(_mask())})
    width = 6 if merge_mode == "concat" else 3
    assert [tuple(y.shape) for y in ys] == ([(B, T, 3)] * 2 if merge_mode is None else
                                            [(B, T, width)])
    y = backend.to_numpy(ys[0])
    assert np.all(y[~_mask()] == 0.0)  # Keras: masked steps output 0 in both directions
    assert layer.compute_output_shape((None, T, F)) == (
        [(None, T, 3)] * 2 if merge_mode is None else (None, T, width))


def test_bidirectional_concat(backend):
    _merge_mode_case(backend, "concat")


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave", None])
def test_bidirectional_merge_modes(cpu, merge_mode):
    # the merges are plain array-API code; strict runs the concat case above (CI time)
    _merge_mode_case(cpu, merge_mode)


def test_bidirectional_states_and_backward_layer(backend):
    fwd = LSTM(3, return_state=True, dtype="float64")
    bwd = LSTM(3, return_state=True, go_backwards=True, dtype="float64", unit_forget_bias=False)
    layer = Bidirectional(fwd, backward_layer=bwd, dtype="float64")
    layer.build_on(backend, (None, T, F))
    rng = np.random.default_rng(1)
    states = [rng.uniform(-1, 1, (B, 3)) for _ in range(4)]
    ys = check_call(backend, layer, _x(2), {"initial_state": states},
                    const_kwargs={"mask": backend.asarray(_mask())})
    assert [tuple(y.shape) for y in ys] == [(B, 6)] + [(B, 3)] * 4
    assert layer.backward_layer is bwd and layer.forward_layer is not fwd
    config = layer.get_config()
    clone = Bidirectional.from_config(config)
    assert clone.get_config()["backward_layer"]["config"]["unit_forget_bias"] is False


def test_bidirectional_gru_last_output(cpu):
    backend = cpu  # strict runs Bidirectional in the tests above (CI time)
    layer = Bidirectional(GRU(3, dtype="float64"), merge_mode="sum", dtype="float64")
    layer.build_on(backend, (None, T, F))
    check_call(backend, layer, _x(3), const_kwargs={"mask": backend.asarray(_mask())})
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(GRU(3), merge_mode="max")


def test_time_distributed(backend):
    layer = TimeDistributed(Dense(3, activation="tanh", dtype="float64"), dtype="float64")
    layer.build_on(backend, (None, T, F))
    (y,) = check_call(backend, layer, _x(4))
    assert tuple(y.shape) == (B, T, 3) == layer.compute_output_shape((B, T, F))
    clone = TimeDistributed.from_config(layer.get_config())
    assert clone.layer.units == 3


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_global_average_pooling_1d_with_mask(backend, data_format):
    """Keras's masked mean: sum(x * mask) / sum(mask) over the unmasked steps."""
    from xpnet.layers.pooling import GlobalAveragePooling1D

    layer = GlobalAveragePooling1D(data_format=data_format, dtype="float64")
    shape = (None, T, F) if data_format == "channels_last" else (None, F, T)
    layer.build_on(backend, shape)
    x = _x(5) if data_format == "channels_last" else np.transpose(_x(5), (0, 2, 1))
    mask = _mask()
    (y,) = check_call(backend, layer, x, const_kwargs={"mask": backend.asarray(mask)})
    xl = _x(5)
    want = (xl * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(backend.to_numpy(y), want, rtol=1e-12)
    assert layer.compute_mask(backend.asarray(x), backend.asarray(mask)) is None
