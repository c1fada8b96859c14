"""Fetch the datasets' original files into a data directory (for Colab and fresh machines).

    emflow.data.download.download("mnist", "data")    # -> data/mnist/ with the four IDX files
    emflow.data.load_dataset("mnist", "data")

TensorFlow Datasets needs TensorFlow, which Colab's TPU runtime no longer has. So the
notebooks fetch the files that ``emflow.data`` reads, from the mirrors below, over plain
HTTPS. Every file is checked before it is kept:

- an IDX file against the published md5 of its decompressed content, which does not
  depend on the gzip wrapper;
- the UCI text files by parsing the whole dataset with ``emflow.data``'s strict loader.

A file fetched by the call that fails its check is deleted and named in the error
(files that were already there are never deleted). A download goes to a
temporary name and is renamed only once complete, so an interrupted run leaves no
half file behind. Files already present and valid are not fetched again.

``base_url`` replaces a dataset's mirror (e.g. a local copy; the tests serve
``../shared/data`` over localhost); ``$EMFLOW_DATA_MIRROR`` replaces every mirror with
``<url>/<name>/``. The default mirrors could not be reached from this project's machines
(no internet), so only the local-mirror path is tested.

``ensure_dataset`` is what the experiments call: the data directory that holds a dataset,
fetched into ``$EMFLOW_DATA_DIR`` (if set) or the user's cache folder when it is missing.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import urllib.request

from tqdm.auto import tqdm

from emflow import data as data_lib

MIRROR_ENV_VAR = "EMFLOW_DATA_MIRROR"

MIRRORS = {
    "mnist": "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "letter": "https://archive.ics.uci.edu/ml/machine-learning-databases/letter-recognition/",
    "satimage": "https://archive.ics.uci.edu/ml/machine-learning-databases/statlog/satimage/",
}

# md5 of each IDX file's decompressed content (the originals' published checksums).
_IDX_RAW_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
_UCI_FILES = {"letter": ("letter-recognition.data",), "satimage": ("sat.trn", "sat.tst")}


class DownloadError(OSError):
    """A file could not be fetched, or what came is not the expected file."""


def files_of(name: str) -> tuple[str, ...]:
    """The file names ``download(name)`` fetches."""
    if name in _IDX_RAW_MD5:
        return tuple(_IDX_RAW_MD5[name])
    if name in _UCI_FILES:
        return _UCI_FILES[name]
    raise ValueError(f"download: no files known for {name!r}; downloadable: {sorted(MIRRORS)} "
                     "(small NORB comes from TensorFlow Datasets only)")


def _raw_md5(path: pathlib.Path) -> str:
    with gzip.open(path, "rb") as f:
        return hashlib.md5(f.read()).hexdigest()


def _idx_valid(name: str, path: pathlib.Path, file: str) -> str | None:
    """None if ``path`` holds the expected IDX file ``file``, else why not."""
    try:
        got = _raw_md5(path)
    except (OSError, EOFError) as err:
        return f"not a readable gzip file ({err})"
    want = _IDX_RAW_MD5[name][file]
    return None if got == want else f"decompressed md5 {got}, expected {want}"


def download(name: str, data_dir: str | os.PathLike, base_url: str | None = None, timeout: float = 60.0,
             log=print, progress: bool = True) -> pathlib.Path:
    """Fetch ``name``'s files into ``<data_dir>/<name>/`` unless already there and valid; returns that folder.

    ``base_url``: the folder URL holding ``name``'s files; default ``$EMFLOW_DATA_MIRROR/<name>/``
    if that is set, else ``MIRRORS[name]``. ``progress``: a byte progress bar per file.

    Raises:
      ValueError: an unknown dataset name.
      DownloadError: the folder cannot be written; a file could not be fetched, or failed its check
        (the file just fetched is removed; files that were there before are never deleted).
    """
    key = str(name).strip().lower().replace("-", "_")
    files = files_of(key)
    folder = pathlib.Path(data_dir) / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".emflow-write-test"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise DownloadError(f"download: cannot write the data folder {folder} ({err}); choose another one with "
                            f"--data_dir or ${data_lib.ENV_VAR}") from err
    mirror = os.environ.get(MIRROR_ENV_VAR, "").rstrip("/")
    url = base_url or (f"{mirror}/{key}" if mirror else MIRRORS[key])
    url = url if url.endswith("/") else url + "/"
    fetched = []
    for file in files:
        path = folder / file
        if path.exists() and (key not in _IDX_RAW_MD5 or _idx_valid(key, path, file) is None):
            continue
        partial = path.with_name(path.name + ".part")
        log(f"downloading {url}{file}")
        try:
            with urllib.request.urlopen(url + file, timeout=timeout) as response, open(partial, "wb") as out, \
                    tqdm(total=int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                         desc=file, leave=False, disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as err:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"download: could not fetch {url}{file}: {err}; fetch it by hand into {folder} "
                                f"(see emflow/data.py for the sources)") from err
        if key in _IDX_RAW_MD5 and (why := _idx_valid(key, partial, file)) is not None:
            partial.unlink()
            raise DownloadError(f"download: {url}{file} is not the expected file: {why}; removed it")
        partial.replace(path)
        fetched.append(path)
    if key in _UCI_FILES:  # parse the whole dataset: row counts, field counts, labels
        try:
            data_lib.load_dataset(key, data_dir)
        except (ValueError, OSError) as err:
            for path in fetched:  # only what this call fetched; files that were there stay
                path.unlink()
            raise DownloadError(f"download: the {key} files in {folder} do not parse ({err}); removed the ones "
                                f"just fetched: {[p.name for p in fetched]}") from err
    return folder


def user_cache_dir() -> pathlib.Path:
    """Where downloads go without a data directory: ``$XDG_CACHE_HOME/emflow/data`` (default ``~/.cache``)."""
    return pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "emflow" / "data"


def ensure_dataset(name: str, data_dir: str | os.PathLike | None = None, log=print,
                   progress: bool = True) -> pathlib.Path | None:
    """A data directory from which ``emflow.data.load_dataset(name, ...)`` reads ``name``, fetched if missing.

    The directory is ``data_dir``, else ``$EMFLOW_DATA_DIR``, else ``user_cache_dir()``. When it
    lacks ``name``'s files (``emflow.data.has_dataset``) they are downloaded into it (``download``: checked, with a progress
    bar) and ``log`` says where they went. Small NORB is not downloadable: its directory (or
    None, TensorFlow Datasets' own cache) is returned as resolved.
    """
    key = str(name).strip().lower().replace("-", "_")
    root = data_lib.resolve_data_dir(data_dir)
    if key not in MIRRORS:
        return root
    target = root if root is not None else user_cache_dir()
    if data_lib.has_dataset(key, target):
        return target
    folder = download(key, target, log=log, progress=progress)
    log(f"{key}: its files are in {folder}")
    return target
