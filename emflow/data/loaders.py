"""Datasets by name: ``load_dataset``, ``split_sizes`` and ``has_dataset``."""
from __future__ import annotations

import os
import pathlib
import types
from collections.abc import Callable

from emflow.data.dataset import DATASET_NAMES, Dataset, _origin, resolve_data_dir
from emflow.data.idx import (
    _IDX_FILES,
    _find_idx_file,
    _idx_dir,
    idx_num_rows,
    load_fashion_mnist,
    load_mnist,
)
from emflow.data.smallnorb import load_smallnorb
from emflow.data.uci import _LETTER_FILE, _SATIMAGE_FILES, load_letter, load_satimage

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


def has_dataset(name: str, root: str | os.PathLike) -> bool:
    """Whether ``root`` holds every file that ``load_dataset(name, root)`` reads (existence only; small NORB: False)."""
    key, root = _dataset_key(name), pathlib.Path(root)
    if key not in DATASET_NAMES:
        raise ValueError(f"has_dataset: unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if key in ("mnist", "fashion_mnist"):
        folder = _idx_dir(key, root)
        stems = [stem for pair in _IDX_FILES.values() for stem in pair]
        return all((folder / (stem + ".gz")).is_file() or (folder / stem).is_file() for stem in stems)
    files = {"letter": (_LETTER_FILE,), "satimage": _SATIMAGE_FILES}.get(key)
    return files is not None and all((root / key / f).is_file() for f in files)
