"""The Colab notebooks: paired with their reviewable .py, outputs stripped, Colab-ready, and executed in test mode."""
import json
import pathlib

import pytest

from emflow import notebook

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_the_four_notebooks():
    assert NOTEBOOKS == ["classification", "embedding", "quickstart", "semisupervised"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_is_its_py_file_stripped_and_ready_for_colab(name):
    ipynb = jupytext.read(ROOT / "notebooks" / f"{name}.ipynb")
    paired = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    assert [(c.cell_type, c.source) for c in ipynb.cells] == [(c.cell_type, c.source) for c in paired.cells], \
        f"notebooks/{name}.ipynb and .py differ: run `jupytext --sync notebooks/{name}.py`"
    raw = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    for cell in raw["cells"]:
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"{name}: outputs not stripped"
    assert raw["metadata"]["accelerator"] == "TPU" and raw["metadata"]["kernelspec"]["name"] == "python3"
    first = "".join(raw["cells"][0]["source"])
    assert f"colab.research.google.com/github/emflow/emflow/blob/main/notebooks/{name}.ipynb" in first
    install = "".join(raw["cells"][1]["source"])
    assert '"google.colab" in sys.modules' in install and "jax[tpu]" in install
    assert "setup_tpu" not in (ROOT / "notebooks" / f"{name}.py").read_text()


def _execute(name, tmp_path, monkeypatch, mode):
    monkeypatch.setenv(notebook.MODE_VARIABLE, mode)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())
    import nbformat

    nb = nbformat.reads(json.dumps(nb), as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


@pytest.mark.parametrize("name", ["quickstart", "embedding", "classification", "semisupervised"])
def test_each_notebook_runs_in_test_mode(name, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EMFLOW_DATA_DIR", str(data_dir))
    nb = _execute(name, tmp_path, monkeypatch, "test")
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "notebook mode 'test'" in text and "CpuDevice(id=0)" in text  # the device line and jax.devices()
    if name == "classification":
        assert "old classes' parameters unchanged: True" in text
    if name == "embedding":
        assert "jit == eager: True" in text
    if name == "semisupervised":
        assert "labels: semi-supervised EM" in text and "labels, ... and a supervised start: " in text


def test_an_unknown_mode_stops_the_notebook_with_the_accepted_ones_named(data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EMFLOW_DATA_DIR", str(data_dir))
    with pytest.raises(nbclient.exceptions.CellExecutionError, match=r"is not a notebook mode; expected one of"):
        _execute("quickstart", tmp_path, monkeypatch, "tiny")


@pytest.mark.parametrize("value,expected", [("test", "test"), (" Small ", "small"), ("full", "full"), ("", "auto")])
def test_mode_reads_the_variable(value, expected):
    import jax

    if expected == "auto":  # "" is auto: full on an accelerator, small on a CPU
        expected = "full" if jax.default_backend() in ("tpu", "gpu") else "small"
    assert notebook.mode({notebook.MODE_VARIABLE: value}) == expected
    assert notebook.pick(1, 2, 3, {notebook.MODE_VARIABLE: value}) == {"full": 1, "small": 2, "test": 3}[expected]


def test_mode_refuses_an_unknown_value():
    with pytest.raises(ValueError, match=r"EMFLOW_NOTEBOOK_MODE='cpu' is not a notebook mode; expected one of "
                                         r"\['auto', 'full', 'small', 'test'\]"):
        notebook.mode({notebook.MODE_VARIABLE: "cpu"})
