"""Checkpoints of an EM run with orbax: the whole training state plus a JSON record.

The state pytree (Phi, Phi_old with pi, optimizer state, step, accumulators)
is saved with ``StandardSave``; the record holds the epoch, the run's
configuration and the seed, from which the data order and every noise key are
derived. A workdir is bound to one configuration: resuming with another is
refused with the differing fields named.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp


FORMAT_VERSION = 1  # of the saved layout; ``emflow.serialization.load`` refuses any other


def version_record() -> dict:
    """``{"format_version", "emflow_version"}``, stored with every checkpoint record."""
    import emflow

    return {"format_version": FORMAT_VERSION, "emflow_version": emflow.__version__}


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


class Checkpointer:
    """Saves and restores ``(state, record)`` under ``<workdir>/checkpoints/<epoch>``."""

    def __init__(self, workdir: str | pathlib.Path, max_to_keep: int = 3):
        self.directory = pathlib.Path(workdir).resolve() / "checkpoints"
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def save(self, epoch: int, state: Any, record: dict) -> None:
        """Save and wait until the checkpoint is complete on disk."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record))
        self._manager.save(epoch, args=args, force=True)
        self._manager.wait_until_finished()

    def restore(self, target_state: Any, epoch: int | None = None) -> tuple[Any, dict]:
        """The state (with ``target_state``'s structure) and record of ``epoch`` (default: latest)."""
        epoch = self.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore())
        restored = self._manager.restore(epoch, args=args)
        return restored["state"], dict(restored["record"])

    def record(self, epoch: int | None = None) -> dict:
        """Only the JSON record of ``epoch`` (default: latest)."""
        epoch = self.latest_epoch() if epoch is None else epoch
        restored = self._manager.restore(epoch, args=ocp.args.Composite(record=ocp.args.JsonRestore()))
        return dict(restored["record"])

    def close(self) -> None:
        self._manager.close()


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
