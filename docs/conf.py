"""Sphinx configuration of emflow's documentation (``sphinx-build -W docs docs/_build``)."""
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# autosummary writes the API pages here and never removes one: start from none, so that a page of a
# module that no longer exists cannot linger and break the build.
shutil.rmtree(pathlib.Path(__file__).parent / "api" / "generated", ignore_errors=True)

import emflow  # noqa: E402

project = "emflow"
author = "the emflow authors"
release = emflow.__version__
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "notebooks/*.py", "figures/README.md"]
templates_path = ["_templates"]
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True, "ignore-module-all": True,
                           "exclude-members": "set_fit_request,set_predict_request,set_score_request,set_predict_proba_request"}
napoleon_use_ivar = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # the notebooks are executed by the test suite, not by the docs build
html_theme = "sphinx_book_theme"
html_title = "emflow"
html_static_path = []
html_theme_options = {"repository_url": "https://github.com/emflow/emflow", "use_repository_button": True}
nitpicky = True  # a reference to an emflow name that does not exist fails the build
nitpick_ignore_regex = [(r"py:.*", r"^(?!emflow\.).*")]
nitpick_ignore = [("py:class", "emflow.notebook.T")]  # a TypeVar
suppress_warnings = ["myst.header"]
nb_kernel_rgx_aliases = {"python3": "python3"}


def literal_blocks(app, what, name, obj, options, lines):
    """Module docstrings show formulas and code as an indented block after a paragraph: render it verbatim.

    An indented block whose paragraph does not end with ``::`` would otherwise be a block quote, its lines
    run together. A lone ``::`` paragraph makes the block literal and is itself not shown.
    """
    if what != "module":
        return
    out = []
    for i, line in enumerate(lines):
        starts_block = (line.startswith("    ") and i >= 2 and lines[i - 1].strip() == ""
                        and lines[i - 2].strip() and not lines[i - 2].startswith(" ")
                        and not lines[i - 2].rstrip().endswith("::"))
        if starts_block:
            out += ["::", ""]
        out.append(line)
    lines[:] = out


def setup(app):
    app.connect("autodoc-process-docstring", literal_blocks)
