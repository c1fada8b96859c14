"""train.data_fit: fit_to_data with a validation split, early stopping that returns the best epoch, a warm-up sized to the data."""
import numpy as np
import pytest

import emflow
from emflow import train


def test_config_for_data_warms_up_over_one_epoch_at_most_1000_steps():
    assert train.config_for_data(4000).warmup_steps == 4000 // 64
    assert train.config_for_data(4000, batch_size=100).warmup_steps == 40
    assert train.config_for_data(10 ** 6).warmup_steps == 1000
    assert train.config_for_data(10).warmup_steps == 1          # fewer examples than a batch: one step
    config = train.config_for_data(4000, epochs=7, seed=3)
    assert (config.epochs, config.seed, config.schedule, config.e_step) == (7, 3, "noam", "cached")
    assert (config.em_every, config.warm_start_rounds) == (1, 0)  # an EM round per epoch, no hard-partition round
    assert train.config_for_data(4000, em_every=5).em_every == 5
    with pytest.raises(ValueError, match=r"num_examples must be an integer >= 1, got 0"):
        train.config_for_data(0)


def test_early_stopping_returns_the_parameters_of_the_best_validation_epoch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 0.5, (200, 2)), rng.normal(2, 0.5, (200, 2))]).astype(np.float32)
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=2, hidden=8), 2)
    config = train.config_for_data(360, epochs=12, batch_size=32, seed=1, learning_rate=2e-2)
    result = train.fit_to_data(model, x, config=config, patience=2, seed=1, progress=False, log=lambda s: None)
    nlls = [r["validation_nll"] for r in result.history]
    _, x_val = train.validation_split(x, 0.1, 1)   # the held-out part, computed here again
    assert len(x_val) == 40
    np.testing.assert_allclose(-np.mean(model.log_prob(result.state.params, x_val)), min(nlls), rtol=1e-5)
    stopped = len(nlls) < 12
    assert not stopped or int(np.argmin(nlls)) == len(nlls) - 3   # stopped: the best was `patience` epochs back


def test_a_data_set_too_small_to_hold_out_is_refused():
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=1, hidden=4), 1)
    with pytest.raises(ValueError, match=r"5 examples are too few to hold out a fraction 0.1"):
        train.fit_to_data(model, np.zeros((5, 2), np.float32), progress=False)
