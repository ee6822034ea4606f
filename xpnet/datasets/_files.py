"""Keras's dataset cache: where ``keras.datasets`` files live, and fetching them.

Keras keeps downloaded files in ``$KERAS_HOME/datasets`` (default ``~/.keras/datasets``, or
``/tmp/.keras/datasets`` where the home folder is not writable); xpnet reads the same files,
so data that Keras has downloaded once serves both. A missing file is fetched from Keras's
URL; where the network is unreachable, :class:`DatasetNotFoundError` names the file, the
URL, and the folder to put it in.
"""

import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request

__all__ = ["DatasetNotFoundError", "keras_home", "cache_dirs", "get_file", "find_cached"]

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
TIMEOUT_S = 60


class DatasetNotFoundError(FileNotFoundError):
    """A dataset file is neither in the cache nor downloadable (offline)."""


def keras_home():
    """``$KERAS_HOME``, else ``~/.keras`` (Keras's ``config.keras_home``)."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def cache_dirs(subdir="datasets"):
    """The folders searched for a cached file, in order: Keras's cache folder, and the
    ``/tmp/.keras`` fallback Keras uses when its home is not writable."""
    dirs = [os.path.join(keras_home(), subdir)]
    fallback = os.path.join(tempfile.gettempdir(), ".keras", subdir)
    return dirs + ([fallback] if fallback not in dirs else [])


def _download(origin, target):
    """Fetch ``origin`` into ``target`` (through a temporary file: no half-written cache)."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".part"
    try:
        with urllib.request.urlopen(origin, timeout=TIMEOUT_S) as r, open(partial, "wb") as f:
            shutil.copyfileobj(r, f)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def get_file(fname, origin, subdir="datasets", caller="load_data", alternatives=()):
    """The path of dataset file ``fname``: ``fname`` itself when it names an existing file
    (an explicit path), else the first cached copy (under ``fname`` or one of
    ``alternatives``), else a fresh download into Keras's cache folder.

    Raises
    ------
    DatasetNotFoundError
        When the file is nowhere and cannot be downloaded.
    """
    fname = os.fspath(fname)
    if os.path.isfile(fname) and (os.path.dirname(fname) or os.path.isabs(fname)):
        return fname
    if os.path.dirname(fname):  # a path that is not there: no cache lookup, no download
        raise DatasetNotFoundError(f"{caller}: no such file: {fname}")
    found = find_cached((fname, *alternatives), subdir)
    if found is not None:
        return found
    target = os.path.join(cache_dirs(subdir)[0], fname)
    try:
        _download(origin, target)
    except (urllib.error.URLError, socket.timeout, OSError) as e:
        raise DatasetNotFoundError(
            f"{caller}: {fname} is not in Keras's dataset cache and could not be downloaded "
            f"from {origin} ({e}). Download it on a machine with network access and put it "
            f"at {target} (the cache folder is $KERAS_HOME/{subdir}, default "
            f"~/.keras/{subdir}), or pass its path."
        ) from e
    return target



def find_cached(names, subdir="datasets"):
    """The first of ``names`` (files or folders) present in a cache folder, or None."""
    for folder in cache_dirs(subdir):
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path):
                return path
    return None
