"""A run's folder: refusing to overwrite or to resume another configuration, resuming from the newest readable checkpoint."""
from __future__ import annotations

import json
import pathlib

import jax

from emflow.parallel import distributed
from emflow.train.checkpoint import (
    Checkpointer,
    ConfigMismatchError,
    CorruptCheckpointError,
    check_resumable,
    config_differences,
    global_digest,
)

Array = jax.Array


# Settings a resumed run may change (the state's structure does not depend on them);
# a run resumed with any of them changed no longer equals an uninterrupted one.
RESUMABLE_CHANGES = tuple(
    f"train.{name}" for name in
    ("epochs", "learning_rate", "warmup_steps", "min_learning_rate", "clip_value", "clip_norm", "eval_batch_size",
     "schedule", "final_prior_update")
)


def open_workdir(workdir: pathlib.Path, resume: bool, run_config: dict, log) -> tuple[Checkpointer, int | None]:
    """Bind ``workdir`` to this run: refuse to overwrite a run, or to resume a different configuration.

    Returns ``(checkpointer, latest checkpointed epoch or None)``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    checkpointer = Checkpointer(workdir)
    latest = checkpointer.latest_epoch()
    if latest is not None and not resume:
        raise FileExistsError(
            f"{workdir} already holds checkpoints of a run (latest epoch {latest + 1}); "
            "pass --resume to continue it, or choose another --workdir"
        )
    if latest is not None:
        latest, saved = newest_readable(checkpointer, checkpointer.record, log)
        check_resumable(saved, workdir)
        diffs = config_differences(saved["config"], run_config)
        allowed = [d for d in diffs if d.split(":")[0] in RESUMABLE_CHANGES]
        refused = [d for d in diffs if d not in allowed]
        if refused:
            raise ConfigMismatchError(
                f"refusing to resume {workdir}: its checkpoint is of a different configuration: " + "; ".join(refused)
            )
        for d in allowed:
            log(f"resuming with a changed setting: {d}")
    if distributed.is_primary():
        (workdir / "config.json").write_text(json.dumps(run_config, indent=2))
    return checkpointer, latest


def newest_readable(checkpointer: Checkpointer, read, log):
    """``(epoch, read(epoch))`` of the newest checkpoint that ``read`` accepts.

    An unreadable one (truncated, corrupted) is moved to ``corrupt_checkpoints/`` with a message
    naming it, and the next older one is tried; none is ever deleted.

    Raises:
      CorruptCheckpointError: checkpoints exist but none can be read.
    """
    tried = []
    for epoch in reversed(checkpointer.epochs()):
        try:
            return epoch, read(epoch)
        except Exception as err:  # orbax / tensorstore / json raise many types for a damaged file
            moved = checkpointer.quarantine(epoch)
            tried.append(f"epoch {epoch + 1} ({type(err).__name__}: {str(err)[:200]}) -> {moved}")
            log(f"checkpoint {checkpointer.directory / str(epoch)} is unreadable ({type(err).__name__}: "
                f"{str(err)[:200]}); moved it to {moved} and falling back to the one before")
    raise CorruptCheckpointError(
        f"no checkpoint in {checkpointer.directory} can be read; refusing to train from them. Moved aside, "
        f"not deleted: {'; '.join(tried)}. Resuming again starts the run from scratch.")


def resume_state(checkpointer: Checkpointer, workdir: pathlib.Path, state, log):
    """Restore the newest readable checkpoint into ``state``'s structure (its record may be fine, its state not).

    Returns ``(state, first_epoch, history)``; the history is the one stored with the checkpoint
    (``metrics.jsonl`` may be ahead of it, or damaged, after a kill).
    """
    target = state
    _, (state, record) = newest_readable(checkpointer, lambda e: checkpointer.restore(target, e), log)
    first_epoch = record["epoch"] + 1
    history = record.get("history")
    if history is None:  # checkpoints of emflow 0.1 stored no history
        history = read_history(workdir, up_to_epoch=record["epoch"])
    log(f"resumed {workdir} after epoch {first_epoch} (step {int(state.step)}, state sha256 {global_digest(state)[:16]})")
    return state, first_epoch, history


def read_history(workdir: pathlib.Path, up_to_epoch: int) -> list[dict]:
    """Metrics lines of epochs <= up_to_epoch (0-based) — later ones belong to a run killed before its checkpoint."""
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r["epoch"] <= up_to_epoch + 1]
