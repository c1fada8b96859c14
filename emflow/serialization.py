"""Models back from disk: ``emflow.load`` of a training run or of ``emflow.save``'s folder.

A model is a frozen dataclass tree (``GenMM(Prefixed(Logit, Glow), K)``, ...); its
configuration is recorded as JSON (``checkpoint.to_json_config``: every dataclass as
``{"__class__": name, field: value}``, tuples as lists), and ``model_from_config``
rebuilds it from that record. Parameters are orbax PyTrees, restored into the
abstract structure of ``model.init`` with an explicit sharding on *this* process's
devices, as orbax requires when the saving and loading topologies differ (saved on
a GPU/TPU or a mesh of them, loaded on one CPU): ``sharding=None`` puts every array on
``jax.devices()[0]``; a ``jax.sharding.Sharding`` (or a function of the abstract leaf
returning one) places them elsewhere.

Two layouts are understood:

- a **training run** (``train.fit``'s ``workdir``): ``checkpoints/<epoch index>/`` holding
  the whole ``EMState`` and a JSON record; only Phi (``state.params``, pi included) is
  read, never the optimizer;
- a **saved model** (``save(path, model, params)``): ``emflow_model.json`` and ``params/``.

Compatibility: every record carries ``format_version``; one written by another format
is refused with the emflow version that wrote it named. Training records from before
the version was recorded are format 1.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import pathlib
import shutil
from typing import Any, Callable

import jax
import orbax.checkpoint as ocp

from emflow import checks

from emflow.train.checkpoint import FORMAT_VERSION, CorruptCheckpointError, to_json_config, version_record

MODEL_FILE = "emflow_model.json"
PARAMS_DIR = "params"
_MODEL_KIND = "emflow saved model"

Sharding = jax.sharding.Sharding | Callable[[jax.ShapeDtypeStruct], jax.sharding.Sharding] | None


class IncompatibleCheckpointError(ValueError):
    """A record written by an emflow whose format this one cannot read."""


class ConfigRebuildError(ValueError):
    """A recorded configuration that names no known class, or fields that class does not have."""


def known_classes() -> dict[str, type]:
    """The dataclasses a recorded configuration may name, by class name."""
    import emflow
    from emflow.flows.dequantize import Dequantizer
    from emflow.flows.trunk import GlowTrunk

    return {cls.__name__: cls for cls in (emflow.GenMM, emflow.LatMM, emflow.HybridMM, emflow.Glow, emflow.VectorFlow,
                                          emflow.AutoregressiveFlow, emflow.Prefixed, emflow.Whitened, emflow.Logit,
                                          Dequantizer, GlowTrunk)}


def model_to_config(model: Any) -> dict:
    """The JSON-able record of a model (or any emflow configuration dataclass)."""
    return to_json_config(model)


def model_from_config(config: dict, classes: dict[str, type] | None = None) -> Any:
    """Rebuild a frozen dataclass tree from ``model_to_config``'s record.

    ``classes`` adds user classes (by name) to ``known_classes()``. Lists become tuples
    (JSON has no tuple; configurations are hashable, for jit's static arguments).

    Raises:
      ConfigRebuildError: an unknown class, a missing ``__class__``, or a field the class lacks.
    """
    registry = {**known_classes(), **(classes or {})}

    def build(value, where):
        if isinstance(value, list):
            return tuple(build(v, f"{where}[{i}]") for i, v in enumerate(value))
        if not isinstance(value, dict):
            return value
        if "__class__" not in value:
            raise ConfigRebuildError(f"cannot rebuild {where}: a dict without '__class__' ({sorted(value)})")
        name = value["__class__"]
        if name not in registry:
            raise ConfigRebuildError(
                f"cannot rebuild {where}: unknown class {name!r}; known: {sorted(registry)} "
                "(pass classes={name: cls} for your own)")
        cls = registry[name]
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        kwargs = {k: v for k, v in value.items() if k != "__class__"}
        unknown = sorted(set(kwargs) - fields)
        if unknown:
            raise ConfigRebuildError(f"cannot rebuild {where}: {name} has no field(s) {unknown}; it has {sorted(fields)}")
        try:
            return cls(**{k: build(v, f"{where}.{k}") for k, v in kwargs.items()})
        except (TypeError, ValueError) as err:
            raise ConfigRebuildError(f"cannot rebuild {where} as {name}: {err}") from err

    return build(config, "model")


def abstract_params(model: Any, sharding: Sharding = None) -> Any:
    """``model.init``'s parameter structure as ``jax.ShapeDtypeStruct`` leaves placed on ``sharding``."""
    shapes = checks.init_shapes(model)
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    place = sharding if callable(sharding) and not isinstance(sharding, jax.sharding.Sharding) else (lambda _: sharding)
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=place(s)), shapes)


def check_format(record: dict, where: pathlib.Path) -> None:
    """Refuse a record of another format version, naming the emflow version that wrote it."""
    version = record.get("format_version", 1)
    if version != FORMAT_VERSION:
        raise IncompatibleCheckpointError(
            f"{where} was written by emflow {record.get('emflow_version', '<unrecorded>')} in checkpoint format "
            f"{version}; this emflow ({version_record()['emflow_version']}) reads format {FORMAT_VERSION} only")


