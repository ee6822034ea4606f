"""The Transformer examples learn what they claim, on shortened runs."""

import os
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")


def _run(module, argv, monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)
    monkeypatch.setattr(sys, "argv", [module] + argv)
    mod = __import__(module)
    return mod.main()


def test_seq2seq_reverses_held_out_strings(monkeypatch, capsys):
    acc = _run("transformer_seq2seq", ["--epochs", "2"], monkeypatch)
    assert acc >= 0.99


def test_classifier_with_padding_mask(monkeypatch, capsys):
    acc, acc_wide, gap = _run("transformer_classifier", ["--epochs", "1"], monkeypatch)
    assert acc >= 0.95 and abs(acc - acc_wide) < 1e-9 and gap < 1e-5


def test_gpt_learns_characters(monkeypatch, capsys):
    if not any(n.endswith(".py") for n in os.listdir(os.path.dirname(os.__file__))):
        pytest.skip("this Python ships no standard-library sources")
    bpc = _run("transformer_gpt", ["--chars", "60000", "--width", "64", "--stride", "16"],
               monkeypatch)
    assert bpc < 4.0  # a uniform guess is log2(98) = 6.6 bits
