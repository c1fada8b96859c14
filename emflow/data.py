"""Dataset loading for emflow: MNIST, Fashion-MNIST, Letter, Satimage, small NORB.

Every loader returns a :class:`Dataset` of plain numpy arrays, exactly as the
original files hold them (no scaling, no dequantisation, no shuffling; that is
done elsewhere):

============== ======================== ========= ============ ==============
name           x_train / x_test          x dtype   y            classes
============== ======================== ========= ============ ==============
mnist          (60000|10000, 28, 28, 1)  uint8     int32 0..9   "0".."9"
fashion_mnist  (60000|10000, 28, 28, 1)  uint8     int32 0..9   "T-shirt/top"..
letter         (16000|4000, 16)          int32     int32 0..25  "A".."Z"
satimage       (4435|2000, 36)           int32     int32 0..5   "1".."5","7"
smallnorb      (24300|24300, 32, 64, 1)  uint8     int32 0..4   "animal"..
============== ======================== ========= ============ ==============

Where the data comes from
-------------------------
A data directory is resolved by :func:`resolve_data_dir`: an explicit
``data_dir`` argument (the ``--data_dir`` flag of the scripts) wins, else the
``EMFLOW_DATA_DIR`` environment variable, else none. The directory is laid out
like the original distributions::

    <data_dir>/
        mnist/           train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
                         t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
        fashion_mnist/   (the same four file names)
        letter/          letter-recognition.data
        satimage/        sat.trn  sat.tst

For MNIST and Fashion-MNIST the four IDX files may also lie directly in
``<data_dir>`` (when the subfolder is missing), and may be gzipped or plain
(``train-images-idx3-ubyte``).

Without a data directory, MNIST, Fashion-MNIST and small NORB are fetched with
TensorFlow Datasets (``tfds.load``; this needs network access the first time).
Letter and Satimage have no TFDS builder: download them from the UCI Machine
Learning Repository ("Letter Recognition", "Statlog (Landsat Satellite)") and
point ``EMFLOW_DATA_DIR`` / ``--data_dir`` at the folder.

Errors
------
* A missing file raises :class:`FileNotFoundError`; the message names the file,
  the directory tried and where to get the data.
* A file that is present but malformed (bad IDX magic number, truncated
  payload, wrong row width, non-integer field, ...) raises
  :class:`DataFormatError` (a :class:`ValueError`) naming the file and, for
  text files, the line.

Nothing is cached: every call reads the files again.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import pathlib
import types
import zlib
from typing import Callable, Sequence

import numpy as np

__all__ = [
    "DataFormatError",
    "Dataset",
    "DATASET_NAMES",
    "ENV_VAR",
    "resolve_data_dir",
    "read_idx",
    "idx_num_rows",
    "split_sizes",
    "load_mnist",
    "load_fashion_mnist",
    "load_letter",
    "load_satimage",
    "satimage_dihedral_permutations",
    "load_smallnorb",
    "preprocess_smallnorb",
    "load_dataset",
]

ENV_VAR = "EMFLOW_DATA_DIR"

DATASET_NAMES: tuple[str, ...] = (
    "mnist",
    "fashion_mnist",
    "letter",
    "satimage",
    "smallnorb",
)

MNIST_CLASS_NAMES: tuple[str, ...] = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASS_NAMES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
LETTER_CLASS_NAMES: tuple[str, ...] = tuple(chr(ord("A") + i) for i in range(26))
SATIMAGE_CLASS_NAMES: tuple[str, ...] = ("1", "2", "3", "4", "5", "7")
SMALLNORB_CLASS_NAMES: tuple[str, ...] = ("animal", "human", "airplane", "truck", "car")

# Where to get the data, quoted in error messages.
_SOURCES = types.MappingProxyType({
    "mnist": "http://yann.lecun.com/exdb/mnist/ (the four *-ubyte.gz files)",
    "fashion_mnist": (
        "https://github.com/zalandoresearch/fashion-mnist (data/fashion/*-ubyte.gz)"
    ),
    "letter": (
        'the UCI Machine Learning Repository, "Letter Recognition" '
        "(https://archive.ics.uci.edu/dataset/59/letter+recognition)"
    ),
    "satimage": (
        'the UCI Machine Learning Repository, "Statlog (Landsat Satellite)" '
        "(https://archive.ics.uci.edu/dataset/146/statlog+landsat+satellite)"
    ),
    "smallnorb": "TensorFlow Datasets ('smallnorb' builder, needs network access)",
})

_LAYOUT_HINT = (
    f"Set {ENV_VAR} or pass --data_dir to point at a folder laid out as "
    "mnist/, fashion_mnist/, letter/, satimage/ (see emflow/data.py)."
)

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_LETTER_FILE = "letter-recognition.data"
_LETTER_ROWS = 20_000
_LETTER_TRAIN_ROWS = 16_000

_SATIMAGE_FILES = ("sat.trn", "sat.tst")
_SATIMAGE_LABELS = (1, 2, 3, 4, 5, 7)

_SMALLNORB_IN_SHAPE = (96, 96, 1)
_SMALLNORB_FACTOR = 3


class DataFormatError(ValueError):
    """A data file exists but its contents are not in the expected format."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split of one dataset, as numpy arrays.

    Attributes:
      x_train: (N_train, ...) inputs; images are uint8 (N, H, W, 1), tabular
        features int32 (N, D).
      y_train: (N_train,) int32 labels in ``0 .. len(class_names) - 1``.
      x_test: (N_test, ...) inputs, same trailing shape and dtype as x_train.
      y_test: (N_test,) int32 labels.
      name: dataset name as accepted by :func:`load_dataset`.
      class_names: human-readable name of each label, indexed by label.

    The dataclass is frozen (fields cannot be rebound) and compares by
    identity (``eq=False``), since element-wise array comparison has no single
    truth value.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for split, x, y in (("train", self.x_train, self.y_train),
                            ("test", self.x_test, self.y_test)):
            if y.ndim != 1 or x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: x_{split} has shape {x.shape} but y_{split} has "
                    f"shape {y.shape}; expected (N, ...) and (N,)")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(
                f"{self.name}: x_train {self.x_train.shape} and x_test "
                f"{self.x_test.shape} differ in per-example shape")

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(class_names)``."""
        return len(self.class_names)


# ---------------------------------------------------------------------------
# Locating files
# ---------------------------------------------------------------------------


def resolve_data_dir(data_dir: str | os.PathLike | None) -> pathlib.Path | None:
    """Returns the data directory to use, or None if none is configured.

    Order: the explicit ``data_dir`` argument, else ``$EMFLOW_DATA_DIR`` (if set
    and non-empty), else None. ``~`` is expanded; existence is not checked here
    (the loaders report a missing directory with a FileNotFoundError).
    """
    if data_dir is not None and str(data_dir) != "":
        return pathlib.Path(data_dir).expanduser()
    env = os.environ.get(ENV_VAR, "")
    if env:
        return pathlib.Path(env).expanduser()
    return None


def _origin(data_dir: str | os.PathLike | None) -> str:
    """Describes where the resolved directory came from, for error messages."""
    if data_dir is not None and str(data_dir) != "":
        return "from the data_dir argument"
    return f"from ${ENV_VAR}"


def _missing(dataset: str, missing: pathlib.Path, tried: Sequence[pathlib.Path],
             origin: str) -> FileNotFoundError:
    tried_s = " and ".join(f"{d}{'' if d.is_dir() else ' (does not exist)'}"
                           for d in tried)
    return FileNotFoundError(
        f"{dataset}: file {missing.name!r} not found (looked for {missing}; "
        f"directory tried: {tried_s}; data directory {origin}). "
        f"Get the data from {_SOURCES[dataset]}. {_LAYOUT_HINT}")


def _idx_dir(dataset: str, root: pathlib.Path) -> pathlib.Path:
    """`<root>/<dataset>/` if it exists, else `root` if it holds the IDX files."""
    sub = root / dataset
    if sub.is_dir():
        return sub
    first = _IDX_FILES["train"][0]
    if (root / (first + ".gz")).is_file() or (root / first).is_file():
        return root
    return sub


def _find_idx_file(dataset: str, root: pathlib.Path, folder: pathlib.Path,
                   stem: str, origin: str) -> pathlib.Path:
    for candidate in (folder / (stem + ".gz"), folder / stem):
        if candidate.is_file():
            return candidate
    tried = [root / dataset, root] if folder == root / dataset else [folder]
    raise _missing(dataset, folder / (stem + ".gz"), tried, origin)


# ---------------------------------------------------------------------------
# IDX
# ---------------------------------------------------------------------------

_IDX_DTYPE_NAMES = {0x08: "uint8", 0x09: "int8", 0x0B: "int16", 0x0C: "int32",
                    0x0D: "float32", 0x0E: "float64"}


_CHUNK = 1 << 22  # bytes read at a time when streaming past rows that are not wanted


def _open_maybe_gzip(path: pathlib.Path):
    """A binary stream of the file's content; gzip is detected from its first bytes, not its name."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _read_chunks(f, num_bytes: int | None, keep: bool) -> tuple[int, bytes]:
    """Read ``num_bytes`` (None: up to the end; fewer where the file ends) in chunks: ``(count, bytes or b"")``.

    A header may claim more bytes than any file holds; reading in chunks never asks for them at once.
    """
    count, chunks = 0, []
    while num_bytes is None or count < num_bytes:
        chunk = f.read(_CHUNK if num_bytes is None else min(_CHUNK, num_bytes - count))
        if not chunk:
            break
        count += len(chunk)
        if keep:
            chunks.append(chunk)
    return count, b"".join(chunks)


