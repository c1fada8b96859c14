"""The EM trainer: Algorithm 1 with a jitted step, data resident on the device, checkpoints and hooks::

    trainer state (EMState): Phi (params), Phi_old (old_params), optimizer state, step,
                             and the epoch's accumulated responsibilities

    every EM round:  the round's E-step (emflow.em.e_steps) starts: Phi_old is fixed until its end
    every step:      gamma = E-step with Phi_old;  one Adam step on -Q(Phi, Phi_old)/n
    every epoch:     train and test NLL, the metrics record; hooks (metrics file, plots, sample grids); checkpoint
    every t_EM:      pi <- mean gamma of the epoch (eq. 16);  Phi_old <- Phi;  dead components logged;
                     per-component report (labelled test data)
    after the last epoch (``final_prior_update``): pi <- mean gamma under the final Phi

The modules, in the order a run meets them: ``config`` (``TrainConfig``, the optimizer, the
E-step schedule), ``workdir`` (refusing to overwrite or to resume another run), ``start``
(inputs checked, parameters initialised from a partition), ``state`` (the pure updates),
``evaluation`` (the epoch's record), ``hooks`` (what a run writes), ``loop`` (``fit``);
``data_fit`` holds ``fit_to_data``: ``fit`` with a validation split, early stopping and a warm-up sized to the data,
scoring a moving average of the parameters (``averaging``).

The data order of epoch ``e`` is ``permutation(fold_in(key_data, e))`` and the noise of step
``s`` is ``fold_in(key_noise, s)``, both from the seed: a resumed run sees the same batches
and noise as an uninterrupted one and ends with the same parameters.
"""
from emflow.batches import map_batches
from emflow.train.averaging import AverageState, averaged_params, parameter_average
from emflow.train.config import (
                                 TEMPERINGS,
                                 TrainConfig,
                                 adam_with_clipping,
                                 e_step_schedule,
                                 learning_rate_schedule,
                                 make_optimizer,
                                 without_log_pi,
)
from emflow.train.evaluation import Evaluator, epoch_record, format_record, mean_log_prob
from emflow.train.hooks import (
                                 BaseHook,
                                 ComponentPlot,
                                 EarlyStopping,
                                 EpochEnd,
                                 Hook,
                                 HookError,
                                 MetricsFile,
                                 SampleGrids,
                                 validation_split,
)
from emflow.train.loop import FitResult, RunKeys, fit
from emflow.train.data_fit import average_decay_for_data, config_for_data, fit_to_data
from emflow.train.start import (
                                 check_finite_data,
                                 check_inputs,
                                 features_of_more_examples,
                                 identity_preprocess,
                                 init_params,
                                 partition_centroids,
                                 place_on_more_examples,
                                 start_params,
)
from emflow.train.state import (
                                 EMState,
                                 NonFiniteLossError,
                                 closing_prior_update,
                                 em_round_update,
                                 em_update,
                                 init_state,
                                 start_epoch,
                                 train_step,
)
from emflow.train.workdir import RESUMABLE_CHANGES

__all__ = [
    "AverageState", "BaseHook", "ComponentPlot", "EMState", "EarlyStopping", "EpochEnd", "Evaluator", "FitResult", "Hook", "HookError",
    "MetricsFile", "NonFiniteLossError", "RESUMABLE_CHANGES", "RunKeys", "SampleGrids", "TEMPERINGS", "TrainConfig",
    "adam_with_clipping", "average_decay_for_data", "averaged_params", "check_finite_data", "check_inputs", "config_for_data", "fit_to_data", "closing_prior_update", "e_step_schedule", "em_round_update", "em_update",
    "epoch_record", "features_of_more_examples", "fit", "format_record", "identity_preprocess", "init_params",
    "init_state", "learning_rate_schedule", "make_optimizer", "map_batches", "mean_log_prob", "parameter_average", "partition_centroids",
    "place_on_more_examples", "start_epoch", "start_params", "train_step", "validation_split", "without_log_pi",
]
