"""The :class:`Dataset` record, dataset names and classes, and where the data directory is."""
from __future__ import annotations

import dataclasses
import os
import pathlib
import types
from collections.abc import Sequence

import numpy as np

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
    "mnist/, fashion_mnist/, letter/, satimage/ (see emflow.data)."
)


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



def resolve_data_dir(data_dir: str | os.PathLike | None) -> pathlib.Path | None:
    """Returns the data directory to use, or None if none is configured.

    Order: the explicit ``data_dir`` argument, else ``$EMFLOW_DATA_DIR`` (if set
    and non-empty), else None. ``~`` is expanded; existence is not checked here
    (the loaders report a missing directory with a FileNotFoundError).
    """
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise TypeError(f"resolve_data_dir: data_dir must be None or a path (str or pathlib.Path), got {data_dir!r}")
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