def _check_rows(path: pathlib.Path | str, rows: slice, num_rows: int) -> tuple[int, int]:
    start = 0 if rows.start is None else rows.start
    stop = num_rows if rows.stop is None else rows.stop
    if rows.step not in (None, 1) or not 0 <= start <= stop <= num_rows:
        raise ValueError(f"{path}: rows must be a slice start:stop with 0 <= start <= stop <= {num_rows} "
                         f"(the file's row count) and step 1, got {rows}")
    return start, stop


def read_idx(path: str | os.PathLike, ndim: int | None = None, rows: slice | None = None) -> np.ndarray:
    """Reads an IDX file (as used by MNIST), gzipped or plain, whole or a range of its rows.

    The header is the magic number -- two zero bytes, the dtype code (only
    0x08 = uint8 is supported) and the number of dimensions -- followed by one
    big-endian uint32 per dimension; the payload must hold exactly the product
    of the dimensions in bytes.

    The file is streamed: with ``rows``, only those rows are kept in memory (the
    rest is read past, so that a truncated file is still caught). This is how each
    process of a multi-process run loads only its share of a training set.

    Args:
      path: the file; gzip is detected from its first bytes, not its name.
      ndim: if given, the required number of dimensions (3 for images, magic
        0x00000803; 1 for labels, magic 0x00000801).
      rows: ``slice(start, stop)`` of the first axis (step 1, within the file's
        row count); None: all rows.

    Returns:
      uint8 array of the shape in the header, e.g. (60000, 28, 28) or (60000,),
      or ``(stop - start, ...)`` with ``rows``. The array owns its (writable) memory.

    Raises:
      FileNotFoundError: the file does not exist.
      DataFormatError: bad magic number, short header, truncated or
        over-long payload, or a corrupt gzip stream.
      ValueError: ``rows`` outside the file's rows.
    """
    array, _ = _read_idx(pathlib.Path(path), ndim, rows)
    return array


