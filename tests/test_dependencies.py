"""The install brings what the kernels need: Numba compiles ``np.dot`` and ``np.linalg``
inside njit against SciPy's BLAS, so a kernel using them makes SciPy a dependency of the
package itself (the test extra brings SciPy through scikit-learn, which would hide it)."""

import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def _dependencies():
    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    return {re.match(r'\s*"([A-Za-z0-9_.-]+)', line).group(1).lower()
            for line in block.splitlines() if line.strip().startswith('"')}


def test_numba_linear_algebra_has_scipy():
    kernels = os.path.join(ROOT, "kernels")
    users = [name for name in sorted(os.listdir(kernels)) if name.endswith(".py") and
             re.search(r"\bnp\.(dot|linalg\.)", open(os.path.join(kernels, name)).read())]
    assert users, "no kernel uses np.dot: drop this test and SciPy with it"
    assert "scipy" in _dependencies(), f"{users} need SciPy in [project] dependencies"
