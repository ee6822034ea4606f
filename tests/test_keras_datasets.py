"""keras.datasets (issue 10 point 15): each loader reads small files written here in Keras's
formats, from Keras's cache folder ($KERAS_HOME/datasets) or a given path, with Keras's
shapes, dtypes, shuffles and re-indexing; offline with no file, a clear error."""

import gzip
import io
import json
import os
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest

from xpnet import keras
from xpnet.datasets import _files

ds = keras.datasets


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty Keras home, and no network (a download attempt fails as offline)."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))

    def offline(origin, target):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr(_files, "_download", offline)
    folder = tmp_path / "kh" / "datasets"
    folder.mkdir(parents=True)
    return folder


def _images(rng, n, shape):
    return rng.integers(0, 256, (n, *shape)).astype(np.uint8)


def test_mnist_from_cache_and_path(home, tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": _images(rng, 6, (28, 28)), "y_train": rng.integers(0, 10, 6)
              .astype(np.uint8), "x_test": _images(rng, 3, (28, 28)),
              "y_test": rng.integers(0, 10, 3).astype(np.uint8)}
    np.savez(home / "mnist.npz", **arrays)
    (x, y), (xt, yt) = ds.mnist.load_data()
    assert x.shape == (6, 28, 28) and x.dtype == np.uint8 and y.shape == (6,)
    assert xt.shape == (3, 28, 28) and yt.dtype == np.uint8
    np.testing.assert_array_equal(x, arrays["x_train"])
    os.rename(home / "mnist.npz", tmp_path / "elsewhere.npz")
    (x2, _), _ = ds.mnist.load_data(path=str(tmp_path / "elsewhere.npz"))
    np.testing.assert_array_equal(x2, arrays["x_train"])


def test_offline_without_the_file_says_which_file_and_where(home):
    with pytest.raises(ds.DatasetNotFoundError) as e:
        ds.mnist.load_data()
    message = str(e.value)
    assert "mnist.npz" in message and str(home) in message
    assert "storage.googleapis.com" in message
    with pytest.raises(FileNotFoundError, match="fashion-mnist"):
        ds.fashion_mnist.load_data()
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py-target_archive"):
        ds.cifar10.load_data()
    with pytest.raises(FileNotFoundError, match="no such file"):
        ds.boston_housing.load_data(path="/nonexistent/boston.npz")


def test_fashion_mnist_gz_idx(home):
    rng = np.random.default_rng(1)
    folder = home / "fashion-mnist"
    folder.mkdir()
    data = {"train": (_images(rng, 5, (28, 28)), rng.integers(0, 10, 5).astype(np.uint8)),
            "t10k": (_images(rng, 2, (28, 28)), rng.integers(0, 10, 2).astype(np.uint8))}
    for prefix, (x, y) in data.items():
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(bytes(16) + x.tobytes())  # Keras skips the 16-byte header
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(bytes(8) + y.tobytes())
    (x, y), (xt, yt) = ds.fashion_mnist.load_data()
    assert x.shape == (5, 28, 28) and xt.shape == (2, 28, 28) and y.dtype == np.uint8
    np.testing.assert_array_equal(x, data["train"][0])
    np.testing.assert_array_equal(yt, data["t10k"][1])


def _cifar_batch(rng, n, label_keys):
    d = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8)}
    for k in label_keys:
        d[k.encode()] = [int(v) for v in rng.integers(0, 10, n)]
    return d


