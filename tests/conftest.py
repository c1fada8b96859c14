"""Test-session setup: float32 CPU JAX and a compilation cache shared by the tests.

Many tests build the same programs (each ``train.fit`` call jits its own step
function); JAX's persistent compilation cache, keyed by the compiled program,
lets later identical compilations load instead of recompiling.
"""
import os
import pathlib
import tempfile

# The tests' programs are tiny, so compiling them costs far more than running them: XLA:CPU's
# backend at -O0 without its expensive LLVM passes compiled tests/test_glow.py in 122 s instead
# of 218 s (this 2-core CPU, cold cache). XLA:CPU's MLIR fusion emitters cost most of what is
# left: without them (the older elemental emitters) a tiny `mnist_genmm` run spends 3.7 s in XLA
# compilation instead of 9.0 s. Set before jax is imported; subprocesses and notebook kernels
# inherit it. Every identity the tests check holds at any optimisation level and with either emitter.
FAST_COMPILE = ("--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
                "--xla_cpu_use_fusion_emitters=false")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE).strip()

import jax  # noqa: E402
import pytest

jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "EMFLOW_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "emflow-test-jax-cache")))
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
