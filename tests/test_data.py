"""Tests for emflow.data on the real data files and on malformed copies.

The real data is found through $EMFLOW_DATA_DIR, else <repo>/../shared/data;
the expected counts and checksums below are those of that folder's README.md.
"""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import struct
import time

import numpy as np
import pytest

from emflow import data as D

# --------------------------------------------------------------------------
# Expected values (from shared/data/README.md)
# --------------------------------------------------------------------------

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# md5 of the decompressed IDX files.
MNIST_RAW_MD5 = {
    "train-images": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels": "a25bea736e30d166cdddb491f175f624",
    "t10k-images": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels": "27ae3e4e09519cfbb04c329615203637",
}
FASHION_RAW_MD5 = {
    "train-images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels": "15d484375f8d13e6eb1aabb0c3f46965",
}
LETTER_COUNTS = dict(
    A=789, B=766, C=736, D=805, E=768, F=775, G=773, H=734, I=755, J=747, K=739,
    L=761, M=792, N=783, O=753, P=803, Q=783, R=758, S=748, T=796, U=813, V=764,
    W=752, X=787, Y=786, Z=734)
SAT_TRAIN_COUNTS = {1: 1072, 2: 479, 3: 961, 4: 415, 5: 470, 7: 1038}
SAT_TEST_COUNTS = {1: 461, 2: 224, 3: 397, 4: 211, 5: 237, 7: 470}


@pytest.fixture(scope="module")
def mnist(data_dir):
    return D.load_mnist(data_dir)


@pytest.fixture(scope="module")
def fashion(data_dir):
    return D.load_fashion_mnist(data_dir)


@pytest.fixture(scope="module")
def letter(data_dir):
    return D.load_letter(data_dir)


@pytest.fixture(scope="module")
def satimage(data_dir):
    return D.load_satimage(data_dir)