def _read_header(f, path: pathlib.Path, ndim: int | None) -> tuple[int, ...]:
    """The dims of the IDX header at the start of stream ``f``, validated (see :func:`read_idx`)."""
    if ndim is not None:
        expected = f"0x{0x0800 | ndim:08x} (uint8, {ndim} dim{'s' if ndim != 1 else ''})"
    else:
        expected = "0x000008NN (uint8, NN dims)"
    head = f.read(4)
    if len(head) < 4:
        raise DataFormatError(
            f"{path}: file too short for an IDX header ({len(head)} bytes); "
            f"expected magic number {expected}")
    magic = int.from_bytes(head, "big")
    zeros, code, nd = head[0:2], head[2], head[3]
    if zeros != b"\x00\x00" or code != 0x08 or nd == 0 or (ndim is not None and nd != ndim):
        what = f"bad magic number 0x{magic:08x}, expected {expected}"
        if zeros == b"\x00\x00" and code != 0x08:
            what += (f"; dtype code 0x{code:02x} "
                     f"({_IDX_DTYPE_NAMES.get(code, 'unknown')}) is not supported")
        elif zeros == b"\x00\x00" and code == 0x08:
            what += f"; found {nd} dims"
        raise DataFormatError(f"{path}: {what}")
    dims_raw = f.read(4 * nd)
    if len(dims_raw) < 4 * nd:
        raise DataFormatError(
            f"{path}: truncated header: {nd} dims need {4 + 4 * nd} header bytes, "
            f"found {4 + len(dims_raw)}")
    return tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4", count=nd))


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