def save(path: str | pathlib.Path, model: Any, params: Any, overwrite: bool = False) -> pathlib.Path:
    """Write ``model`` (its configuration) and ``params`` to the folder ``path``; returns it.

    For models trained in your own loop; ``load(path)`` reads it back. ``path`` must not
    exist or be empty. With ``overwrite=True`` an earlier ``save`` there is replaced, but
    never a folder holding anything else.

    Raises:
      FileExistsError: ``path`` is a file, holds another save (without ``overwrite``), or
        holds something that is not an emflow saved model.
      TypeError: the model's configuration is not JSON-able.
    """
    checks.path("save", path)
    checks.model("save", model)
    checks.params_fit("save", model, params)  # before anything is removed: a refused save leaves an earlier one as it was
    path = pathlib.Path(path).resolve()
    if path.exists():
        if not path.is_dir():
            raise FileExistsError(f"save: {path} is a file, not a folder; choose another path")
        contents = sorted(p.name for p in path.iterdir())
        if contents:
            if not _is_saved_model(path):
                raise FileExistsError(f"save: {path} holds something other than an emflow saved model "
                                      f"({contents[:5]}); refusing to write into it")
            if not overwrite:
                raise FileExistsError(f"save: {path} already holds a saved model; pass overwrite=True to replace it")
            shutil.rmtree(path)
    record = {"kind": _MODEL_KIND, **version_record(), "model": model_to_config(model)}
    text = json.dumps(record, indent=2)  # a non-JSON-able configuration fails before anything is written
    path.mkdir(parents=True, exist_ok=True)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path / PARAMS_DIR, params)
        checkpointer.wait_until_finished()
    (path / MODEL_FILE).write_text(text)  # written last: a folder without it is not (yet) a saved model
    return path


def load(path: str | pathlib.Path, epoch: int | None = None, sharding: Sharding = None,
         classes: dict[str, type] | None = None) -> tuple[Any, Any]:
    """``(model, params)`` from a training run's workdir or a ``save`` folder.

    Args:
      path: a ``train.fit`` workdir (``checkpoints/``) or a folder written by ``save``.
      epoch: for a run, the epoch whose Phi to load, counted as in ``metrics.jsonl``
        (1 = after the first epoch); default the latest checkpoint.
      sharding: where the arrays go (see the module docstring); default ``jax.devices()[0]``.
      classes: user dataclasses the recorded configuration may name.

    Returns:
      the rebuilt frozen model and its parameter pytree (pi included, as ``log_pi``).

    Raises:
      FileNotFoundError: ``path`` is neither layout, or ``epoch`` has no checkpoint (those kept are named).
      IncompatibleCheckpointError: another checkpoint format.
      ConfigRebuildError: the recorded configuration cannot be rebuilt.
    """
    path = pathlib.Path(path).resolve()
    if _is_saved_model(path):
        if epoch is not None:
            raise ValueError(f"load: {path} is a saved model (one set of parameters); epoch={epoch} applies to runs")
        record = json.loads((path / MODEL_FILE).read_text())
        check_format(record, path / MODEL_FILE)
        model = model_from_config(record["model"], classes)
        with ocp.StandardCheckpointer() as checkpointer, _naming(path / PARAMS_DIR):
            params = checkpointer.restore(path / PARAMS_DIR, abstract_params(model, sharding))
        return model, params
    if (path / "checkpoints").is_dir():
        return _load_run(path, epoch, sharding, classes)
    found = sorted(p.name for p in path.iterdir())[:10] if path.is_dir() else None
    raise FileNotFoundError(
        f"load: {path} is neither a training run (no checkpoints/ folder) nor an emflow saved model (no {MODEL_FILE}); "
        + ("it does not exist" if found is None else f"it holds {found}"))


def _is_saved_model(path: pathlib.Path) -> bool:
    try:
        return json.loads((path / MODEL_FILE).read_text()).get("kind") == _MODEL_KIND
    except (OSError, ValueError, AttributeError):
        return False


def _load_run(workdir: pathlib.Path, epoch: int | None, sharding: Sharding, classes) -> tuple[Any, Any]:
    with ocp.CheckpointManager(workdir / "checkpoints") as manager:
        kept = sorted(manager.all_steps())
        if not kept:
            raise FileNotFoundError(f"load: {workdir} is a training run without any finished checkpoint")
        step = kept[-1] if epoch is None else epoch - 1
        if step not in kept:
            raise FileNotFoundError(f"load: {workdir} has no checkpoint of epoch {epoch}; it keeps epochs "
                                    f"{[s + 1 for s in kept]}")
        folder = workdir / "checkpoints" / str(step)
        with _naming(folder / "record"):
            record = dict(manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"])
        check_format(record, folder)
        model = model_from_config(record["config"]["model"], classes)
        target = {"params": abstract_params(model, sharding)}
        with _naming(folder / "state"):
            state = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(item=target, partial_restore=True,
                                             restore_args=ocp.checkpoint_utils.construct_restore_args(target))))["state"]
    return model, state["params"]


@contextlib.contextmanager
def _naming(path: pathlib.Path):
    """Any failure to read ``path`` (orbax, tensorstore and json raise many types) as ``CorruptCheckpointError``
    naming it."""
    try:
        yield
    except (IncompatibleCheckpointError, ConfigRebuildError):
        raise
    except Exception as err:
        raise CorruptCheckpointError(f"load: could not read {path} ({type(err).__name__}: {str(err)[:300]}); "
                                     "it is damaged or not an emflow checkpoint") from err
