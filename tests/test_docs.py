"""The documentation: built with warnings as errors, every public name in the API reference with a
docstring, every results table as its results file renders it, and the README's code as written.

The Sphinx build (``sphinx-build -W``) is the one a reader gets: a broken reference to an emflow
name, a page outside every toctree or a docstring that does not parse fails it.
"""
from __future__ import annotations

import importlib
import inspect
import pathlib
import pkgutil
import re
import subprocess
import sys
import textwrap
import time

import pytest

import emflow
from experiments import render_docs

ROOT = pathlib.Path(__file__).resolve().parents[1]
sphinx = pytest.importorskip("sphinx", reason="the docs build needs the test extra (sphinx, myst-nb)")


def public_objects() -> dict[str, object]:
    """``{"emflow.pkg.module.name": obj}`` for every public function and class, by the module that defines it."""
    mods = [emflow] + [importlib.import_module(m.name) for m in pkgutil.walk_packages(emflow.__path__, "emflow.")]
    return {f"{mod.__name__}.{name}": obj for mod in mods for name, obj in vars(mod).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == mod.__name__}


def sphinx_build(src: pathlib.Path, out: pathlib.Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html", *extra,
                           str(src), str(out)], capture_output=True, text=True, cwd=ROOT)


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("docs_html")
    t0 = time.perf_counter()
    done = sphinx_build(ROOT / "docs", out)
    seconds = time.perf_counter() - t0
    assert done.returncode == 0, f"the docs build failed (sphinx-build -W):\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    pages = len(list(out.rglob("*.html")))
    print(f"docs: {pages} HTML pages in {seconds:.1f} s")
    return out


def test_the_docs_build_with_warnings_as_errors(built_docs):
    for page in ("index.html", "getting_started.html", "guides/training.html", "api/index.html",
                 "reproducing/table1.html", "notebooks/quickstart.html", "research_log.html"):
        assert (built_docs / page).is_file(), page


def test_every_public_name_has_an_api_entry_and_a_docstring(built_docs):
    from sphinx.util.inventory import InventoryFile

    with open(built_docs / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    data = inventory.data if hasattr(inventory, "data") else inventory
    entries = {name for by_name in data.values() for name in by_name}
    objects = public_objects()
    assert len(objects) > 200
    assert [n for n in objects if n not in entries] == [], "public names without an API entry"
    assert [n for n, o in objects.items() if not inspect.getdoc(o)] == [], "public names without a docstring"
    top = [f"{getattr(emflow, n).__module__}.{n}" for n in emflow.__all__ if inspect.isclass(getattr(emflow, n))
           or inspect.isfunction(getattr(emflow, n))]
    assert [n for n in top if n not in entries] == [], "top-level names (emflow.GenMM, ...) without an entry"


def test_a_page_that_names_a_missing_function_fails_the_build_naming_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text(textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(ROOT)!r})
        extensions = ["myst_parser", "sphinx.ext.autodoc"]
        nitpicky = True
        nitpick_ignore_regex = [(r"py:.*", r"^(?!emflow\\.).*")]
    """))
    (src / "index.md").write_text("# Page\n\nSee {py:func}`emflow.train.fit` and {py:func}`emflow.train.fit_faster`.\n\n"
                                  "```{eval-rst}\n.. autofunction:: emflow.train.fit\n```\n")
    done = sphinx_build(src, tmp_path / "out")
    assert done.returncode != 0
    assert "emflow.train.fit_faster" in done.stderr and "index.md" in done.stderr
    assert "reference target not found" in done.stderr


def test_every_results_block_is_what_its_results_file_renders():
    assert render_docs.stale_blocks() == [], "stale results tables: python -m experiments.render_docs"
    blocks = {m["name"] for p in render_docs.pages() for m in render_docs.BLOCK_RE.finditer(p.read_text())}
    assert blocks == set(render_docs.BLOCKS), "a renderer without a page, or a page block without a renderer"


def test_a_changed_number_is_caught_and_an_unknown_block_is_named():
    page = (ROOT / "docs" / "reproducing" / "main_jobs.md").read_text()
    m = next(render_docs.BLOCK_RE.finditer(page))
    tampered = m.group(0).replace("**1.4461**", "**1.4400**")
    assert tampered != m.group(0)
    assert render_docs.render_text(tampered, "page.md") == m.group(0)
    with pytest.raises(render_docs.RenderError, match=r"page\.md: unknown rendered block 'no_such_table'"):
        render_docs.render_text("<!-- rendered: no_such_table -->\n<!-- end rendered -->", "page.md")


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def test_the_readme_is_one_screen_or_two():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= 260, f"README.md has {lines} lines; the rest belongs in docs/"


@pytest.mark.parametrize("index", range(len(readme_python_blocks())))
def test_each_readme_python_block_runs_as_written(index, tmp_path, data_dir):
    code = readme_python_blocks()[index]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert done.returncode == 0, f"README python block {index} failed:\n{code}\n{done.stderr[-4000:]}"


def test_the_readme_commands_are_those_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().replace(" --quiet", "")
    for command in ('pip install -e ".[test]"', "pytest -q -n 2 --dist loadfile"):
        assert command in readme and command in ci, command
    assert "python -m experiments.mnist_genmm" in readme
