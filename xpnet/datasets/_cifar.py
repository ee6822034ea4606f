"""CIFAR's pickled batches, read from Keras's extracted folder or straight from the
``.tar.gz`` archive, through an unpickler that only rebuilds NumPy arrays (as Keras's
``RestrictedUnpickler``: a tampered file cannot run code)."""

import os
import pickle
import tarfile

import numpy as np

from xpnet.datasets._files import find_cached
from xpnet.datasets._files import get_file

_ALLOWED = frozenset({("numpy", "ndarray"), ("numpy", "dtype"),
                      ("numpy.core.multiarray", "_reconstruct"),
                      ("numpy._core.multiarray", "_reconstruct")})


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a dataset file: "
                                     "the file may be corrupt or malicious")


def _batch(f, label_key):
    d = _Unpickler(f, encoding="bytes").load()
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    data = np.asarray(d["data"], dtype=np.uint8)
    return data.reshape(data.shape[0], 3, 32, 32), np.asarray(d[label_key], dtype=np.uint8)


class _Source:
    """Batch files by name, from a folder or a tar archive."""

    def __init__(self, location, inner):
        self.location, self.inner = location, inner

    def read(self, name, label_key):
        if os.path.isdir(self.location):
            folder = self.location
            if os.path.isdir(os.path.join(folder, self.inner)):
                folder = os.path.join(folder, self.inner)
            with open(os.path.join(folder, name), "rb") as f:
                return _batch(f, label_key)
        with tarfile.open(self.location) as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and os.path.basename(m.name) == name), None)
            if member is None:
                raise FileNotFoundError(f"no {name} in the archive {self.location}")
            return _batch(tar.extractfile(member), label_key)


def source(dirname, inner, origin, path, caller):
    """Where the batches are: ``path`` (a folder or the archive) if given; else Keras 3's
    extracted folder ``<dirname>/<inner>``, an older Keras's ``<inner>`` folder, or an
    archive in the cache; else the archive downloaded to Keras's download target."""
    if path is not None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"{caller}: no such file or folder: {path}")
        return _Source(path, inner)
    archive = os.path.basename(origin)
    found = find_cached((os.path.join(dirname, inner), inner, f"{dirname}_archive",
                         f"{inner}.tar.gz", archive))
    if found is None:
        found = get_file(f"{dirname}_archive", origin, caller=caller)
    return _Source(found, inner)


def channels_last(x, y):
    """Keras's layout under its default ``image_data_format()``: ``(n, 32, 32, 3)`` uint8
    images and ``(n, 1)`` uint8 labels."""
    return x.transpose(0, 2, 3, 1), np.reshape(y, (len(y), 1))
