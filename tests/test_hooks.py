"""Hooks: a failing hook stops the run before that epoch's checkpoint; early stopping returns the best
parameters; the validation split; the worked examples (a hook and an E-step) run in fit unchanged."""
import json

import jax
import numpy as np
import pytest

import emflow
from emflow import train
from emflow.train.checkpoint import Checkpointer
from emflow.contrib.hard_em import hard
from emflow.contrib.pi_plot import PiPlot

MODEL = emflow.GenMM(emflow.VectorFlow(2, num_steps=1, hidden=8), num_components=2)


def _toy(n, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 2)) + np.where(rng.random(n)[:, None] < 0.3, -2.0, 2.0)).astype(np.float32)


def _config(**kw):
    return train.TrainConfig(**{**dict(epochs=3, batch_size=32, em_every=1, warmup_steps=5, learning_rate=1e-2,
                                       num_samples=0, seed=1), **kw})


class FailsAfterEpoch(train.BaseHook):
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, end):
        if end.epoch == self.epoch:
            raise RuntimeError("disk on fire")
        return False


def test_a_failing_hook_is_named_and_its_epoch_is_not_checkpointed(tmp_path):
    with pytest.raises(train.HookError, match=r"hook FailsAfterEpoch failed after epoch 2 \(RuntimeError: disk on fire\)"):
        train.fit(MODEL, _config(), None, _toy(128), _toy(64, 1), workdir=tmp_path, progress=False,
                  log=lambda s: None, hooks=[FailsAfterEpoch(1)])
    assert Checkpointer(tmp_path).epochs() == [0]  # epoch 1's checkpoint only, complete
    assert [json.loads(line)["epoch"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
    emflow.load(tmp_path)  # what is there loads


def test_early_stopping_returns_the_parameters_with_the_best_validation_likelihood():
    """32 training examples and a wide flow overfit fast; the run stops and hands back the best epoch's Phi."""
    x_train, x_val = train.validation_split(_toy(40, 2), 0.2, seed=0)
    assert x_train.shape == (32, 2) and x_val.shape == (8, 2)
    model = emflow.GenMM(emflow.VectorFlow(2, num_steps=2, hidden=64), num_components=2)
    stopper = train.EarlyStopping(model, None, x_val, patience=2)
    result = train.fit(model, _config(epochs=40, batch_size=8, learning_rate=3e-2, warmup_steps=1), None, x_train,
                       progress=False, log=lambda s: None, hooks=[stopper])
    val = [r["validation_nll"] for r in result.history]
    assert len(val) < 40 and stopper.best_epoch == int(np.argmin(val)) and len(val) == stopper.best_epoch + 3
    got = -float(np.mean(model.log_prob(result.state.params, x_val)))
    assert got == pytest.approx(min(val), rel=1e-5)  # recomputed independently: the returned Phi is the best one
    for a, b in zip(jax.tree.leaves(result.state.params), jax.tree.leaves(result.state.old_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_validation_split_and_its_refusals():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    x_train, x_val, y_train, y_val = train.validation_split(x, 0.3, seed=4, y=y)
    assert len(x_val) == 3 and sorted(np.concatenate([y_train, y_val]).tolist()) == list(range(10))
    np.testing.assert_array_equal(x_val[:, 0] / 2, y_val)  # rows stay with their labels
    for fraction, message in [(0.0, r"fraction must lie in \(0, 1\), got 0.0"), (0.01, "10 examples are too few")]:
        with pytest.raises(ValueError, match=message):
            train.validation_split(x, fraction)
    with pytest.raises(ValueError, match="patience must be an integer >= 1, got 0"):
        train.EarlyStopping(MODEL, None, x, patience=0)
    with pytest.raises(ValueError, match="x_val is empty"):
        train.EarlyStopping(MODEL, None, x[:0])


def test_the_worked_examples_a_hook_and_an_e_step_run_in_fit(tmp_path):
    result = train.fit(MODEL, _config(), None, _toy(128), None, workdir=tmp_path, progress=False, log=lambda s: None,
                       hooks=[PiPlot(tmp_path)], e_step_of_round=lambda r: hard())
    assert (tmp_path / "pi.png").stat().st_size > 0
    assert [r["e_step"] for r in result.history] == ["hard"] * 3
    counts = np.asarray(result.history[0]["mean_gamma"]) * 128  # hard responsibilities: whole examples
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
