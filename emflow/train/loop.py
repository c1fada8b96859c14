"""``fit``: Algorithm 1 over epochs and EM rounds, built of the other modules of ``emflow.train``."""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import pathlib
import time
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np
import optax
from tqdm.auto import tqdm

from emflow import em
from emflow.parallel import distributed, sharding
from emflow.em import e_steps
from emflow.mixtures import partition as partition_lib
from emflow.train.checkpoint import WorkdirWriteError, to_json_config, version_record
from emflow.interfaces import Quantizer
from emflow.train.config import TrainConfig, e_step_schedule, make_optimizer, without_log_pi
from emflow.train.evaluation import Evaluator, epoch_record, format_record
from emflow.train.hooks import ComponentPlot, EpochEnd, Hook, MetricsFile, SampleGrids, run_hooks
from emflow.train.start import check_arguments, check_event_shape, check_inputs, identity_preprocess, place_data, start_params
from emflow.train.state import (
    EMState,
    closing_prior_update,
    em_round_update,
    init_state,
    raise_if_nonfinite,
    start_epoch,
    train_step,
)
from emflow.train.workdir import open_workdir, resume_state

Array = jax.Array


@dataclasses.dataclass
class FitResult:
    state: EMState
    history: list[dict]
    workdir: pathlib.Path | None
    partition: partition_lib.Partition | None = None  # the init batch's partition (None: the shared init)


class RunKeys(NamedTuple):
    """The keys of a run, all from its seed: init (and the EM round updates), data order, step noise,
    evaluation noise, samples, and the cached E-step's passes."""

    init: Array
    data: Array
    noise: Array
    eval: Array
    sample: Array
    cache: Array

    @classmethod
    def from_seed(cls, seed: int) -> "RunKeys":
        return cls(*jax.random.split(jax.random.PRNGKey(seed), 6))


def fit(
    model,
    config: TrainConfig,
    preprocess: Callable | None,
    x_train: np.ndarray,
    x_test: np.ndarray | None = None,
    *,
    workdir: str | pathlib.Path | None = None,
    resume: bool = False,
    run_info: dict | None = None,
    mesh=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    y_test: np.ndarray | None = None,
    e_step_of_round: Callable[[int], e_steps.EStep] | None = None,
    hooks: Sequence[Hook] = (),
    optimizer: optax.GradientTransformation | None = None,
    initial_params: dict | None = None,
) -> FitResult:
    """Train ``model`` with EM on raw ``x_train`` (e.g. uint8 images), evaluating on ``x_test`` each epoch.

    Args:
      model: a ``GenMM`` or ``LatMM``.
      config: the ``TrainConfig``.
      preprocess: ``preprocess(key, raw_batch) -> x`` (e.g. a ``Dequantizer``); its
        ``nats_per_dim`` / ``bits_per_dim`` convert log-likelihoods when present.
        ``None``: the data are used as they are (continuous, e.g. tabular features).
      x_train, x_test: raw data, ``(N, *data_shape)``: numpy (copied to every device), or a ``jax.Array``
        already placed (``emflow.parallel.sharding.from_process_rows``: each process holds its own examples).
      workdir: where metrics (``metrics.jsonl``), plots and checkpoints go; None keeps nothing.
      resume: continue the run in ``workdir`` from its latest checkpoint.
      run_info: extra JSON-able facts recorded with the configuration (dataset, scheme, ...).
      mesh: a ``jax.sharding.Mesh`` from ``emflow.parallel.sharding.make_mesh`` to train data
        parallel and/or component parallel; None: one device.
      y_test: class labels of ``x_test`` (``(N_test,)`` ints, placed like ``x_test``): after every EM round the
        metrics get a per-component report (``emflow.evaluation.diagnostics``) and ``components.png``.
      e_step_of_round: ``em_round -> emflow.em.e_steps.EStep``, the E-step of each EM round (0-based);
        None: ``e_step_schedule(config, ...)``.
      hooks: ``emflow.train.hooks`` objects run after each epoch, before the run's own (metrics
        file, sample grids, component plot with a ``workdir``) and before its checkpoint.
      optimizer: any optax transformation for the M-steps (applied to every parameter but ``log_pi``:
        ``without_log_pi``); None: ``make_optimizer(config)``. A run's checkpoint records its
        ``config``, not a custom optimizer: resume it with the same one.
      initial_params: start from these parameters (the tree ``model.init`` gives) instead of the model's
        own init: no partition, so no warm start (e.g. components placed by known labels).

    Raises:
      ValueError: non-finite data; ``ConfigMismatchError`` when resuming a different configuration.
      FileExistsError: ``workdir`` holds checkpoints and ``resume`` is False.
      NonFiniteLossError: a NaN/Inf loss; the last good checkpoint stays as it was.
      HookError: a hook raised; the epoch it ran after is not checkpointed.
    """
    check_arguments(model, config, preprocess, workdir, hooks, optimizer, e_step_of_round)
    preprocess = preprocess or identity_preprocess
    check_inputs(config, preprocess, x_train, x_test, y_test)
    run_config = to_json_config({"model": model, "train": config, "run": run_info or {}})
    workdir = pathlib.Path(workdir) if workdir is not None else None
    # Refuse a workdir (or a resume) before anything compiles.
    checkpointer, latest = open_workdir(workdir, resume, run_config, log) if workdir is not None else (None, None)
    check_event_shape(model, preprocess, x_train, x_test)  # after the workdir: a resumed run's own model is named first
    run = _start_run(model, config, preprocess, x_train, x_test, y_test, mesh=mesh, optimizer=optimizer,
                     initial_params=initial_params, e_step_of_round=e_step_of_round, hooks=hooks, workdir=workdir,
                     resume_from=None if latest is None else checkpointer, progress=progress, log=log)
    try:
        state = _run_epochs(run, checkpointer, run_config, log)
    finally:
        if checkpointer is not None:
            checkpointer.close()
    return FitResult(state, run.history, workdir, run.part)


