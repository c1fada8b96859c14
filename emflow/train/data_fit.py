"""``fit_to_data``: ``fit`` with defaults that suit a data set of any size, for tabular data and other small sets.

``fit``'s ``TrainConfig()`` defaults are the paper's (10 epochs, 1,000 warm-up steps), sized for
60,000 images. Here the training length follows the data instead: a random ``validation_fraction``
is held out, training stops when its likelihood has not improved for ``patience`` epochs and the
best parameters are returned (``EarlyStopping``): by default a moving average of the parameters over
about one epoch (``averaging.parameter_average``), which scores better than the last step's parameters on the
tabular benchmarks' validation splits. The learning rate warms up over one epoch
(at most 1,000 steps) before Noam's ``1/sqrt(step)`` decay. A mixture's EM round is one epoch
(responsibilities and pi renewed every epoch) and starts from the exact E-step of the partition-initialised
generators, with no round on the partition's hard responsibilities.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import optax

from emflow import checks
from emflow.train.averaging import averaged_params, is_decay, parameter_average
from emflow.train.config import TrainConfig, adam_with_clipping
from emflow.train.hooks import EarlyStopping, Hook, validation_split
from emflow.train.loop import FitResult, fit

MAX_EPOCHS = 200
MAX_AVERAGE_DECAY = 0.99  # fit_to_data's moving average of the parameters spans at most about 100 steps


def average_decay_for_data(steps_per_epoch: int) -> float | None:
    """``fit_to_data``'s default decay of the parameters' moving average: over about one epoch, at most
    about 100 steps (``min(0.99, 1 - 1 / steps_per_epoch)``); None (no average) at one step per epoch."""
    checks.integer("average_decay_for_data", "steps_per_epoch", steps_per_epoch, 1)
    return None if steps_per_epoch < 2 else min(MAX_AVERAGE_DECAY, 1.0 - 1.0 / steps_per_epoch)


def config_for_data(num_examples: int, **changes) -> TrainConfig:
    """A ``TrainConfig`` for ``num_examples`` training examples: at most ``MAX_EPOCHS`` epochs (early stopping
    ends the run), a warm-up of one epoch (at most 1,000 steps), Noam's decay, one E-step pass per EM round
    (``e_step="cached"``) and one EM round per epoch (``em_every=1``) without a warm-start round
    (``warm_start_rounds=0``), no sample grids; ``changes`` override any field."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, (int, np.integer)) or num_examples < 1:
        raise ValueError(f"config_for_data: num_examples must be an integer >= 1, got {num_examples!r}")
    batch_size = changes.get("batch_size", TrainConfig.batch_size)
    steps_per_epoch = max(int(num_examples) // batch_size, 1)
    defaults = dict(epochs=MAX_EPOCHS, warmup_steps=min(steps_per_epoch, 1000), schedule="noam", e_step="cached",
                    em_every=1, warm_start_rounds=0, num_samples=0)
    return TrainConfig(**{**defaults, **changes})


def fit_to_data(model, x: np.ndarray, preprocess=None, *, config: TrainConfig | None = None,
                validation_fraction: float = 0.1, patience: int = 10, seed: int = 0, hooks: Sequence[Hook] = (),
                average_decay: float | str | None = "epoch", optimizer: optax.GradientTransformation | None = None,
                **fit_kwargs) -> FitResult:
    """Train ``model`` on ``x: (N, *data_shape)`` with a validation split and early stopping; the best parameters.

    Args:
      model, preprocess: as in ``fit`` (``preprocess=None``: the data as they are).
      x: every training example; ``validation_fraction`` of them (at random, ``seed``) are held out.
      config: None: ``config_for_data(len of the training part, seed=seed)``.
      patience: epochs without a better validation likelihood before training stops.
      hooks: passed on to ``fit``, before the early stopping.
      average_decay: the validation split scores (and the result holds) a moving average of the parameters
        with this decay per step (``averaging.parameter_average``); ``"epoch"``: over about one epoch, at
        most about 100 steps (``average_decay_for_data``); None: the parameters themselves.
      optimizer: as in ``fit`` (None: ``make_optimizer(config)``'s), averaged when ``average_decay`` is set.
      fit_kwargs: ``fit``'s other keyword arguments (e.g. ``x_test``, ``workdir``, ``progress``, ``log``).

    Returns ``fit``'s ``FitResult`` whose state holds the (averaged) parameters of the best validation
    epoch as both ``params`` and ``old_params``; each record of its history has ``validation_nll`` (nats
    per example, of those parameters), while its training and test NLLs are the trained parameters'.

    Raises:
      ValueError: a data set too small to hold out ``validation_fraction`` with one example on each side;
        an ``average_decay`` that is not ``"epoch"``, None or a number in (0, 1).
    """
    if not (average_decay is None or isinstance(average_decay, str) and average_decay == "epoch"
            or is_decay(average_decay)):
        raise ValueError(f"fit_to_data: average_decay must be 'epoch', None or a number in (0, 1), "
                         f"got {average_decay!r}")
    x_train, x_val = validation_split(x, validation_fraction, seed)
    config = config_for_data(len(x_train), seed=seed) if config is None else config
    steps_per_epoch = len(x_train) // config.batch_size  # as fit counts them
    if average_decay == "epoch":
        average_decay = average_decay_for_data(max(steps_per_epoch, 1))
    params_of = None
    if average_decay is not None:
        optimizer = parameter_average(optimizer or adam_with_clipping(config, config.epochs * steps_per_epoch),
                                      average_decay)
        params_of = averaged_params
    stop = EarlyStopping(model, preprocess, x_val, patience=patience, seed=seed, params_of=params_of)
    return fit(model, config, preprocess, x_train, hooks=[*hooks, stop], optimizer=optimizer, **fit_kwargs)