def _idx_bytes(arr: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array, written independently of emflow.data."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.tobytes()


def _write_idx(path: pathlib.Path, arr: np.ndarray, gz: bool = True) -> pathlib.Path:
    raw = _idx_bytes(arr)
    path.write_bytes(gzip.compress(raw, compresslevel=1) if gz else raw)
    return path


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _check_image_dataset(ds, name, n_train, n_test):
    assert ds.name == name
    assert ds.x_train.shape == (n_train, 28, 28, 1)
    assert ds.x_test.shape == (n_test, 28, 28, 1)
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.y_train.shape == (n_train,) and ds.y_test.shape == (n_test,)
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert len(ds.class_names) == 10 and ds.num_classes == 10
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0 and x.max() == 255
    for y in (ds.y_train, ds.y_test):
        assert y.min() == 0 and y.max() == 9


def _check_raw_md5(ds, expected):
    """Re-encoding the arrays as IDX must give back the canonical files."""
    assert _md5(_idx_bytes(ds.x_train[..., 0])) == expected["train-images"]
    assert _md5(_idx_bytes(ds.y_train)) == expected["train-labels"]
    assert _md5(_idx_bytes(ds.x_test[..., 0])) == expected["t10k-images"]
    assert _md5(_idx_bytes(ds.y_test)) == expected["t10k-labels"]


# --------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------


def test_mnist(mnist):
    _check_image_dataset(mnist, "mnist", 60000, 10000)
    assert mnist.class_names == tuple("0123456789")
    assert np.bincount(mnist.y_train, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert np.bincount(mnist.y_test, minlength=10).tolist() == MNIST_TEST_COUNTS
    # Well-known first labels of the canonical files.
    assert mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    _check_raw_md5(mnist, MNIST_RAW_MD5)


def test_fashion_mnist(fashion):
    _check_image_dataset(fashion, "fashion_mnist", 60000, 10000)
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    assert np.bincount(fashion.y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(fashion.y_test, minlength=10).tolist() == [1000] * 10
    _check_raw_md5(fashion, FASHION_RAW_MD5)


def test_letter(letter, data_dir):
    assert letter.name == "letter"
    assert letter.x_train.shape == (16000, 16) and letter.x_test.shape == (4000, 16)
    assert letter.y_train.shape == (16000,) and letter.y_test.shape == (4000,)
    for a in (letter.x_train, letter.x_test, letter.y_train, letter.y_test):
        assert a.dtype == np.int32
    for x in (letter.x_train, letter.x_test):
        assert x.min() == 0 and x.max() == 15
    assert letter.class_names == tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    y = np.concatenate([letter.y_train, letter.y_test])
    assert y.min() == 0 and y.max() == 25
    counts = np.bincount(y, minlength=26)
    assert dict(zip(letter.class_names, counts.tolist())) == LETTER_COUNTS
    # First and last rows of the file, independently parsed.
    lines = (data_dir / "letter" / "letter-recognition.data").read_text().splitlines()
    for row, (x, lbl) in ((lines[0], (letter.x_train[0], letter.y_train[0])),
                          (lines[-1], (letter.x_test[-1], letter.y_test[-1]))):
        fields = row.split(",")
        assert letter.class_names[lbl] == fields[0]
        assert x.tolist() == [int(f) for f in fields[1:]]


def test_satimage(satimage):
    assert satimage.name == "satimage"
    assert satimage.x_train.shape == (4435, 36) and satimage.x_test.shape == (2000, 36)
    assert satimage.y_train.shape == (4435,) and satimage.y_test.shape == (2000,)
    for a in (satimage.x_train, satimage.x_test, satimage.y_train, satimage.y_test):
        assert a.dtype == np.int32
    for x in (satimage.x_train, satimage.x_test):
        assert x.min() == 27 and x.max() == 157
    assert satimage.class_names == ("1", "2", "3", "4", "5", "7")
    codes = [int(c) for c in satimage.class_names]
    for y, expected in ((satimage.y_train, SAT_TRAIN_COUNTS),
                        (satimage.y_test, SAT_TEST_COUNTS)):
        counts = np.bincount(y, minlength=6)
        assert len(counts) == 6
        assert dict(zip(codes, counts.tolist())) == expected


def test_load_dataset_dispatch(data_dir, monkeypatch):
    ds = D.load_dataset("satimage", data_dir)
    assert ds.name == "satimage" and ds.x_train.shape == (4435, 36)
    monkeypatch.setenv("EMFLOW_DATA_DIR", str(data_dir))
    assert D.load_dataset("letter").x_test.shape == (4000, 16)  # via the env var
    with pytest.raises(ValueError) as e:
        D.load_dataset("cifar10", data_dir)
    for name in ("mnist", "fashion_mnist", "letter", "satimage", "smallnorb"):
        assert name in str(e.value)


def test_read_idx_is_fast(data_dir):
    start = time.perf_counter()
    x = D.read_idx(data_dir / "mnist" / "train-images-idx3-ubyte.gz")
    elapsed = time.perf_counter() - start
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8
    assert elapsed < 5.0, f"read_idx took {elapsed:.2f}s"  # ~0.3 s in practice


def test_dataset_is_frozen(satimage):
    with pytest.raises(Exception):
        satimage.name = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------
# resolve_data_dir and synthetic IDX files
# --------------------------------------------------------------------------


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("EMFLOW_DATA_DIR", raising=False)
    assert D.resolve_data_dir(None) is None
    monkeypatch.setenv("EMFLOW_DATA_DIR", str(tmp_path / "env"))
    assert D.resolve_data_dir(None) == tmp_path / "env"
    assert D.resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"


def _synthetic_mnist(folder: pathlib.Path, n_train=7, n_test=3, gz=True):
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", x, gz)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz)
        arrays[prefix] = (x, y)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path, gz):
    x = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    p = _write_idx(tmp_path / "x.idx", x, gz=gz)
    got = D.read_idx(p)
    np.testing.assert_array_equal(got, x)
    assert got.dtype == np.uint8


def test_idx_files_directly_in_data_dir(tmp_path):
    """Without a mnist/ subfolder, the files may lie in data_dir itself."""
    arrays = _synthetic_mnist(tmp_path, gz=False)
    ds = D.load_mnist(tmp_path)
    assert ds.x_train.shape == (7, 28, 28, 1) and ds.x_test.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train"][0])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k"][1])
    assert ds.y_train.dtype == np.int32