class _Run(NamedTuple):
    """A started run: its state (fresh, or restored from the workdir's newest readable checkpoint), the epoch it
    starts at, the history so far, one epoch's runner, the E-step of each EM round, the hooks (the caller's,
    then the run's own outputs) and the init batch's partition (None: the shared init)."""

    state: EMState
    first_epoch: int
    history: list[dict]
    run_epoch: "_EpochRunner"
    e_step_of_round: Callable[[int], e_steps.EStep]
    hooks: list[Hook]
    part: partition_lib.Partition | None


def _start_run(model, config: TrainConfig, preprocess, x_train, x_test, y_test, *, mesh, optimizer, initial_params,
               e_step_of_round, hooks, workdir, resume_from, progress: bool, log) -> _Run:
    """Everything before the first epoch: the keys, the optimizer, the data placed, the starting parameters
    (partition and warm start, or ``initial_params``), the state on the mesh, restored from ``resume_from``
    (a ``Checkpointer``; None: a fresh run), the jitted step, the evaluator and the epoch runner."""
    keys, steps_per_epoch = RunKeys.from_seed(config.seed), len(x_train) // config.batch_size
    optimizer = (make_optimizer(config, total_steps=config.epochs * steps_per_epoch) if optimizer is None else
                 without_log_pi(optimizer))
    train_data, test_data = place_data(x_train, x_test, mesh)
    params, part, part_labels = start_params(model, keys.init, train_data, preprocess, config, log, initial_params)
    e_step_of_round = e_step_of_round or e_step_schedule(config, math.prod(model.event_shape), part is not None,
                                                         model.num_components)
    model, state, out_shardings = _on_mesh(model, init_state(model, optimizer, params), mesh)
    history, first_epoch = [], 0
    if resume_from is not None:
        state, first_epoch, history = resume_state(resume_from, workdir, state, log)
    step_fn = _step_fn(model, optimizer, preprocess, config.batch_size, mesh, out_shardings)
    evaluator = Evaluator(model, preprocess, config, train_data, test_data, y_test, keys.eval)
    hooks = [*hooks, *_output_hooks(workdir, model, preprocess, config, keys.sample)]
    exact_posterior_fn = jax.jit(lambda p, raw, k: em.posterior(model, p, preprocess(k, raw)))
    run_epoch = _EpochRunner(model, config, keys, preprocess, train_data, step_fn, evaluator, exact_posterior_fn,
                             steps_per_epoch, progress and distributed.is_primary(), part, part_labels)
    return _Run(state, first_epoch, history, run_epoch, e_step_of_round, hooks, part)


