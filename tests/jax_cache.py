"""The test session's JAX compilation-cache folder: one per process, never shared with a live process.

JAX writes a cache entry in place, with no lock unless ``jax_compilation_cache_max_size`` is set, so a
process that reads an entry another one is still writing loads a torn executable and crashes (a
segmentation fault in ``compilation_cache.get_executable_and_time``). Each xdist worker therefore has its
own folder, and a folder is held with an exclusive lock for the life of the process: a second test run
started while the first still runs (its workers have the same names) gets fresh folders of its own.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

try:
    import fcntl
except ImportError:  # not POSIX: no lock, one folder per worker as before
    fcntl = None

_HELD = []  # the open lock files: a lock lasts as long as its file stays open


def cache_folder(root: str, worker: str) -> str:
    """``<root>/<worker>`` when no live process holds it, else a new folder of this process (removed at exit)."""
    folder = os.path.join(root, worker)
    os.makedirs(folder, exist_ok=True)
    if fcntl is None:
        return folder
    lock = open(folder + ".lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another live run holds it
        lock.close()
        own = tempfile.mkdtemp(prefix=f"{worker}-", dir=root)
        atexit.register(shutil.rmtree, own, ignore_errors=True)
        return own
    _HELD.append(lock)
    return folder
