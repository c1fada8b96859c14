"""``train.fit`` ends where the recorded reference run ended (``tests/fit_reference.py``), to float tolerance.

The record was written by the trainer before the loop was restructured; every case must
still end with the same parameters, test NLL per epoch, pi per epoch and E-step names.
The tolerance: float32 rounding over a few dozen Adam steps, which differs between XLA
versions and optimisation levels; jax 0.12.1 (default emitters) against the record's 0.10.2
(elemental emitters) differs by at most 2.5e-6 relative, per leaf sum and per test NLL.
"""
import json

import numpy as np
import pytest

from fit_reference import CASES, PATH, run

RECORD = json.loads(PATH.read_text())
RTOL = 2e-5


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_ends_where_the_recorded_run_ended(name):
    got, want = run(name), RECORD[name]
    assert got["e_step"] == want["e_step"]
    assert got["leaves"].keys() == want["leaves"].keys()
    for path, (shape, total, l1) in want["leaves"].items():
        g_shape, g_total, g_l1 = got["leaves"][path]
        assert g_shape == shape, path
        scale = max(l1, 1e-6)  # a sum near zero is compared on the scale of its terms
        assert abs(g_total - total) <= RTOL * scale, (path, g_total, total)
        assert g_l1 == pytest.approx(l1, rel=RTOL, abs=1e-6), path
    np.testing.assert_allclose(got["test_nll"], want["test_nll"], rtol=RTOL)
    np.testing.assert_allclose(got["pi"], want["pi"], rtol=RTOL)
