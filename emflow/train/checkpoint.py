"""Checkpoints of an EM run with orbax: the whole training state plus a JSON record.

The state pytree (Phi, Phi_old with pi, optimizer state, step, accumulators)
is saved with ``StandardSave``; the record holds the epoch, the run's
configuration and the seed, from which the data order and every noise key are
derived. A workdir is bound to one configuration: resuming with another is
refused with the differing fields named.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


FORMAT_VERSION = 1  # of the saved layout; ``emflow.serialization.load`` refuses any other
# Of the trainer state a run resumes from. 2: the E-step's round state is no longer part of it
# (a cached E-step's table is recomputed when a run resumes inside a round).
STATE_FORMAT = 2


def version_record() -> dict:
    """``{"format_version", "state_format", "emflow_version"}``, stored with every checkpoint record."""
    import emflow

    return {"format_version": FORMAT_VERSION, "state_format": STATE_FORMAT, "emflow_version": emflow.__version__}


def check_resumable(record: dict, where) -> None:
    """Refuse, with what to do instead, a checkpoint whose trainer state this emflow cannot restore.

    Format 1 states (emflow 0.2.0) held a cached E-step's table of responsibilities; those of
    a per-batch E-step are the same as format 2's. ``emflow.load`` reads Phi of either.
    """
    if record.get("state_format", 1) == 1 and record.get("config", {}).get("train", {}).get("e_step") == "cached":
        raise ConfigMismatchError(
            f"refusing to resume {where}: its checkpoint's trainer state (written by emflow "
            f"{record.get('emflow_version', '0.2.0')}) holds the cached E-step's table, which this emflow "
            f"({version_record()['emflow_version']}) no longer keeps there. Its parameters load with "
            "emflow.load; to train on, start a new run in another workdir.")


class ConfigMismatchError(ValueError):
    """The workdir holds a run of a different configuration."""


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``["train.batch_size: 64 (saved) != 128 (now)", ...]`` for every differing leaf."""
    diffs = []
    for key in sorted(set(saved) | set(current)):
        name = f"{prefix}{key}"
        a, b = saved.get(key, "<missing>"), current.get(key, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += config_differences(a, b, prefix=name + ".")
        elif a != b:
            diffs.append(f"{name}: {a!r} (saved) != {b!r} (now)")
    return diffs


class WorkdirWriteError(OSError):
    """A run's outputs could not be written (disk full, permissions, ...); the checkpoints before are intact."""


class CheckpointWriteError(WorkdirWriteError):
    """A checkpoint could not be written (disk full, permissions, ...); the previous one is intact."""


class CorruptCheckpointError(ValueError):
    """No checkpoint of the run can be read; the unreadable ones were moved aside, not deleted."""


class Checkpointer:
    """Saves and restores ``(state, record)`` under ``<workdir>/checkpoints/<epoch>``.

    A checkpoint is written to a temporary folder and renamed when complete (orbax), so a
    process killed while saving leaves the previous checkpoints as they were; the leftover
    temporary folder is removed when the run is next opened. A checkpoint that cannot be
    read is moved to ``<workdir>/corrupt_checkpoints/`` (``quarantine``), never deleted.
    """

    def __init__(self, workdir: str | pathlib.Path, max_to_keep: int = 3):
        self.workdir = pathlib.Path(workdir).resolve()
        self.directory = self.workdir / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def epochs(self) -> list[int]:
        """The finished checkpoints' epoch indices, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, epoch: int, state: Any, record: dict) -> None:
        """Save and wait until the checkpoint is complete on disk.

        Raises:
          CheckpointWriteError: the write failed (e.g. no space left, no permission); the
            checkpoints written before are untouched.
        """
        digest = state_digest(state)
        if digest is not None:
            record = {**record, "state_sha256": digest}
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record))
        try:
            self._manager.save(epoch, args=args, force=True)
            self._manager.wait_until_finished()
        except Exception as err:  # orbax and tensorstore wrap OS errors in their own types
            kept = [e + 1 for e in self.epochs() if e != epoch]
            raise CheckpointWriteError(
                f"could not write the checkpoint of epoch {epoch + 1} to {self.directory}: "
                f"{type(err).__name__}: {err}. The checkpoints already there (epochs {kept}) are intact; "
                "free disk space or fix permissions, then resume.") from err

    def quarantine(self, epoch: int) -> pathlib.Path:
        """Move checkpoint ``epoch`` out of the run, to ``<workdir>/corrupt_checkpoints/<epoch>[-n]``."""
        target_root = self.workdir / "corrupt_checkpoints"
        target_root.mkdir(exist_ok=True)
        target, n = target_root / str(epoch), 1
        while target.exists():
            target, n = target_root / f"{epoch}-{n}", n + 1
        if jax.process_index() == 0:  # one process moves it; the others wait until it has
            (self.directory / str(epoch)).rename(target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"emflow quarantine {epoch}")
        self._manager.reload()
        return target

    def restore(self, target_state: Any, epoch: int | None = None) -> tuple[Any, dict]:
        """The state (with ``target_state``'s structure) and record of ``epoch`` (default: latest)."""
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore())
        restored = self._manager.restore(epoch, args=args)
        state, record = restored["state"], dict(restored["record"])
        saved, now = record.get("state_sha256"), state_digest(state)
        if saved is not None and now is not None and saved != now:
            raise CorruptCheckpointError(f"{self.directory / str(epoch)}: the restored state's sha256 {now[:12]}... "
                                         f"differs from the one recorded at save time {saved[:12]}...")
        return state, record

    def record(self, epoch: int | None = None) -> dict:
        """Only the JSON record of ``epoch`` (default: latest)."""
        epoch = self.latest_epoch() if epoch is None else epoch
        restored = self._manager.restore(epoch, args=ocp.args.Composite(record=ocp.args.JsonRestore()))
        return dict(restored["record"])

    def close(self) -> None:
        self._manager.close()


def state_digest(state: Any) -> str | None:
    """sha256 over every leaf's dtype, shape and bytes; None when a leaf is not fully on this process.

    Stored with each checkpoint and checked on restore: orbax's array files carry no checksum,
    so without it a flipped byte in the data would restore silently.
    """
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return None
        value = np.asarray(leaf)
        digest.update(f"{value.dtype}{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def global_digest(state: Any) -> str:
    """``state_digest`` of the whole state, gathered from every process when it is spread over several."""
    digest = state_digest(state)
    if digest is None:
        from jax.experimental import multihost_utils

        digest = state_digest(multihost_utils.process_allgather(state, tiled=True))
    return digest


def to_json_config(config: Any) -> dict:
    """A JSON-able dict of nested dataclasses / tuples, for comparing configurations."""
    return json.loads(json.dumps(config, default=_default))


def _default(obj):
    import dataclasses

    if dataclasses.is_dataclass(obj):  # a device mesh is where a run executes, not what it is
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.name != "mesh"}
        return {"__class__": type(obj).__name__, **fields}
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {obj!r}")
