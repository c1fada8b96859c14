"""Datasets for emflow: MNIST, Fashion-MNIST, Letter, Satimage, small NORB.

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
from emflow.data.dataset import (
                                 DATASET_NAMES,
                                 ENV_VAR,
                                 FASHION_MNIST_CLASS_NAMES,
                                 LETTER_CLASS_NAMES,
                                 MNIST_CLASS_NAMES,
                                 SATIMAGE_CLASS_NAMES,
                                 SMALLNORB_CLASS_NAMES,
                                 DataFormatError,
                                 Dataset,
                                 resolve_data_dir,
)
from emflow.data.idx import idx_num_rows, load_fashion_mnist, load_mnist, read_idx
from emflow.data.loaders import has_dataset, load_dataset, split_sizes
from emflow.data.smallnorb import load_smallnorb, preprocess_smallnorb
from emflow.data.uci import load_letter, load_satimage, satimage_dihedral_permutations

__all__ = [
    "DATASET_NAMES", "ENV_VAR", "FASHION_MNIST_CLASS_NAMES", "LETTER_CLASS_NAMES", "MNIST_CLASS_NAMES",
    "SATIMAGE_CLASS_NAMES", "SMALLNORB_CLASS_NAMES", "DataFormatError", "Dataset", "has_dataset",
    "idx_num_rows", "load_dataset", "load_fashion_mnist", "load_letter", "load_mnist", "load_satimage",
    "load_smallnorb", "preprocess_smallnorb", "read_idx", "resolve_data_dir", "satimage_dihedral_permutations",
    "split_sizes",
]
