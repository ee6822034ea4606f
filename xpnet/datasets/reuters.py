"""Reuters newswires, as ``keras.datasets.reuters``: 11,228 newswires as word-index
sequences, labelled with 46 topics."""

import numpy as np

from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file
from xpnet.datasets._sequences import drop_long
from xpnet.datasets._sequences import limit
from xpnet.datasets._sequences import load_npz
from xpnet.datasets._sequences import object_array
from xpnet.datasets._sequences import offset
from xpnet.datasets._sequences import word_index

__all__ = ["load_data", "get_word_index", "get_label_names"]

_LABELS = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply",
    "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas",
    "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin",
    "strategic-metal", "livestock", "retail", "ipi", "iron-steel", "rubber", "heat", "jobs",
    "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog", "lead",
)


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3):
    """Load Reuters from Keras's ``reuters.npz``: shuffled, re-indexed as
    :func:`xpnet.datasets.imdb.load_data`, then the last ``test_split`` held out.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Object arrays of lists of int and int labels 0-45 (8,982 and 2,246 samples).
    """
    f = load_npz(get_file(path, ORIGIN + "reuters.npz", caller="reuters.load_data"))
    x, y = f["x"], f["y"]
    idx = np.arange(len(x))
    np.random.RandomState(seed).shuffle(idx)
    xs, labels = drop_long(offset(x[idx], start_char, index_from), y[idx], maxlen)
    xs = limit(xs, num_words, skip_top, oov_char)
    cut = int(len(xs) * (1 - test_split))
    labels = np.asarray(labels, dtype=y.dtype)
    return (object_array(xs[:cut]), labels[:cut]), (object_array(xs[cut:]), labels[cut:])


def get_word_index(path="reuters_word_index.json"):
    """The dict from words to their index (add ``index_from`` to match ``load_data``)."""
    return word_index(path, "reuters_word_index.json", "reuters.get_word_index")


def get_label_names():
    """The 46 topic names, in label order."""
    return _LABELS
