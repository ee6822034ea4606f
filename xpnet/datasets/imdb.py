"""IMDB movie reviews, as ``keras.datasets.imdb``: 25,000 + 25,000 reviews as word-index
sequences (indices by frequency rank), labels 1 (positive) or 0."""

import numpy as np

from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file
from xpnet.datasets._sequences import drop_long
from xpnet.datasets._sequences import limit
from xpnet.datasets._sequences import load_npz
from xpnet.datasets._sequences import object_array
from xpnet.datasets._sequences import offset
from xpnet.datasets._sequences import word_index

__all__ = ["load_data", "get_word_index"]


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, **kwargs):
    """Load IMDB from Keras's ``imdb.npz``, shuffled and re-indexed as Keras does.

    Parameters
    ----------
    path : str, default="imdb.npz"
        A file name in Keras's cache folder, or a path to the file.
    num_words : int, default=None
        Keep the ``num_words`` most frequent words; rarer ones become ``oov_char``.
    skip_top : int, default=0
        Also replace the ``skip_top`` most frequent words by ``oov_char``.
    maxlen : int, default=None
        Drop sequences of ``maxlen`` or more words (the start character included).
    seed : int, default=113
        Seed of the shuffle (one ``np.random.RandomState`` for train, then test).
    start_char : int, default=1
    oov_char : int, default=2
    index_from : int, default=3
        Added to every word index (0 pads, 1 starts, 2 is out of vocabulary).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Object arrays of lists of int ``(25000,)`` and int labels ``(25000,)``.
    """
    if kwargs:
        raise TypeError(f"imdb.load_data: unrecognized keyword arguments: {sorted(kwargs)}")
    f = load_npz(get_file(path, ORIGIN + "imdb.npz", caller="imdb.load_data"))
    rng = np.random.RandomState(seed)
    halves = []
    for part in ("train", "test"):
        x, y = f[f"x_{part}"], f[f"y_{part}"]
        idx = np.arange(len(x))
        rng.shuffle(idx)
        x, labels = drop_long(offset(x[idx], start_char, index_from), y[idx], maxlen)
        if maxlen and not x:
            raise ValueError(f"imdb.load_data: after filtering for sequences shorter than "
                             f"maxlen={maxlen}, no sequence was kept. Increase maxlen.")
        halves.append((x, np.asarray(labels, dtype=y.dtype)))
    n = len(halves[0][0])
    xs = limit(halves[0][0] + halves[1][0], num_words, skip_top, oov_char)
    return (object_array(xs[:n]), halves[0][1]), (object_array(xs[n:]), halves[1][1])


def get_word_index(path="imdb_word_index.json"):
    """The dict from words to their index (add ``index_from`` to match ``load_data``)."""
    return word_index(path, "imdb_word_index.json", "imdb.get_word_index")
