"""Test-session setup: float32 CPU JAX, fast-compiling XLA flags, and an opt-in compilation cache.

Many tests build the same programs (each ``train.fit`` call jits its own step function); with
``EMFLOW_TEST_JAX_CACHE`` set to a folder, JAX's persistent compilation cache, keyed by the compiled
program, lets later identical compilations load instead of recompiling. It is off by default: on
jaxlib 0.10.2's CPU backend, writing and reading its entries crashed a worker with a segmentation fault
(in ``put_executable_and_time`` and ``get_executable_and_time``) in three clean-clone CI runs, once with
no other process sharing the folder.
"""
import os
import pathlib

import jax
import pytest

from emflow.xla_flags import jax_versions, unknown_xla_flags
from jax_cache import cache_folder

# The tests' programs are tiny, so compiling them costs far more than running them: XLA:CPU's
# backend at -O0 without its expensive LLVM passes compiled tests/test_glow.py in 122 s instead
# of 218 s (this 2-core CPU, cold cache). XLA:CPU's MLIR fusion emitters cost most of what is
# left: without them (the older elemental emitters) a tiny `mnist_genmm` run spends 3.7 s in XLA
# compilation instead of 9.0 s. Every identity the tests check holds at any optimisation level
# and with either emitter.
#
# XLA aborts the whole process on a flag it does not know, and jaxlib 0.11 dropped the emitter
# switch, so each flag is set only where the installed XLA accepts it (one child process, in the
# controller only: xdist workers, subprocesses and notebook kernels inherit the result).
# `tests/test_xla_flags.py` fails, naming the flag, when a flag is refused by a jaxlib that
# FAST_COMPILE says knows it. A flag the user set that XLA refuses stops the session with its name.
FAST_COMPILE = {  # flag -> the first jaxlib whose XLA no longer knows it (None: every supported jaxlib)
    "--xla_backend_optimization_level=0": None,
    "--xla_llvm_disable_expensive_passes=true": None,
    "--xla_cpu_use_fusion_emitters=false": (0, 11),
}


def pytest_configure(config):
    """Set the FAST_COMPILE flags that XLA accepts; stop, naming them, on user flags that it refuses."""
    if "PYTEST_XDIST_WORKER" in os.environ or "EMFLOW_TEST_XLA_FLAGS" in os.environ:
        return
    user_flags = os.environ.get("XLA_FLAGS", "")
    wanted = [f for f in FAST_COMPILE if f.split("=")[0] not in user_flags]
    refused = set(unknown_xla_flags(" ".join([user_flags, *wanted])))
    refused_user_flags = [f for f in user_flags.split() if f in refused]
    if refused_user_flags:
        raise pytest.UsageError(f"XLA_FLAGS holds flag(s) that the installed XLA ({jax_versions()}) does not know: "
                                f"{' '.join(refused_user_flags)}; remove them to run the tests")
    applied = [f for f in wanted if f not in refused]
    os.environ["XLA_FLAGS"] = " ".join([user_flags, *applied]).strip()
    os.environ["EMFLOW_TEST_XLA_FLAGS"] = " ".join(applied)
    os.environ["EMFLOW_TEST_XLA_FLAGS_REFUSED"] = " ".join(f for f in wanted if f in refused)



# Opt-in: one cache folder per process, never shared with a live one (tests/jax_cache.py says why).
if os.environ.get("EMFLOW_TEST_JAX_CACHE"):
    jax.config.update("jax_compilation_cache_dir", cache_folder(
        os.environ["EMFLOW_TEST_JAX_CACHE"], os.environ.get("PYTEST_XDIST_WORKER", "main")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The real data: ``$EMFLOW_DATA_DIR``, else ``<repo>/../shared/data``; the test is skipped without it."""
    env = os.environ.get("EMFLOW_DATA_DIR")
    d = pathlib.Path(env) if env else pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not d.is_dir():
        pytest.skip(f"real data not found at {d}: set EMFLOW_DATA_DIR or provide <repo>/../shared/data "
                    "(mnist/, fashion_mnist/, letter/, satimage/)")
    return d


# Longest first: pytest-xdist (--dist loadfile) hands out whole files in collection order, so the
# heavy files go first and the short ones fill in at the end, instead of a long file running alone
# on one worker while the other idles (measured: the last 12% of a cold run took over 3 minutes).
HEAVY_FIRST = ("test_multiprocess.py", "test_experiments.py", "test_classify_sklearn.py", "test_sharding.py",
               "test_notebooks.py", "test_faults.py", "test_glow.py", "test_embedding_docs.py", "test_classify.py",
               "test_train.py", "test_vector_flow.py", "test_throughput.py", "test_mixture_toy.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(pathlib.Path(str(item.fspath)).name, len(HEAVY_FIRST)))
