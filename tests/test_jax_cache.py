"""tests/jax_cache.py: a compilation-cache folder held by a live process is not handed to another."""
import os
import subprocess
import sys

import pytest

from jax_cache import cache_folder, fcntl

HOLD = ("import sys, time; sys.path.insert(0, {tests!r}); from jax_cache import cache_folder; "
        "print(cache_folder({root!r}, 'gw0'), flush=True); time.sleep(60)")


@pytest.mark.skipif(fcntl is None, reason="no POSIX file locks")
def test_a_folder_held_by_a_live_process_is_not_shared_and_is_free_again_after_it(tmp_path):
    root = str(tmp_path)
    tests = os.path.dirname(os.path.abspath(__file__))
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(tests=tests, root=root)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == os.path.join(root, "gw0")  # the holder got the worker's folder
        other = cache_folder(root, "gw0")
        assert other != os.path.join(root, "gw0") and os.path.dirname(other) == root and os.path.isdir(other)
        assert cache_folder(root, "gw1") == os.path.join(root, "gw1")  # another worker's folder is free
    finally:
        holder.kill()
        holder.wait()
    probe = subprocess.run([sys.executable, "-c", HOLD.format(tests=tests, root=root).replace("time.sleep(60)", "0")],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == os.path.join(root, "gw0")  # free again once its holder has gone
