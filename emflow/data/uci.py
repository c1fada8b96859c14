"""Letter and Satimage from the UCI files, and Satimage's pixel symmetries."""
from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np

from emflow.data.dataset import (
    _LAYOUT_HINT,
    _SOURCES,
    ENV_VAR,
    LETTER_CLASS_NAMES,
    SATIMAGE_CLASS_NAMES,
    DataFormatError,
    Dataset,
    _missing,
    _origin,
    resolve_data_dir,
)

_LETTER_FILE = "letter-recognition.data"
_LETTER_ROWS = 20_000
_LETTER_TRAIN_ROWS = 16_000

_SATIMAGE_FILES = ("sat.trn", "sat.tst")
_SATIMAGE_LABELS = (1, 2, 3, 4, 5, 7)


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
