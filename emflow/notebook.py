"""What the notebooks share: their size mode, the device line, and where the data come from.

``EMFLOW_NOTEBOOK_MODE`` picks the sizes of every notebook:

- ``auto`` (the default): ``full`` on a TPU or GPU backend, ``small`` on a CPU;
- ``full``: paper-scale settings (minutes to hours on one accelerator);
- ``small``: a few minutes on a laptop CPU;
- ``test``: seconds. CI executes every notebook this way (``tests/test_notebooks.py``),
  as jax-ai-stack's notebooks do.

Any other value is refused, with the accepted ones named.
"""
from __future__ import annotations

import os
import pathlib
import sys
from typing import TypeVar

import jax

MODE_VARIABLE = "EMFLOW_NOTEBOOK_MODE"
MODES = ("auto", "full", "small", "test")
T = TypeVar("T")


def mode(environ: dict | None = None) -> str:
    """``"full"``, ``"small"`` or ``"test"``, from ``$EMFLOW_NOTEBOOK_MODE`` and the backend."""
    environ = os.environ if environ is None else environ
    value = environ.get(MODE_VARIABLE, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{MODE_VARIABLE}={environ.get(MODE_VARIABLE)!r} is not a notebook mode; "
                         f"expected one of {list(MODES)}")
    if value == "auto":
        return "full" if jax.default_backend() in ("tpu", "gpu") else "small"
    return value


def pick(full: T, small: T, test: T, environ: dict | None = None) -> T:
    """The setting for this mode: ``pick(full=60_000, small=10_000, test=256)``."""
    return {"full": full, "small": small, "test": test}[mode(environ)]


def on_colab() -> bool:
    """Whether this process runs inside Google Colab."""
    return "google.colab" in sys.modules


def describe_devices() -> str:
    """One line: backend, device kinds, and the mode the sizes were picked by."""
    kinds = sorted({d.device_kind for d in jax.devices()})
    return (f"jax {jax.__version__} on {jax.default_backend()}: {jax.device_count()} device(s) ({', '.join(kinds)}); "
            f"notebook mode {mode()!r}")


def data_dir(names: tuple[str, ...], default: str | os.PathLike = "emflow_data", log=print) -> pathlib.Path:
    """A data directory that holds ``names``: ``$EMFLOW_DATA_DIR`` if set, else ``default``, fetched if missing.

    ``$EMFLOW_DATA_DIR`` is used as it is (nothing is written into it); the default folder
    is filled by ``emflow.data.download`` (on Colab: from the public mirrors, checked by md5 or
    by parsing).
    """
    from emflow.data import download

    env = os.environ.get("EMFLOW_DATA_DIR")
    if env:
        return pathlib.Path(env)
    root = pathlib.Path(default)
    for name in names:
        download.download(name, root, log=log)
    return root
