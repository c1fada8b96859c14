"""MNIST and Fashion-MNIST: IDX files read by rows (gzipped or plain), TensorFlow Datasets as fallback."""
from __future__ import annotations

import gzip
import os
import pathlib
import zlib

import numpy as np

from emflow.data.dataset import (
    _LAYOUT_HINT,
    _SOURCES,
    ENV_VAR,
    FASHION_MNIST_CLASS_NAMES,
    MNIST_CLASS_NAMES,
    DataFormatError,
    Dataset,
    _missing,
    _origin,
    resolve_data_dir,
)

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


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
    except Exception as err:
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
    for split, r in rows.items():
        if r is not None and not isinstance(r, slice):
            raise TypeError(f"load_{dataset}: {split}_rows must be None or a slice(start, stop), got {r!r}")
    ds = _load_idx_dataset(dataset, data_dir, class_names, rows)
    if ds is not None:
        return ds
    ds = _load_idx_tfds(dataset, class_names)  # TFDS hands over whole splits: sliced here

    def take(x, y, split):
        start, stop = _check_rows(f"tfds {dataset} {split}", rows[split] or slice(None), len(x))
        return x[start:stop], y[start:stop]

    (x_tr, y_tr), (x_te, y_te) = take(ds.x_train, ds.y_train, "train"), take(ds.x_test, ds.y_test, "test")
    return Dataset(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, name=dataset, class_names=class_names)
