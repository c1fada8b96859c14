"""emflow.download against a local mirror (../shared/data served on localhost): checked, resumable, refusing."""
import functools
import gzip
import http.server
import shutil
import threading

import numpy as np
import pytest

from emflow import data as data_lib
from emflow import download


@pytest.fixture(scope="module")
def mirror(data_dir, tmp_path_factory):
    """An HTTP server on a free localhost port with a copy of the data plus a corrupt MNIST copy."""
    root = tmp_path_factory.mktemp("mirror")
    for name in ("mnist", "letter"):
        shutil.copytree(data_dir / name, root / name)
    bad = root / "bad_mnist"
    shutil.copytree(data_dir / "mnist", bad)
    with gzip.open(bad / "t10k-labels-idx1-ubyte.gz", "rb") as f:
        raw = bytearray(f.read())
    raw[-1] ^= 1  # one label changed
    with gzip.open(bad / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes(raw))
    (root / "bad_letter").mkdir()
    (root / "bad_letter" / "letter-recognition.data").write_text("A,1,2\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_download_gives_the_same_arrays_and_is_not_repeated(mirror, data_dir, tmp_path):
    lines = []
    folder = download.download("MNIST", tmp_path, base_url=f"{mirror}/mnist", log=lines.append)
    assert folder == tmp_path / "mnist" and len(lines) == 4 and not list(folder.glob("*.part"))
    got, want = data_lib.load_dataset("mnist", tmp_path), data_lib.load_dataset("mnist", data_dir)
    np.testing.assert_array_equal(got.x_test, want.x_test)
    np.testing.assert_array_equal(got.y_train, want.y_train)
    download.download("mnist", tmp_path, base_url=f"{mirror}/mnist", log=lines.append)
    assert len(lines) == 4  # all four present and valid: nothing fetched again
    download.download("letter", tmp_path, base_url=f"{mirror}/letter", log=lines.append)
    assert data_lib.load_dataset("letter", tmp_path).x_train.shape == (16000, 16)


def test_a_file_that_fails_its_check_is_removed_and_named(mirror, tmp_path):
    with pytest.raises(download.DownloadError, match=r"t10k-labels-idx1-ubyte.gz is not the expected file: "
                                                      r"decompressed md5 \w+, expected 27ae3e4e"):
        download.download("mnist", tmp_path, base_url=f"{mirror}/bad_mnist", log=lambda s: None)
    assert not (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "mnist").glob("*.part"))
    with pytest.raises(download.DownloadError, match="do not parse"):
        download.download("letter", tmp_path, base_url=f"{mirror}/bad_letter", log=lambda s: None)
    assert not (tmp_path / "letter" / "letter-recognition.data").exists()


def test_unreachable_and_unknown_are_refused_clearly(mirror, tmp_path):
    with pytest.raises(download.DownloadError, match=r"could not fetch .*/nowhere/sat.trn"):
        download.download("satimage", tmp_path, base_url=f"{mirror}/nowhere", log=lambda s: None)
    with pytest.raises(ValueError, match="small NORB comes from TensorFlow Datasets only"):
        download.download("smallnorb", tmp_path)
