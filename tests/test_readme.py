"""The README's (and DESIGN.md's) Keras program runs as written, with only its import line
changed, and learns: 8x8 digits are scaled up to the 784 inputs it expects."""

import os
import re

import numpy as np

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _first_python_block(text):
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def _digits_as_mnist():
    from xpnet import datasets

    (x, y), (xt, yt) = datasets.load_digits()
    up = lambda a: np.pad(np.kron(a, np.ones((3, 3))), ((0, 0), (2, 2), (2, 2)))  # 8->24->28
    return (up(x).reshape(-1, 784) / 16.0, y), (up(xt).reshape(-1, 784) / 16.0, yt)


def test_readme_program_runs_and_learns():
    code = _first_python_block(open(README).read())
    assert code.startswith("from xpnet import keras")
    (x_train, y_train), (x_test, y_test) = _digits_as_mnist()
    scope = {"x_train": x_train, "y_train": y_train, "x_test": x_test}
    exec(compile(code, "README.md", "exec"), scope)  # verbatim, progress bar and all
    predictions = scope["predictions"]
    assert predictions.shape == (len(x_test), 10)
    assert (predictions.argmax(1) == y_test).mean() > 0.9
