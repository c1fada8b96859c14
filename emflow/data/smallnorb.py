"""small NORB through TensorFlow Datasets, downsampled to a 32x64 stereo pair."""
from __future__ import annotations

import os

import numpy as np

from emflow.data.dataset import (
    ENV_VAR,
    SMALLNORB_CLASS_NAMES,
    Dataset,
    resolve_data_dir,
)

_SMALLNORB_IN_SHAPE = (96, 96, 1)
_SMALLNORB_FACTOR = 3


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
    except Exception as err:
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
