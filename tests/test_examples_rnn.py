"""The recurrent examples run and learn (small settings; the full runs are in the report of
issue 12 and benchmarks/rnn.py)."""

import math

import pytest
from test_applications import _example
from test_applications import _one_blas_thread


@pytest.mark.slow
def test_lstm_example_reaches_97_percent_on_the_mnist_split(mnist_dir):
    """examples/lstm.py on the MNIST test set (first 8,000 train, last 2,000 test), 5 epochs."""
    with _one_blas_thread():
        accuracy, times = _example("lstm").main(["--data", mnist_dir, "--backend", "cpu",
                                                 "--quiet"])
    assert len(times) == 5
    assert accuracy >= 0.97


def test_lstm_example_learns_the_digits():
    with _one_blas_thread():
        accuracy, _ = _example("lstm").main(["--epochs", "3", "--backend", "cpu", "--quiet"])
    assert accuracy >= 0.6  # ten classes: chance is 0.1


def test_char_lm_beats_nothing_and_samples():
    bits, baseline = _example("char_lm").main(["--chars", "20000", "--units", "16",
                                               "--epochs", "1", "--sample", "10",
                                               "--length", "40", "--backend", "cpu"])
    assert math.isfinite(bits) and 3.0 < baseline < 6.0


def test_sentiment_runs_with_and_without_mask():
    results = _example("sentiment").main(["--train", "256", "--test", "64", "--epochs", "1",
                                          "--backend", "cpu"])
    assert set(results) == {True, False}
    assert all(0.0 <= a <= 1.0 for a in results.values())