def test_bad_magic_number(tmp_path):
    p = tmp_path / "bad-magic-idx3-ubyte.gz"
    good = _idx_bytes(np.zeros((2, 28, 28), np.uint8))
    p.write_bytes(gzip.compress(struct.pack(">I", 0x12345678) + good[4:]))
    with pytest.raises(D.DataFormatError) as e:
        D.read_idx(p, ndim=3)
    msg = str(e.value)
    assert p.name in msg and "0x12345678" in msg and "0x00000803" in msg
    # A labels file where images are expected: wrong number of dims.
    q = _write_idx(tmp_path / "labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(D.DataFormatError, match="0x00000801, expected 0x00000803"):
        D.read_idx(q, ndim=3)


def test_truncated_idx(tmp_path):
    raw = _idx_bytes(np.zeros((10, 28, 28), np.uint8))
    p = tmp_path / "short-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(raw[:-1000]))
    with pytest.raises(D.DataFormatError) as e:
        D.read_idx(p)
    msg = str(e.value)
    assert p.name in msg and "truncated" in msg
    assert "10x28x28 = 7840 bytes, found 6840" in msg
    # Extra bytes are an error too.
    q = tmp_path / "long-images-idx3-ubyte"
    q.write_bytes(raw + b"\x00")
    with pytest.raises(D.DataFormatError, match="long-images-idx3-ubyte.*found 7841"):
        D.read_idx(q)
    # A cut gzip stream.
    r = tmp_path / "cut-images-idx3-ubyte.gz"
    r.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(D.DataFormatError, match="cut-images-idx3-ubyte.gz"):
        D.read_idx(r)


def test_image_label_count_mismatch(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    _synthetic_mnist(folder)
    _write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
    with pytest.raises(D.DataFormatError) as e:
        D.load_mnist(tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(e.value)
    assert "3 images" in str(e.value) and "4 labels" in str(e.value)


# --------------------------------------------------------------------------
# Malformed text files
# --------------------------------------------------------------------------

GOOD_LETTER_ROW = "T,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,8"
GOOD_SAT_ROW = " ".join(["92"] * 36 + ["3"])


def _write_letter(tmp_path, rows):
    folder = tmp_path / "letter"
    folder.mkdir()
    path = folder / "letter-recognition.data"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("bad_row, what", [
    ("T,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0", "expected 17 comma-separated fields"),
    ("T\t2\t8\t3\t5\t1\t8\t13\t0\t6\t6\t10\t8\t0\t8\t0\t8", "found 1"),
    ("t,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,8", "capital letter"),
    ("T,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,x", "field 17 is not an integer"),
    ("T,2,8,3,5,1,8,13,0,6,6,10,8,0,8,0,1.5", "not an integer"),
])
def test_letter_malformed_row(tmp_path, bad_row, what):
    path = _write_letter(tmp_path, [GOOD_LETTER_ROW, GOOD_LETTER_ROW, bad_row])
    with pytest.raises(D.DataFormatError) as e:
        D.load_letter(tmp_path)
    msg = str(e.value)
    assert path.name in msg and "line 3" in msg and what in msg


def test_letter_wrong_row_count(tmp_path):
    path = _write_letter(tmp_path, [GOOD_LETTER_ROW] * 5)
    with pytest.raises(D.DataFormatError, match=r"expected 20000 rows.*found 5") as e:
        D.load_letter(tmp_path)
    assert path.name in str(e.value)


def _write_sat(tmp_path, trn_rows, tst_rows=(GOOD_SAT_ROW,)):
    folder = tmp_path / "satimage"
    folder.mkdir()
    (folder / "sat.trn").write_text("\n".join(trn_rows) + "\n")
    (folder / "sat.tst").write_text("\n".join(tst_rows) + "\n")
    return folder


@pytest.mark.parametrize("bad_row, what", [
    (" ".join(["92"] * 35 + ["9.5", "3"]), "field 36 is not an integer"),
    (" ".join(["92"] * 36 + ["x"]), "not an integer"),
    (" ".join(["92"] * 35 + ["3"]), "expected 37"),
    (" ".join(["92"] * 36 + ["6"]), "class label 6"),
])
def test_satimage_malformed_row(tmp_path, bad_row, what):
    folder = _write_sat(tmp_path, [GOOD_SAT_ROW, bad_row])
    with pytest.raises(D.DataFormatError) as e:
        D.load_satimage(tmp_path)
    msg = str(e.value)
    assert "sat.trn" in msg and "line 2" in msg and what in msg
    assert str(folder) in msg


def test_satimage_small_valid_file(tmp_path):
    row7 = " ".join([str(i) for i in range(36)] + ["7"])
    _write_sat(tmp_path, [GOOD_SAT_ROW, row7], [row7])
    ds = D.load_satimage(tmp_path)
    assert ds.y_train.tolist() == [2, 5] and ds.y_test.tolist() == [5]
    assert ds.x_train[1].tolist() == list(range(36))


# --------------------------------------------------------------------------
# Missing data
# --------------------------------------------------------------------------


@pytest.mark.parametrize("loader, missing", [
    (D.load_mnist, "train-images-idx3-ubyte.gz"),
    (D.load_fashion_mnist, "train-images-idx3-ubyte.gz"),
    (D.load_letter, "letter-recognition.data"),
    (D.load_satimage, "sat.trn"),
])
def test_missing_directory(tmp_path, loader, missing):
    root = tmp_path / "does-not-exist"
    with pytest.raises(FileNotFoundError) as e:
        loader(root)
    msg = str(e.value)
    assert str(root) in msg and missing in msg and "EMFLOW_DATA_DIR" in msg


def test_missing_single_file(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    _synthetic_mnist(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as e:
        D.load_mnist(tmp_path)
    msg = str(e.value)
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in msg
    assert "EMFLOW_DATA_DIR" in msg and "--data_dir" in msg

    (tmp_path / "satimage").mkdir()
    (tmp_path / "satimage" / "sat.trn").write_text(GOOD_SAT_ROW + "\n")
    with pytest.raises(FileNotFoundError, match="sat.tst.*EMFLOW_DATA_DIR"):
        D.load_satimage(tmp_path)


@pytest.mark.parametrize("loader, source", [
    (D.load_letter, "Letter Recognition"),
    (D.load_satimage, "Statlog (Landsat Satellite)"),
])
def test_no_data_dir_for_uci_datasets(monkeypatch, loader, source):
    monkeypatch.delenv("EMFLOW_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError) as e:
        loader(None)
    msg = str(e.value)
    assert "UCI" in msg and source in msg and "EMFLOW_DATA_DIR" in msg


# --------------------------------------------------------------------------
# small NORB preprocessing
# --------------------------------------------------------------------------


def _block_mean_loops(img: np.ndarray) -> np.ndarray:
    """(96, 96) -> (32, 32) 3x3 block means, rounded; explicit loops."""
    out = np.zeros((32, 32), dtype=np.uint8)
    for i in range(32):
        for j in range(32):
            total = sum(int(img[3 * i + a, 3 * j + b]) for a in range(3) for b in range(3))
            out[i, j] = int(round(total / 9))
    return out


def test_preprocess_smallnorb():
    rng = np.random.default_rng(1)
    n = 2
    left = rng.integers(0, 256, size=(n, 96, 96, 1), dtype=np.uint8)
    right = rng.integers(0, 256, size=(n, 96, 96, 1), dtype=np.uint8)
    out = D.preprocess_smallnorb(left, right)
    assert out.shape == (n, 32, 64, 1) and out.dtype == np.uint8
    for k in range(n):
        np.testing.assert_array_equal(out[k, :, :32, 0], _block_mean_loops(left[k, :, :, 0]))
        np.testing.assert_array_equal(out[k, :, 32:, 0], _block_mean_loops(right[k, :, :, 0]))
    # Reshape-mean cross-check on the whole batch.
    ref = np.rint(left[..., 0].reshape(n, 32, 3, 32, 3).mean(axis=(2, 4)))
    np.testing.assert_array_equal(out[:, :, :32, 0], ref.astype(np.uint8))
    # Constant blocks stay exact, extremes stay in range.
    const = np.full((1, 96, 96, 1), 255, np.uint8)
    zeros = np.zeros((1, 96, 96, 1), np.uint8)
    out = D.preprocess_smallnorb(const, zeros)
    assert (out[:, :, :32] == 255).all() and (out[:, :, 32:] == 0).all()


@pytest.mark.parametrize("shape_a, shape_b", [
    ((2, 96, 96), (2, 96, 96)),          # no channel axis
    ((2, 96, 96, 1), (2, 64, 64, 1)),    # wrong size
    ((2, 96, 96, 3), (2, 96, 96, 3)),    # wrong channels
    ((2, 96, 96, 1), (3, 96, 96, 1)),    # different N
    ((96, 96, 1), (96, 96, 1)),          # no batch axis
])
def test_preprocess_smallnorb_bad_shapes(shape_a, shape_b):
    with pytest.raises(ValueError, match="preprocess_smallnorb"):
        D.preprocess_smallnorb(np.zeros(shape_a, np.uint8), np.zeros(shape_b, np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_rows_is_the_slice_of_the_whole_file(tmp_path, gz):
    """A multi-process run reads only its rows: the same bytes as slicing the whole array."""
    x = np.random.default_rng(1).integers(0, 256, size=(9, 28, 28), dtype=np.uint8)
    p = _write_idx(tmp_path / f"rows-idx3-ubyte{'.gz' if gz else ''}", x, gz)
    for rows in (slice(0, 9), slice(3, 7), slice(9, 9), slice(None, 4), slice(5, None)):
        np.testing.assert_array_equal(D.read_idx(p, ndim=3, rows=rows), x[rows])
    assert D.idx_num_rows(p) == 9
    for bad in (slice(0, 10), slice(-1, 4), slice(5, 3), slice(0, 8, 2)):
        with pytest.raises(ValueError, match=r"0 <= start <= stop <= 9 \(the file's row count\) and step 1"):
            D.read_idx(p, rows=bad)


def test_read_idx_rows_still_catches_a_truncated_file(tmp_path):
    raw = _idx_bytes(np.zeros((10, 28, 28), np.uint8))
    p = tmp_path / "short-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(raw[:-1000]))
    with pytest.raises(D.DataFormatError, match="10x28x28 = 7840 bytes, found 6840"):
        D.read_idx(p, rows=slice(0, 2))  # the wanted rows are there; the file is still refused


def test_load_dataset_by_rows(tmp_path):
    (tmp_path / "mnist").mkdir()
    arrays = _synthetic_mnist(tmp_path / "mnist")
    ds = D.load_dataset("mnist", tmp_path, train_rows=slice(2, 6), test_rows=slice(1, 3))
    np.testing.assert_array_equal(ds.x_train[..., 0], arrays["train"][0][2:6])
    np.testing.assert_array_equal(ds.y_train, arrays["train"][1][2:6])
    np.testing.assert_array_equal(ds.x_test[..., 0], arrays["t10k"][0][1:3])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k"][1][1:3])
    assert D.split_sizes("MNIST", tmp_path) == {"train": 7, "test": 3}
    with pytest.raises(ValueError, match="'letter' is not read by rows"):
        D.load_dataset("letter", tmp_path, train_rows=slice(0, 2))
    with pytest.raises(ValueError, match="only mnist, fashion_mnist are read by rows"):
        D.split_sizes("satimage", tmp_path)
