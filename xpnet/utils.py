"""Seeds: one global source from which every initializer, shuffle and dropout mask draws."""

import random

from xpnet.engine.data_feed import PyDataset
from xpnet.engine.data_feed import Sequence
from xpnet.progbar import Progbar

__all__ = ["set_random_seed", "next_seed", "to_categorical", "pad_sequences", "PyDataset",
           "Sequence", "Progbar"]

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


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0):
    """Sequences of different lengths as one NumPy array ``(n, maxlen, ...)``, as
    ``keras.utils.pad_sequences``.

    Parameters
    ----------
    sequences : list of sequences
        Each a list (or array) of ids, or of equally shaped feature vectors.
    maxlen : int, default=None
        Length of the output; the longest sequence's by default.
    dtype : str, default="int32"
    padding : {"pre", "post"}, default="pre"
        Pad before or after each sequence.
    truncating : {"pre", "post"}, default="pre"
        Drop values from the start or the end of sequences longer than ``maxlen``.
    value : float, default=0.0
        The padding value.
    """
    from xpnet.backend import get_backend

    if not hasattr(sequences, "__len__"):
        raise ValueError(f"pad_sequences: `sequences` must be iterable. Received: "
                         f"sequences={sequences!r}")
    for arg, v in (("padding", padding), ("truncating", truncating)):
        if v not in ("pre", "post"):
            raise ValueError(f'pad_sequences: {arg} type "{v}" not understood; expected '
                             f'"pre" or "post"')
    xp = get_backend("cpu").xp
    seqs = [xp.asarray(s) for s in sequences]
    lengths = [int(s.shape[0]) if s.ndim else 1 for s in seqs]
    if maxlen is None:
        maxlen = max(lengths, default=0)
    sample_shape = next((tuple(s.shape[1:]) for s in seqs if s.ndim and s.shape[0]), ())
    out = xp.full((len(seqs), maxlen) + sample_shape, value, dtype=getattr(xp, dtype))
    for i, s in enumerate(seqs):
        if not s.ndim or not s.shape[0] or maxlen == 0:
            continue  # an empty sequence stays all padding
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if tuple(s.shape[1:]) != sample_shape:
            raise ValueError(f"pad_sequences: shape of sample {tuple(s.shape[1:])} of "
                             f"sequence {i} differs from the expected {sample_shape}")
        n = s.shape[0]
        if padding == "post":
            out[i, :n, ...] = xp.astype(s, out.dtype)
        else:
            out[i, maxlen - n:, ...] = xp.astype(s, out.dtype)
    return out
