"""XLA flags: refused flags named before any computation; the suite's own flags valid for this jaxlib."""
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from emflow.xla_flags import check_xla_flags, supported_xla_flags, unknown_xla_flags
from tests.conftest import FAST_COMPILE


def _jaxlib() -> tuple[int, int]:
    major, minor = version("jaxlib").split(".")[:2]
    return int(major), int(minor)


def test_unknown_flags_are_named_and_known_ones_pass():
    assert unknown_xla_flags("") == []
    assert unknown_xla_flags("--xla_backend_optimization_level=0") == []
    assert unknown_xla_flags("--xla_backend_optimization_level=0 --xla_no_such_flag=1 --xla_nor_this=2") == [
        "--xla_no_such_flag=1", "--xla_nor_this=2"]
    accepted, refused = supported_xla_flags(["--xla_backend_optimization_level=0", "--xla_no_such_flag=1"])
    assert (accepted, refused) == (["--xla_backend_optimization_level=0"], ["--xla_no_such_flag=1"])


def test_check_names_the_flag_and_the_jax_version():
    check_xla_flags("")
    with pytest.raises(ValueError, match="--xla_no_such_flag=1") as e:
        check_xla_flags("--xla_no_such_flag=1")
    assert "--xla_no_such_flag=1" in str(e.value) and f"jaxlib {version('jaxlib')}" in str(e.value)
    with pytest.raises(TypeError, match="flags"):
        unknown_xla_flags(["--xla_backend_optimization_level=0"])


def test_fast_compile_flags_are_those_this_jaxlib_knows():
    """Every FAST_COMPILE flag this jaxlib should know was applied; a refused one is named here."""
    applied = os.environ["EMFLOW_TEST_XLA_FLAGS"].split()
    refused = os.environ["EMFLOW_TEST_XLA_FLAGS_REFUSED"].split()
    for flag, gone_in in FAST_COMPILE.items():
        if flag.split("=")[0] in os.environ.get("XLA_FLAGS", "") and flag not in applied + refused:
            continue  # the user set this flag themselves
        expected_known = gone_in is None or _jaxlib() < gone_in
        assert (flag in applied) == expected_known, (
            f"{flag}: jaxlib {version('jaxlib')} {'refuses' if expected_known else 'accepts'} it, "
            f"against FAST_COMPILE's table; update the table in tests/conftest.py")


@pytest.mark.parametrize("argv", [["-m", "experiments.mnist_genmm", "--help"],
                                  ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--co", "tests/test_xla_flags.py"]])
def test_a_refused_user_flag_stops_an_experiment_and_the_tests_with_its_name(argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EMFLOW_TEST_XLA", "PYTEST_XDIST"))}
    env["XLA_FLAGS"] = "--xla_no_such_flag=1"
    proc = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "--xla_no_such_flag=1" in out and f"jaxlib {version('jaxlib')}" in out, out[-2000:]
