"""The bytes of a model file: written atomically, read with bounded lengths.

``atomic_write``: a temporary file of the writer's own (created exclusively beside the
target), flushed, renamed over the target, the rename flushed. ``read_parts``: the 8-byte
header length first (refused over :data:`~xpnet.saving_checks.MAX_HEADER_BYTES`), then the
header, checked, then only the tensor bytes it declares.
"""

import contextlib
import os
import stat
import tempfile
import time

from xpnet import saving_checks as checks

__all__ = ["atomic_write", "read_parts"]

_TMP_SUFFIX = ".xpnet-tmp"
# A temporary older than this belongs to a writer that died (killed mid-save): the next
# save to the same target removes it. A live save takes seconds, not minutes.
_STALE_SECONDS = 15 * 60
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path, data, overwrite):
    """Write ``data`` to ``path`` through a temporary file of this writer's own (created
    exclusively beside the target), flushed to disk, renamed over the target and the rename
    flushed: readers see the old file or the new one, never a part; of several writers the
    last rename wins. Any failure leaves the previous file intact and no temporary behind.
    Under data parallelism only rank 0 writes, and every rank waits for it."""
    from xpnet import distributed

    dist = distributed.active()
    if dist is not None:  # distributed: rank 0 writes; every rank waits for it
        return dist.chief_only(_write_file, path, data, overwrite)
    return _write_file(path, data, overwrite)


def _write_file(path, data, overwrite):
    path = os.fspath(path)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = None
    try:
        _remove_stale(folder, base)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=_TMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)  # mkstemp makes 0600; a save is 0644
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise _save_error(e, path) from e
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)
    _fsync_folder(folder)


def _save_error(e, path):
    """``e`` (same class) saying which file could not be written and that the old is kept."""
    what = e.strerror or str(e)
    message = f"could not save {path}: {what}; the previous file (if any) is intact"
    if e.errno is None:
        return type(e)(message)
    return type(e)(e.errno, message)


def _remove_stale(folder, base):
    """Remove temporaries of ``base`` left by writers that died long ago."""
    prefix, now = f".{base}.", time.time()
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(_TMP_SUFFIX):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > _STALE_SECONDS:
                        os.remove(entry.path)


def _fsync_folder(folder):
    """Make the rename itself durable (where the platform lets a folder be fsynced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _refuse_foreign(f, path, head):
    """Name the formats people hand over by mistake: Keras's .keras zip and HDF5 files."""
    if head[:4] == b"PK\x03\x04":
        peek = f.read(1 << 16)
        kind = "a Keras archive (.keras zip)" if b"config.json" in peek or \
            str(path).endswith(".keras") else "a zip archive"
        raise ValueError(f"{path} is {kind}, not an xpnet model file: xpnet does not read "
                         "Keras's .keras format; rebuild the model with xpnet.keras and "
                         "copy its weights (layer.set_weights) from Keras")
    if head == b"\x89HDF\r\n\x1a\n":
        raise ValueError(f"{path} is an HDF5 file (a Keras .h5 model or weights), not an "
                         "xpnet model file: xpnet does not read HDF5")


def read_parts(f, path):
    """``(length bytes, header bytes, tensor bytes, metadata, tensor table)`` of an open
    file, each length checked before it is read."""
    head = f.read(8)
    if len(head) < 8:
        raise ValueError(f"{path} is not an xpnet model file: {len(head)} bytes")
    _refuse_foreign(f, path, head)
    size = int.from_bytes(head, "little")
    if not 2 <= size <= checks.MAX_HEADER_BYTES:
        raise ValueError(f"{path} is not an xpnet model file: its header claims {size} "
                         f"bytes (an xpnet header has 2 to {checks.MAX_HEADER_BYTES})")
    info = os.fstat(f.fileno())
    if _regular(info) and 8 + size > info.st_size:
        raise ValueError(f"{path} is not an xpnet model file, or it is truncated: its "
                         f"header claims {size} bytes, the file has {info.st_size - 8}")
    raw = f.read(size)
    if len(raw) < size:
        raise ValueError(f"{path} is truncated: its header claims {size} bytes, the file "
                         f"has {len(raw)}")
    meta, table = checks.check_header(path, raw)
    end = max([offsets[1] for _, _, offsets in table.values()], default=0)
    if _regular(info) and 8 + size + end > info.st_size:
        raise ValueError(f"{path} is truncated: its tensors need {end} bytes, the file has "
                         f"{info.st_size - 8 - size}")
    chunks, left = [], max(0, end)
    while left:  # in pieces: a stream that lies about its length runs dry, not out of memory
        chunk = f.read(min(left, 64 * 2**20))
        if not chunk:
            raise ValueError(f"{path} is truncated: its tensors need {end} bytes")
        chunks.append(chunk)
        left -= len(chunk)
    return head, raw, b"".join(chunks), meta, table


def _regular(info):
    return stat.S_ISREG(info.st_mode)