def _read_idx(path: pathlib.Path, ndim: int | None, rows: slice | None) -> tuple[np.ndarray, int]:
    """``read_idx``, plus the file's row count from its header."""
    with _open_maybe_gzip(path) as f:
        try:
            dims = _read_header(f, path, ndim)
            start, stop = _check_rows(path, rows if rows is not None else slice(None), dims[0])
            row_bytes = int(np.prod(dims[1:], dtype=np.int64))
            before, _ = _read_chunks(f, start * row_bytes, keep=False)
            _, payload = _read_chunks(f, (stop - start) * row_bytes, keep=True)
            found_bytes = before + len(payload) + _read_chunks(f, None, keep=False)[0]
        except _GZIP_ERRORS as err:
            raise DataFormatError(f"{path}: corrupt or truncated gzip stream ({err})") from err
    expected_bytes = int(np.prod(dims, dtype=np.int64))
    if found_bytes != expected_bytes:
        kind = "truncated" if found_bytes < expected_bytes else "trailing data"
        raise DataFormatError(
            f"{path}: {kind}: header says {'x'.join(map(str, dims))} = "
            f"{expected_bytes} bytes, found {found_bytes}")
    return np.frombuffer(payload, dtype=np.uint8).reshape((stop - start, *dims[1:])).copy(), dims[0]


def idx_num_rows(path: str | os.PathLike) -> int:
    """The first dimension in an IDX file's header (e.g. 60000), without reading its payload."""
    path = pathlib.Path(path)
    with _open_maybe_gzip(path) as f:
        try:
            return _read_header(f, path, None)[0]
        except _GZIP_ERRORS as err:
            raise DataFormatError(f"{path}: corrupt or truncated gzip stream ({err})") from err


def _load_idx_dataset(dataset: str, data_dir: str | os.PathLike | None,
                      class_names: tuple[str, ...], rows: dict[str, slice | None]) -> Dataset | None:
    """Loads an MNIST-layout dataset from disk (``rows[split]`` of each split), or None if no dir is configured."""
    root = resolve_data_dir(data_dir)
    if root is None:
        return None
    origin = _origin(data_dir)
    folder = _idx_dir(dataset, root)
    arrays = {}
    for split, (img_stem, lbl_stem) in _IDX_FILES.items():
        img_path = _find_idx_file(dataset, root, folder, img_stem, origin)
        lbl_path = _find_idx_file(dataset, root, folder, lbl_stem, origin)
        images, num_images = _read_idx(img_path, 3, rows[split])
        labels, num_labels = _read_idx(lbl_path, 1, rows[split])
        if images.shape[1:] != (28, 28):
            raise DataFormatError(
                f"{img_path}: expected 28x28 images, found "
                f"{images.shape[1]}x{images.shape[2]}")
        if num_images != num_labels:
            raise DataFormatError(
                f"{dataset} {split}: {img_path} holds {num_images} images but "
                f"{lbl_path} holds {num_labels} labels; counts must be equal")
        if labels.size and int(labels.max()) >= len(class_names):
            raise DataFormatError(
                f"{lbl_path}: label {int(labels.max())} out of range, expected "
                f"0..{len(class_names) - 1}")
        arrays[split] = (images[..., None], labels.astype(np.int32))
    return Dataset(x_train=arrays["train"][0], y_train=arrays["train"][1],
                   x_test=arrays["test"][0], y_test=arrays["test"][1],
                   name=dataset, class_names=class_names)


def _tfds_unavailable(dataset: str, err: BaseException) -> FileNotFoundError:
    return FileNotFoundError(
        f"{dataset}: no data directory was given (neither data_dir nor "
        f"${ENV_VAR} is set) and TensorFlow Datasets could not download it "
        f"({type(err).__name__}: {err}). Get the files from {_SOURCES[dataset]}. "
        f"{_LAYOUT_HINT}")


def _load_idx_tfds(dataset: str, class_names: tuple[str, ...]) -> Dataset:
    """TFDS fallback for mnist / fashion_mnist, converted to the on-disk layout."""
    try:
        import tensorflow_datasets as tfds  # lazy: heavy import, optional path

        train, test = tfds.as_numpy(tfds.load(
            dataset, split=["train", "test"], batch_size=-1, as_supervised=True))
    except Exception as err:  # noqa: BLE001 -- offline, missing deps, ...
        raise _tfds_unavailable(dataset, err) from err
    (x_tr, y_tr), (x_te, y_te) = train, test
    x_tr = np.asarray(x_tr, dtype=np.uint8).reshape(-1, 28, 28, 1)
    x_te = np.asarray(x_te, dtype=np.uint8).reshape(-1, 28, 28, 1)
    return Dataset(x_train=x_tr, y_train=np.asarray(y_tr, dtype=np.int32),
                   x_test=x_te, y_test=np.asarray(y_te, dtype=np.int32),
                   name=dataset, class_names=class_names)