def _run_epochs(run: _Run, checkpointer, run_config: dict, log) -> EMState:
    """The epochs from ``run.first_epoch`` on, each logged, then its hooks and its checkpoint; stops early when
    a hook asks to; then every hook's ``finish``. Appends each epoch's record to ``run.history``."""
    state, config = run.state, run.run_epoch.config
    round_state = None  # the E-step state of the current round: set when it starts, or when a run resumes inside it
    for epoch in range(run.first_epoch, config.epochs):
        state, round_state, record = run.run_epoch(state, round_state, run.e_step_of_round(epoch // config.em_every),
                                                   epoch)
        run.history.append(record)
        log(format_record(record))
        if _hooks_then_checkpoint(run.hooks, checkpointer,
                                  EpochEnd(epoch, state, record, run.history, record["em_update"]),
                                  {"epoch": epoch, "config": run_config, "seed": config.seed}):
            break
    for hook in run.hooks:
        state = hook.finish(state)
    return state


@dataclasses.dataclass(frozen=True)
class _EpochRunner:
    """One epoch of a run: the round's E-step state when a round starts, the M-steps, the end-of-epoch update and
    measurements; ``(state, round_state, record)`` with the epoch's timings in its record."""

    model: object
    config: TrainConfig
    keys: RunKeys
    preprocess: Callable
    train_data: Array
    step_fn: Callable
    evaluator: Evaluator
    exact_posterior_fn: Callable
    steps_per_epoch: int
    progress: bool
    part: partition_lib.Partition | None
    part_labels: Array | None

    def __call__(self, state: EMState, round_state, e_step: e_steps.EStep, epoch: int) -> tuple:
        t0, config = time.time(), self.config
        if epoch % config.em_every == 0 or round_state is None:  # a round starts (or resumes): Phi_old is fixed
            round_state = e_step.init(_round_data(self.model, state, self.train_data, self.preprocess, self.keys,
                                                  epoch, config, self.part, self.part_labels))
        state = _train_epoch(self.step_fn, state, round_state, e_step, self.train_data, self.keys, epoch,
                             self.steps_per_epoch, config, self.progress, self.evaluator.to_nats)
        train_seconds = time.time() - t0
        state, record = _end_epoch(self.model, state, config, self.keys, epoch, (epoch + 1) % config.em_every == 0,
                                   e_step.name, self.evaluator, self.exact_posterior_fn, self.train_data)
        record["train_seconds"] = round(train_seconds, 3)  # E-step (cached or per batch) + M-steps
        record["seconds"] = round(time.time() - t0, 2)       # ... + this epoch's evaluations
        return state, round_state, record


def _round_data(model, state: EMState, train_data: Array, preprocess, keys: RunKeys, epoch: int,
                config: TrainConfig, part, part_labels) -> e_steps.RoundData:
    """What the E-step of the round that ``epoch`` belongs to reads when it starts (its noise from the round's
    first epoch, so a resumed round draws the same)."""
    return e_steps.RoundData(model, state.old_params, train_data, preprocess,
                             jax.random.fold_in(keys.cache, epoch - epoch % config.em_every), config.eval_batch_size,
                             part_labels, None if part is None else part.centroids)


def _end_epoch(model, state: EMState, config: TrainConfig, keys: RunKeys, epoch: int, em_round: bool,
               e_step_name: str, evaluator: Evaluator, exact_posterior_fn,
               train_data: Array) -> tuple[EMState, dict]:
    """After an epoch's M-steps: the EM round's update (pi, Phi_old, dead components) when one ends, the
    closing pi update after the last epoch (``config.final_prior_update``), then the epoch's record."""
    round_info = closing = None
    if em_round:
        state, round_info = em_round_update(model, state, config.dead_fraction)
    if config.final_prior_update and epoch == config.epochs - 1:
        state, closing = closing_prior_update(model, state, exact_posterior_fn, train_data,
                                              jax.random.fold_in(keys.cache, config.epochs), config.eval_batch_size)
    record = epoch_record(epoch, state, e_step_name, em_round, evaluator.measure(state.params, em_round),
                          round_info, closing, evaluator.to_nats)
    return state, record


def _on_mesh(model, state: EMState, mesh):
    """``(model, state, out_shardings of the step)``: placed on ``mesh`` (before a resume, so that each process
    restores its own shards into place), or as they are without one."""
    if mesh is None:
        return model, state, None
    model = sharding.for_mesh(model, mesh)
    state = sharding.shard_tree(state, mesh, model.num_components)
    return model, state, (sharding.tree_shardings(state, mesh, model.num_components), sharding.replicated(mesh))


def _step_fn(model, optimizer, preprocess, batch_size: int, mesh, out_shardings):
    """The jitted EM step ``(state, round_state, data, perm, index, key, *, update) -> (state, metrics)``.

    Batch ``index`` of the permutation ``perm``, preprocessed with ``key``; the E-step's ``update``
    gives its responsibilities (static: one program per variant). The state is donated: the new
    Phi, Phi_old and optimizer state are written over the old ones (checkpoints are complete on
    disk before the next step runs: ``Checkpointer.save`` waits).
    """
    @functools.partial(jax.jit, out_shardings=out_shardings, donate_argnums=0, static_argnames="update")
    def step_fn(state, round_state, train_data, perm, index, key, *, update):
        idx = jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size)
        x = preprocess(key, train_data[idx])
        if mesh is not None:
            x = jax.lax.with_sharding_constraint(x, sharding.batch_sharding(mesh, x.ndim))
        return train_step(model, optimizer, state, x, update(round_state, model, state.old_params, x, idx))

    return step_fn


