"""The word-index sequences of IMDB and Reuters: a restricted ``.npz`` reader for their
ragged (object) arrays, and Keras's start/offset/out-of-vocabulary re-indexing."""

import io
import json
import zipfile

import numpy as np

from xpnet.datasets._cifar import _Unpickler
from xpnet.datasets._files import ORIGIN
from xpnet.datasets._files import get_file


def _read_member(f):
    try:
        return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError:  # an object array: rebuild it with NumPy's globals only
        f.seek(0)
        version = np.lib.format.read_magic(f)
        if version[0] == 1:
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return _Unpickler(f).load()


def load_npz(path):
    """The arrays of an ``.npz`` file, object arrays included, without unpickling anything
    but NumPy arrays (Keras's ``npz_utils.load_npz``)."""
    out = {}
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            if name.endswith(".npy"):
                with z.open(name) as member:
                    out[name[:-4]] = _read_member(io.BytesIO(member.read()))
    return out


def offset(xs, start_char, index_from):
    """Prepend ``start_char`` (unless None) and add ``index_from`` to every word index."""
    head = [] if start_char is None else [start_char]
    return [head + [int(w) + index_from for w in x] for x in xs]


def drop_long(xs, labels, maxlen):
    """Keep the sequences shorter than ``maxlen`` words (all when ``maxlen`` is None)."""
    if not maxlen:
        return list(xs), list(labels)
    kept = [(x, y) for x, y in zip(xs, labels) if len(x) < maxlen]
    return [k[0] for k in kept], [k[1] for k in kept]


def limit(xs, num_words, skip_top, oov_char):
    """Replace indices outside ``[skip_top, num_words)`` by ``oov_char``, or drop them when
    it is None. ``num_words=None`` means the largest index present (which, as in Keras,
    is then itself out of range)."""
    if not num_words:
        num_words = max(max(x) for x in xs)
    if oov_char is not None:
        return [[w if skip_top <= w < num_words else oov_char for w in x] for x in xs]
    return [[w for w in x if skip_top <= w < num_words] for x in xs]


def object_array(seqs):
    """A 1-D object array of lists (``np.array(seqs, dtype=object)`` would make a 2-D array
    when every sequence has the same length)."""
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def word_index(path, fname, caller):
    path = get_file(path, ORIGIN + fname, caller=caller)
    with open(path) as f:
        return json.load(f)