def _tar(path, inner, batches):
    with tarfile.open(path, "w:gz") as tar:
        for name, d in batches.items():
            # protocol 4: bytes as BINBYTES, arrays by _reconstruct, as the Python 2 files
            raw = pickle.dumps(d, protocol=4)
            info = tarfile.TarInfo(f"{inner}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def test_cifar10_from_archive_and_folder(home, tmp_path):
    rng = np.random.default_rng(2)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {n: _cifar_batch(rng, 2, ["labels"]) for n in names}
    _tar(home / "cifar-10-batches-py-target_archive", "cifar-10-batches-py", batches)
    (x, y), (xt, yt) = ds.cifar10.load_data()
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (10, 1) and y.dtype == np.uint8 and xt.shape == (2, 32, 32, 3)
    # channels last: pixel (row 0, col 1) of channel 2 is byte 2 * 1024 + 1 of the row
    assert x[0, 0, 1, 2] == batches["data_batch_1"][b"data"][0, 2 * 1024 + 1]
    assert y[2, 0] == batches["data_batch_2"][b"labels"][0]
    np.testing.assert_array_equal(yt[:, 0], batches["test_batch"][b"labels"])
    extracted = tmp_path / "ex"
    with tarfile.open(home / "cifar-10-batches-py-target_archive") as tar:
        tar.extractall(extracted)
    os.remove(home / "cifar-10-batches-py-target_archive")
    os.rename(extracted, home / "cifar-10-batches-py-target")  # Keras 3's extracted folder
    (x2, _), _ = ds.cifar10.load_data()
    np.testing.assert_array_equal(x2, x)


def test_cifar100_label_modes(home, tmp_path):
    rng = np.random.default_rng(3)
    batches = {n: _cifar_batch(rng, 3, ["fine_labels", "coarse_labels"])
               for n in ("train", "test")}
    _tar(tmp_path / "c100.tar.gz", "cifar-100-python", batches)
    (x, y), _ = ds.cifar100.load_data(path=str(tmp_path / "c100.tar.gz"))
    assert x.shape == (3, 32, 32, 3) and y.shape == (3, 1)
    np.testing.assert_array_equal(y[:, 0], batches["train"][b"fine_labels"])
    _, (_, yc) = ds.cifar100.load_data("coarse", path=str(tmp_path / "c100.tar.gz"))
    np.testing.assert_array_equal(yc[:, 0], batches["test"][b"coarse_labels"])
    with pytest.raises(ValueError, match="label_mode"):
        ds.cifar100.load_data("medium")


def test_pickles_other_than_arrays_are_refused(home, tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    _tar(tmp_path / "evil.tar.gz", "cifar-10-batches-py", {n: {b"data": Evil()}
                                                           for n in names})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        ds.cifar10.load_data(path=str(tmp_path / "evil.tar.gz"))


def _keras_shuffle(n, seed=113):
    idx = np.arange(n)
    np.random.RandomState(seed).shuffle(idx)
    return idx


@pytest.mark.parametrize("module,n_features", [("boston_housing", 13),
                                               ("california_housing", 8)])
def test_housing_split(home, module, n_features):
    x = np.arange(10 * n_features, dtype=np.float64).reshape(10, n_features)
    y = np.arange(10, dtype=np.float64) * 1.5
    np.savez(home / f"{module}.npz", x=x, y=y)
    (xtr, ytr), (xte, yte) = getattr(ds, module).load_data()
    idx = _keras_shuffle(10)
    assert xtr.shape == (8, n_features) and xte.shape == (2, n_features)  # int(10 * 0.8)
    np.testing.assert_array_equal(ytr, y[idx[:8]])
    np.testing.assert_array_equal(xte, x[idx[8:]])
    (xtr, _), (xte, _) = getattr(ds, module).load_data(test_split=0.3, seed=1)
    assert len(xtr) == 7 and len(xte) == 3
    with pytest.raises(ValueError, match="test_split"):
        getattr(ds, module).load_data(test_split=1.0)


def test_california_small_version(home):
    np.savez(home / "california_housing.npz", x=np.zeros((700, 8), np.float32),
             y=np.zeros(700, np.float32))
    (x, _), (xt, _) = ds.california_housing.load_data(version="small")
    assert len(x) + len(xt) == 600 and x.dtype == np.float32
    with pytest.raises(ValueError, match="version"):
        ds.california_housing.load_data(version="medium")


def _ragged(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = list(s)
    return out


def test_imdb_reindexing_and_word_index(home):
    train = [[5, 6], [1, 2, 3], [7], [2, 9, 4, 4]]
    test = [[3, 3], [8, 1, 1]]
    np.savez(home / "imdb.npz", x_train=_ragged(train), y_train=np.array([0, 1, 0, 1]),
             x_test=_ragged(test), y_test=np.array([1, 0]))
    (x, y), (xt, yt) = ds.imdb.load_data()
    rng = np.random.RandomState(113)  # Keras: one generator shuffles train, then test
    i_tr = np.arange(4)
    rng.shuffle(i_tr)
    i_te = np.arange(2)
    rng.shuffle(i_te)
    # start_char 1, every index + 3; num_words=None -> the largest index (12) is OOV (2)
    expected = [[1] + [w + 3 if w + 3 < 12 else 2 for w in train[i]] for i in i_tr]
    assert x.dtype == object and x.shape == (4,) and list(x) == expected
    np.testing.assert_array_equal(y, np.array([0, 1, 0, 1])[i_tr])
    assert list(xt) == [[1] + [w + 3 for w in test[i]] for i in i_te]
    (x, _), _ = ds.imdb.load_data(num_words=6, skip_top=5, maxlen=4)
    kept = [train[i] for i in i_tr if len(train[i]) + 1 < 4]
    assert list(x) == [[2] + [w + 3 if 5 <= w + 3 < 6 else 2 for w in s] for s in kept]
    with pytest.raises(ValueError, match="maxlen"):
        ds.imdb.load_data(maxlen=2)
    with open(home / "imdb_word_index.json", "w") as f:
        json.dump({"the": 1, "and": 2}, f)
    assert ds.imdb.get_word_index() == {"the": 1, "and": 2}


def test_reuters(home):
    seqs = [[i, i + 1] for i in range(1, 11)]
    np.savez(home / "reuters.npz", x=_ragged(seqs), y=np.arange(10) % 46)
    (x, y), (xt, yt) = ds.reuters.load_data(num_words=100, start_char=None, index_from=0)
    idx = _keras_shuffle(10)
    assert len(x) == 8 and len(xt) == 2 and x.dtype == object
    assert list(xt) == [seqs[i] for i in idx[8:]]
    np.testing.assert_array_equal(y, (np.arange(10) % 46)[idx[:8]])
    assert len(ds.reuters.get_label_names()) == 46


def test_missing_file_is_downloaded_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    buf = io.BytesIO()
    x = np.arange(26.0).reshape(2, 13)
    np.savez(buf, x=x, y=np.array([1.0, 2.0]))
    asked = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout=None):
        asked.append(url)
        return Response(buf.getvalue())

    monkeypatch.setattr(_files.urllib.request, "urlopen", urlopen)
    (xtr, _), (xte, _) = ds.boston_housing.load_data(test_split=0.5)
    assert asked == ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
                     "boston_housing.npz"]
    assert (tmp_path / "kh" / "datasets" / "boston_housing.npz").exists()
    assert sorted(np.concatenate([xtr, xte])[:, 0]) == [0.0, 13.0]
    ds.boston_housing.load_data()  # now from the cache: no second download
    assert len(asked) == 1