def load_mnist(data_dir: str | os.PathLike | None = None, *, train_rows: slice | None = None,
               test_rows: slice | None = None) -> Dataset:
    """Loads MNIST.

    Reads ``<data_dir>/mnist/*-ubyte.gz`` (or the files directly in data_dir);
    with no data dir (argument or $EMFLOW_DATA_DIR) falls back to TFDS.
    ``train_rows`` / ``test_rows`` (``slice(start, stop)``) keep only those examples
    of a split; from files, only they are held in memory (see :func:`read_idx`).

    Returns:
      Dataset with x_train (60000, 28, 28, 1) uint8, y_train (60000,) int32,
      x_test (10000, 28, 28, 1) uint8, y_test (10000,) int32; labels 0..9.
    """
    return _load_idx("mnist", data_dir, MNIST_CLASS_NAMES, {"train": train_rows, "test": test_rows})


def load_fashion_mnist(data_dir: str | os.PathLike | None = None, *, train_rows: slice | None = None,
                       test_rows: slice | None = None) -> Dataset:
    """Loads Fashion-MNIST.

    Reads ``<data_dir>/fashion_mnist/*-ubyte.gz`` (or the files directly in
    data_dir); with no data dir falls back to TFDS. ``train_rows`` / ``test_rows``
    as in :func:`load_mnist`.

    Returns:
      Dataset with x_train (60000, 28, 28, 1) uint8, y_train (60000,) int32,
      x_test (10000, 28, 28, 1) uint8, y_test (10000,) int32; labels 0..9
      named by FASHION_MNIST_CLASS_NAMES.
    """
    return _load_idx("fashion_mnist", data_dir, FASHION_MNIST_CLASS_NAMES, {"train": train_rows, "test": test_rows})


def _load_idx(dataset: str, data_dir, class_names: tuple[str, ...], rows: dict[str, slice | None]) -> Dataset:
    ds = _load_idx_dataset(dataset, data_dir, class_names, rows)
    if ds is not None:
        return ds
    ds = _load_idx_tfds(dataset, class_names)  # TFDS hands over whole splits: sliced here

    def take(x, y, split):
        start, stop = _check_rows(f"tfds {dataset} {split}", rows[split] or slice(None), len(x))
        return x[start:stop], y[start:stop]

    (x_tr, y_tr), (x_te, y_te) = take(ds.x_train, ds.y_train, "train"), take(ds.x_test, ds.y_test, "test")
    return Dataset(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, name=dataset, class_names=class_names)


