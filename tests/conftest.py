"""Test-session setup: float32 CPU JAX and a compilation cache shared by the tests.

Many tests build the same programs (each ``train.fit`` call jits its own step
function); JAX's persistent compilation cache, keyed by the compiled program,
lets later identical compilations load instead of recompiling.
"""
import os
import tempfile

import jax

jax.config.update("jax_compilation_cache_dir", os.environ.get(
    "EMFLOW_TEST_JAX_CACHE", os.path.join(tempfile.gettempdir(), "emflow-test-jax-cache")))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
