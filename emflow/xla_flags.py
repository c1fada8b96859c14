"""XLA flags that the installed XLA accepts, found before any computation.

XLA parses ``XLA_FLAGS`` at the first computation of a process and aborts that process
(a C++ ``LOG(FATAL)``, not a Python exception) on a flag it does not know; which flags it
knows changes between jaxlib releases. The only safe test is therefore a child process:
``unknown_xla_flags`` runs one tiny computation there with the flags given and reads the
names XLA refuses from its message.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Sequence

_PROBE = "import jax.numpy as jnp; (jnp.zeros(1) + 1).block_until_ready()"
_UNKNOWN = re.compile(r"Unknown flags? in XLA_FLAGS: (.*)")


def jax_versions() -> str:
    """``"jax X, jaxlib Y"`` of this environment, read without importing jax."""
    from importlib.metadata import PackageNotFoundError, version
    parts = []
    for name in ("jax", "jaxlib"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def unknown_xla_flags(flags: str, timeout: float = 120.0) -> list[str]:
    """The flags of ``flags`` (an ``XLA_FLAGS`` string) that the installed XLA refuses.

    Runs one CPU computation in a child process with ``XLA_FLAGS=flags``; returns ``[]`` when
    it succeeds, else the refused flags as XLA names them (``"--name=value"``). Any other
    failure of the child raises ``RuntimeError`` with its last lines.
    """
    if not isinstance(flags, str):
        raise TypeError(f"flags: expected an XLA_FLAGS string, got {type(flags).__name__}")
    if not flags.strip():
        return []
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode == 0:
        return []
    found = _UNKNOWN.search(proc.stderr)
    if found:
        return found.group(1).split()
    tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
    raise RuntimeError(f"a computation with XLA_FLAGS={flags!r} failed ({jax_versions()}), "
                       f"exit code {proc.returncode}:\n{tail}")


def supported_xla_flags(candidates: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``candidates`` (one ``"--name=value"`` each) into (accepted, refused) by the installed XLA."""
    refused = set(unknown_xla_flags(" ".join(candidates)))
    return [f for f in candidates if f not in refused], [f for f in candidates if f in refused]


def check_xla_flags(flags: str | None = None) -> None:
    """Raise ``ValueError`` naming every flag of ``flags`` (default: ``$XLA_FLAGS``) that XLA refuses.

    Call it before the first computation of a program (the experiments do): otherwise XLA
    aborts the process at that computation with only a log line. Costs one child process
    when flags are set, nothing when they are not.
    """
    flags = os.environ.get("XLA_FLAGS", "") if flags is None else flags
    refused = unknown_xla_flags(flags)
    if refused:
        raise ValueError(f"XLA_FLAGS holds {len(refused)} flag(s) that the installed XLA ({jax_versions()}) does "
                         f"not know: {' '.join(refused)}. Remove them from XLA_FLAGS (it was {flags!r}).")
