"""emflow.data.download against a local mirror (../shared/data served on localhost): checked, resumable, refusing."""
import functools
import gzip
import http.server
import os
import pathlib
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from emflow import data as data_lib
from emflow.data import download


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


def test_ensure_dataset_fetches_into_the_cache_once_and_says_where(mirror, data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("EMFLOW_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(download.MIRROR_ENV_VAR, mirror)
    lines = []
    root = download.ensure_dataset("letter", log=lines.append, progress=False)
    assert root == tmp_path / "cache" / "emflow" / "data" == download.user_cache_dir()
    assert lines[-1] == f"letter: its files are in {root / 'letter'}"
    assert data_lib.load_dataset("letter", root).x_train.shape == (16000, 16)
    assert download.ensure_dataset("letter", log=lines.append) == root and len(lines) == 2  # not fetched again
    # A data directory that holds the dataset is used as it is; one that lacks it is filled.
    assert download.ensure_dataset("mnist", data_dir, log=lines.append) == data_dir and len(lines) == 2
    monkeypatch.setenv("EMFLOW_DATA_DIR", str(tmp_path / "env"))
    assert download.ensure_dataset("letter", log=lines.append, progress=False) == tmp_path / "env"
    assert data_lib.has_dataset("letter", tmp_path / "env") and not data_lib.has_dataset("mnist", tmp_path / "env")
    assert download.ensure_dataset("smallnorb") == tmp_path / "env"  # TensorFlow Datasets' path: nothing fetched


def test_a_cache_folder_that_cannot_be_written_is_named(mirror, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(download.DownloadError, match=f"cannot write the data folder {blocker / 'mnist'}"):
        download.ensure_dataset("mnist", blocker, log=lambda s: None)
    assert blocker.read_text() == "not a folder"


def test_the_main_job_fetches_its_data_from_a_mirror_with_no_data_folder(mirror, tmp_path):
    """`python -m experiments.mnist_genmm` at a tiny size, no data folder anywhere: it downloads, then trains."""
    env = {k: v for k, v in os.environ.items() if k != "EMFLOW_DATA_DIR"}
    env.update({download.MIRROR_ENV_VAR: mirror, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.mnist_genmm", "--num_train", "256", "--num_test", "128", "--levels", "2",
         "--steps", "1", "--hidden", "4", "--epochs", "1", "--em_every", "1", "--no_progress",
         "--workdir", str(tmp_path / "run")],
        env=env, cwd=pathlib.Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "cache" / "emflow" / "data" / "mnist"
    assert f"mnist: its files are in {folder}" in proc.stdout
    assert sorted(p.name for p in folder.iterdir()) == sorted(download.files_of("mnist"))
    assert (tmp_path / "run" / "metrics.jsonl").exists()