def split_sizes(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """``{"train": N_train, "test": N_test}`` of an IDX dataset (mnist, fashion_mnist), read from the file headers.

    A multi-process run needs the sizes to decide which rows each process loads.
    """
    key = _dataset_key(name)
    if key not in _ROW_LOADERS:
        raise ValueError(f"split_sizes: only {', '.join(_ROW_LOADERS)} are read by rows, got {name!r}")
    root = resolve_data_dir(data_dir)
    if root is None:
        ds = _ROW_LOADERS[key](None)
        return {"train": len(ds.x_train), "test": len(ds.x_test)}
    folder = _idx_dir(key, root)
    return {split: idx_num_rows(_find_idx_file(key, root, folder, stems[0], _origin(data_dir)))
            for split, stems in _IDX_FILES.items()}


# ---------------------------------------------------------------------------
# Tabular text files
# ---------------------------------------------------------------------------


def has_dataset(name: str, root: str | os.PathLike) -> bool:
    """Whether ``root`` holds every file that ``load_dataset(name, root)`` reads (existence only; small NORB: False)."""
    key, root = _dataset_key(name), pathlib.Path(root)
    if key in ("mnist", "fashion_mnist"):
        folder = _idx_dir(key, root)
        stems = [stem for pair in _IDX_FILES.values() for stem in pair]
        return all((folder / (stem + ".gz")).is_file() or (folder / stem).is_file() for stem in stems)
    files = {"letter": (_LETTER_FILE,), "satimage": _SATIMAGE_FILES}.get(key)
    return files is not None and all((root / key / f).is_file() for f in files)


def _require_dir(dataset: str, data_dir: str | os.PathLike | None,
                 filenames: Sequence[str]) -> list[pathlib.Path]:
    """Paths of `<data_dir>/<dataset>/<filename>`, all checked to exist."""
    root = resolve_data_dir(data_dir)
    if root is None:
        raise FileNotFoundError(
            f"{dataset}: no data directory given (neither data_dir nor ${ENV_VAR} "
            f"is set) and there is no TFDS fallback for this dataset. Download "
            f"{', '.join(filenames)} from {_SOURCES[dataset]} into "
            f"<data_dir>/{dataset}/. {_LAYOUT_HINT}")
    folder = root / dataset
    paths = [folder / f for f in filenames]
    for p in paths:
        if not p.is_file():
            raise _missing(dataset, p, [folder], _origin(data_dir))
    return paths


def _read_lines(path: pathlib.Path) -> list[str]:
    """ASCII lines of a text file (LF or CRLF); a final newline is optional."""
    raw = path.read_bytes()
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DataFormatError(
            f"{path}, line {line}: non-ASCII byte 0x{raw[err.start]:02x}") from err
    lines = text.splitlines()
    while lines and not lines[-1].strip():  # tolerate trailing blank lines
        lines.pop()
    return lines


def _is_int(token: str) -> bool:
    t = token[1:] if token[:1] in "+-" else token
    return t.isascii() and t.isdigit()


def load_letter(data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads UCI Letter Recognition from ``<data_dir>/letter/letter-recognition.data``.

    Each of the 20,000 rows is ``LABEL,f1,...,f16`` (label A..Z, integer
    features 0..15). The first 16,000 rows are the train split, the last 4,000
    the test split (the standard split from the UCI documentation).

    Returns:
      Dataset with x_train (16000, 16) int32, y_train (16000,) int32,
      x_test (4000, 16) int32, y_test (4000,) int32; labels 0..25 for "A".."Z".

    Raises:
      FileNotFoundError: no data dir configured, or the file is missing.
      DataFormatError: a row without exactly 17 comma-separated fields, a label
        that is not a capital letter, a non-integer feature, or a row count
        other than 20,000.
    """
    (path,) = _require_dir("letter", data_dir, [_LETTER_FILE])
    lines = _read_lines(path)
    feats = np.empty((len(lines), 16), dtype=np.int32)
    labels = np.empty((len(lines),), dtype=np.int32)
    for i, line in enumerate(lines):
        fields = line.split(",")
        if len(fields) != 17:
            raise DataFormatError(
                f"{path}, line {i + 1}: expected 17 comma-separated fields "
                f"(label + 16 integers), found {len(fields)}: {line[:80]!r}")
        label = fields[0].strip()
        if len(label) != 1 or not ("A" <= label <= "Z"):
            raise DataFormatError(
                f"{path}, line {i + 1}: label must be a capital letter A..Z, "
                f"found {fields[0]!r}")
        values = [f.strip() for f in fields[1:]]
        for j, v in enumerate(values):
            if not _is_int(v):
                raise DataFormatError(
                    f"{path}, line {i + 1}: field {j + 2} is not an integer: {v!r}")
        labels[i] = ord(label) - ord("A")
        feats[i] = [int(v) for v in values]
    if len(lines) != _LETTER_ROWS:
        raise DataFormatError(
            f"{path}: expected {_LETTER_ROWS} rows (first {_LETTER_TRAIN_ROWS} "
            f"train, last {_LETTER_ROWS - _LETTER_TRAIN_ROWS} test), found {len(lines)}")
    n = _LETTER_TRAIN_ROWS
    return Dataset(x_train=feats[:n].copy(), y_train=labels[:n].copy(),
                   x_test=feats[n:].copy(), y_test=labels[n:].copy(),
                   name="letter", class_names=LETTER_CLASS_NAMES)


def _read_satimage_file(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 36) int32 features and (N,) int32 labels in 0..5 from sat.trn/sat.tst."""
    lines = _read_lines(path)
    if not lines:
        raise DataFormatError(f"{path}: file is empty, expected rows of 37 integers")
    feats = np.empty((len(lines), 36), dtype=np.int32)
    labels = np.empty((len(lines),), dtype=np.int32)
    label_index = {v: k for k, v in enumerate(_SATIMAGE_LABELS)}
    for i, line in enumerate(lines):
        tokens = line.split()
        if len(tokens) != 37:
            raise DataFormatError(
                f"{path}, line {i + 1}: expected 37 whitespace-separated integers "
                f"(36 features + class label), found {len(tokens)} fields")
        for j, t in enumerate(tokens):
            if not _is_int(t):
                raise DataFormatError(
                    f"{path}, line {i + 1}: field {j + 1} is not an integer: {t!r}")
        label = int(tokens[36])
        if label not in label_index:
            raise DataFormatError(
                f"{path}, line {i + 1}: class label {label} not in "
                f"{list(_SATIMAGE_LABELS)}")
        feats[i] = [int(t) for t in tokens[:36]]
        labels[i] = label_index[label]
    return feats, labels


def load_satimage(data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads UCI Statlog (Landsat Satellite) from ``<data_dir>/satimage/sat.{trn,tst}``.

    Each row is 36 integer features (0..255; 27..157 in practice) and then
    the class label 1, 2, 3, 4, 5 or 7 (there is no class 6), whitespace
    separated. Labels are mapped to 0..5 in that order; ``class_names`` keeps
    the original codes ("1", "2", "3", "4", "5", "7").

    Returns:
      Dataset with x_train (4435, 36) int32, y_train (4435,) int32,
      x_test (2000, 36) int32, y_test (2000,) int32.

    Raises:
      FileNotFoundError: no data dir configured, or a file is missing.
      DataFormatError: a row without exactly 37 integers, or an unknown label.
    """
    trn, tst = _require_dir("satimage", data_dir, _SATIMAGE_FILES)
    x_train, y_train = _read_satimage_file(trn)
    x_test, y_test = _read_satimage_file(tst)
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   name="satimage", class_names=SATIMAGE_CLASS_NAMES)


def satimage_dihedral_permutations() -> np.ndarray:
    """``(8, 36)`` int32: the 8 symmetries of Satimage's 3x3 pixel neighbourhood as feature permutations.

    A Satimage row is 9 pixels x 4 spectral bands, pixel-major, the pixels read
    left-to-right, top-to-bottom (UCI documentation: "the four spectral values for the
    top-left pixel are given first followed by the four spectral values for the
    top-middle pixel ..."); the label is the central pixel's class. Rotating or
    mirroring the neighbourhood (the dihedral group D4) moves the pixels, keeps each
    pixel's 4 bands together and in order, and leaves the central pixel, so the label
    is unchanged. Row ``g`` maps a row ``x`` to ``x[perm[g]]``; row 0 is the identity.
    """
    grid = np.arange(9).reshape(3, 3)
    perms = []
    for quarter_turns in range(4):
        for mirrored in (False, True):
            g = np.rot90(grid, quarter_turns)
            pixels = (g[:, ::-1] if mirrored else g).reshape(-1)
            perms.append((pixels[:, None] * 4 + np.arange(4)[None, :]).reshape(-1))
    return np.asarray(perms, np.int32)


# ---------------------------------------------------------------------------
# small NORB
# ---------------------------------------------------------------------------


def preprocess_smallnorb(image: np.ndarray, image2: np.ndarray) -> np.ndarray:
    """Downsamples a stereo pair of small NORB images and puts them side by side.

    Each 96x96 image is reduced to 32x32 by averaging non-overlapping 3x3
    blocks (exact area resampling for a factor of 3), rounded to the nearest
    integer (a mean of 9 integers never ends in .5, so there are no ties).

    Args:
      image: (N, 96, 96, 1) uint8, left camera.
      image2: (N, 96, 96, 1) uint8, right camera.

    Returns:
      (N, 32, 64, 1) uint8: columns 0..31 from `image`, 32..63 from `image2`.

    Raises:
      ValueError: if the inputs are not uint8 arrays of shape (N, 96, 96, 1)
        with the same N.
    """
    image = np.asarray(image)
    image2 = np.asarray(image2)
    for nm, arr in (("image", image), ("image2", image2)):
        if arr.ndim != 4 or arr.shape[1:] != _SMALLNORB_IN_SHAPE:
            raise ValueError(
                f"preprocess_smallnorb: {nm} must have shape (N, 96, 96, 1), "
                f"got {arr.shape}")
        if arr.dtype != np.uint8:
            raise ValueError(
                f"preprocess_smallnorb: {nm} must be uint8, got {arr.dtype}")
    if image.shape[0] != image2.shape[0]:
        raise ValueError(
            f"preprocess_smallnorb: image and image2 must hold the same number of "
            f"examples, got {image.shape[0]} and {image2.shape[0]}")

    f = _SMALLNORB_FACTOR
    s = _SMALLNORB_IN_SHAPE[0] // f

    def down(x: np.ndarray) -> np.ndarray:
        blocks = x.reshape(x.shape[0], s, f, s, f).astype(np.int32)
        sums = blocks.sum(axis=(2, 4))  # (N, 32, 32), at most 9 * 255
        return ((2 * sums + f * f) // (2 * f * f)).astype(np.uint8)  # round(sums/9)

    out = np.concatenate([down(image), down(image2)], axis=2)
    return out[..., None]


def load_smallnorb(data_dir: str | os.PathLike | None = None) -> Dataset:
    """Loads small NORB through TFDS (``smallnorb``) and preprocesses it.

    There is no raw on-disk format here. If the resolved data directory (the
    argument or $EMFLOW_DATA_DIR) has a ``smallnorb/`` subfolder, it is used
    as the TFDS data directory (TFDS keeps prepared data in
    ``<data_dir>/smallnorb/<version>/``, so a dataset prepared elsewhere can be
    copied there for offline use); otherwise TFDS uses its default directory.
    Images go through :func:`preprocess_smallnorb`; labels are
    ``label_category`` (5 classes, SMALLNORB_CLASS_NAMES).

    Returns:
      Dataset with x_train (24300, 32, 64, 1) uint8, y_train (24300,) int32,
      x_test (24300, 32, 64, 1) uint8, y_test (24300,) int32.

    Raises:
      FileNotFoundError: TFDS is unavailable or cannot download the data.
    """
    root = resolve_data_dir(data_dir)
    try:
        import tensorflow_datasets as tfds  # lazy: heavy import, optional path

        use_root = root is not None and (root / "smallnorb").is_dir()
        kwargs = {"data_dir": str(root)} if use_root else {}
        train, test = tfds.as_numpy(tfds.load(
            "smallnorb", split=["train", "test"], batch_size=-1, **kwargs))
    except Exception as err:  # noqa: BLE001 -- offline, missing deps, ...
        raise FileNotFoundError(
            f"smallnorb: TensorFlow Datasets could not load or download 'smallnorb' "
            f"({type(err).__name__}: {err}). small NORB is only available through "
            f"TFDS, which needs network access the first time (or a TFDS-prepared "
            f"copy in <data_dir>/smallnorb/, with data_dir / ${ENV_VAR} pointing "
            f"at <data_dir>).") from err

    def convert(split: dict) -> tuple[np.ndarray, np.ndarray]:
        x = preprocess_smallnorb(np.asarray(split["image"], dtype=np.uint8),
                                 np.asarray(split["image2"], dtype=np.uint8))
        return x, np.asarray(split["label_category"], dtype=np.int32)

    x_train, y_train = convert(train)
    x_test, y_test = convert(test)
    return Dataset(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                   name="smallnorb", class_names=SMALLNORB_CLASS_NAMES)


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------

_LOADERS: types.MappingProxyType[str, Callable[..., Dataset]] = types.MappingProxyType({
    "mnist": load_mnist,
    "fashion_mnist": load_fashion_mnist,
    "letter": load_letter,
    "satimage": load_satimage,
    "smallnorb": load_smallnorb,
})
_ROW_LOADERS = types.MappingProxyType({"mnist": load_mnist, "fashion_mnist": load_fashion_mnist})


def _dataset_key(name: str) -> str:
    """"Fashion-MNIST" -> "fashion_mnist": case-insensitive, '-' read as '_'."""
    return str(name).strip().lower().replace("-", "_")


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, train_rows: slice | None = None,
                 test_rows: slice | None = None) -> Dataset:
    """Loads a dataset by name: one of DATASET_NAMES.

    ``name`` is matched case-insensitively, with '-' read as '_'
    ("Fashion-MNIST" -> "fashion_mnist"). See the module docstring for shapes.
    ``train_rows`` / ``test_rows`` (``slice(start, stop)``) load only those examples;
    the IDX datasets (mnist, fashion_mnist) support them.

    Raises:
      ValueError: unknown name (the message lists the valid names), or rows asked of
        a dataset that is not read by rows.
    """
    key = _dataset_key(name)
    if key not in _LOADERS:
        raise ValueError(
            f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if train_rows is None and test_rows is None:
        return _LOADERS[key](data_dir)
    if key not in _ROW_LOADERS:
        raise ValueError(f"load_dataset: {name!r} is not read by rows (train_rows / test_rows); "
                         f"only {', '.join(_ROW_LOADERS)} are")
    return _ROW_LOADERS[key](data_dir, train_rows=train_rows, test_rows=test_rows)