def _train_epoch(step_fn, state: EMState, round_state, e_step: e_steps.EStep, train_data: Array, keys: RunKeys,
                 epoch: int, steps_per_epoch: int, config: TrainConfig, progress: bool, to_nats) -> EMState:
    """The M-steps of one epoch: data order ``permutation(fold_in(keys.data, epoch))``, step noise
    ``fold_in(keys.noise, global step)``; stops with ``NonFiniteLossError`` on a non-finite loss."""
    state = start_epoch(state)
    perm = jax.random.permutation(jax.random.fold_in(keys.data, epoch), train_data.shape[0])
    bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress,
               leave=False, dynamic_ncols=True)
    for i in bar:
        key_step = jax.random.fold_in(keys.noise, epoch * steps_per_epoch + i)
        state, metrics = step_fn(state, round_state, train_data, perm, i, key_step, update=e_step.update)
        if i % 20 == 0 or i == steps_per_epoch - 1:
            raise_if_nonfinite(state, epoch, i)
            bar.set_postfix(loss=f"{float(metrics['loss']):.2f}", nll=f"{float(to_nats(-metrics['nll'])):.4f} nats/dim")
    raise_if_nonfinite(state, epoch, steps_per_epoch - 1)  # also waits for the last step
    return state


def _output_hooks(workdir, model, preprocess, config: TrainConfig, key: Array) -> list[Hook]:
    """What a run with a ``workdir`` writes: the metrics file and NLL plot, sample grids (images, with
    ``config.num_samples``), the per-component plot."""
    if workdir is None:
        return []
    hooks = [MetricsFile(workdir)]
    if config.num_samples and isinstance(preprocess, Quantizer) and len(model.event_shape) == 3:
        hooks.append(SampleGrids(workdir, model, preprocess, config.num_samples, config.sample_temperature, key))
    return hooks + [ComponentPlot(workdir)]


def _hooks_then_checkpoint(hooks, checkpointer, end: EpochEnd, record: dict) -> bool:
    """The epoch's hooks, then its checkpoint (``record`` with the history and versions); whether a hook
    asks to stop. A hook that raises leaves the epoch unsaved (``HookError``)."""
    with _naming_intact_checkpoints(checkpointer):
        stop = run_hooks(hooks, end)
    if checkpointer is not None:
        checkpointer.save(end.epoch, end.state, {**record, "history": end.history, **version_record()})
    return stop


@contextlib.contextmanager
def _naming_intact_checkpoints(checkpointer):
    """A ``WorkdirWriteError`` from a hook, with the checkpoints that are still intact named."""
    try:
        yield
    except WorkdirWriteError as err:
        there = [] if checkpointer is None else [e + 1 for e in checkpointer.epochs()]
        raise WorkdirWriteError(f"{err}. The checkpoints already there (epochs {there}) are intact; free disk "
                                "space or fix permissions, then resume.") from err.__cause__
