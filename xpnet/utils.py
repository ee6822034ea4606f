"""Seeds: one global source from which every initializer, shuffle and dropout mask draws."""

import random

from xpnet.data_feed import PyDataset
from xpnet.data_feed import Sequence
from xpnet.progbar import Progbar

__all__ = ["set_random_seed", "next_seed", "to_categorical", "PyDataset", "Sequence",
           "Progbar"]

_SEEDS = random.Random()


def set_random_seed(seed):
    """Make everything created afterwards repeatable, as ``keras.utils.set_random_seed``.

    Every layer's initializer, every ``fit`` shuffle and every dropout layer created after this
    call takes its own seed from one generator seeded here, so two runs of the same program
    with the same seed give identical weights. As Keras, it also seeds Python's ``random``
    and NumPy's global generator (``np.random.seed``).
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"set_random_seed: seed must be an int, got {seed!r}")
    from xpnet.backend import seed_global_generators

    _SEEDS.seed(seed)
    random.seed(seed)
    seed_global_generators(seed)


def next_seed(seed=None):
    """``seed`` if given, else a fresh seed from the global generator."""
    return seed if seed is not None else _SEEDS.getrandbits(63)


def to_categorical(y, num_classes=None):
    """One-hot float64 rows from integer labels, as ``keras.utils.to_categorical`` (whose
    NumPy result is float64)."""
    from xpnet.backend import backend_of

    backend = backend_of(y) if hasattr(y, "shape") else None
    if backend is None:
        from xpnet.backend import get_backend

        backend = get_backend("cpu")
        y = backend.asarray(y)
    xp = backend.xp
    y = xp.astype(y, xp.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = xp.reshape(y, tuple(y.shape[:-1]))
    n = num_classes if num_classes is not None else int(xp.max(y)) + 1
    classes = xp.arange(n, dtype=xp.int64, device=backend.device)
    return xp.astype(y[..., None] == classes, xp.float64)
