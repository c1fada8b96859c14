"""The image experiments' configuration: one frozen dataclass, job files on top of a base, command-line overrides.

A job is a Python file in ``experiments/configs/`` whose ``get_config()`` returns an
:class:`ImageConfig` (``experiments/configs/base.py`` plus the job's changes, as the Flax
examples do). ``python -m experiments.mnist_genmm`` runs ``configs/mnist_genmm.py``;
``--config FILE`` runs another file and ``--config.NAME=VALUE`` changes any field. Every
value is checked when the configuration is made (type, sign, choices), and a field that does
not exist is refused with the fields it may have meant.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import math
import pathlib
import types
import typing

from emflow.bijectors.conditioners import CONV_IMPLS
from emflow.bijectors.split import SplitPrior
from emflow.flows.glow import TOP_PRIORS
from emflow.mixtures.latmm import LATENT_PARTITION_SPACES

CONFIG_DIR = pathlib.Path(__file__).resolve().parent / "configs"


class ConfigError(ValueError):
    """A configuration file, field or value that cannot be used; the message names it."""


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """Everything that decides an image experiment's result (sizes, model, EM, optimizer, seed).

    Where a run's outputs go, resuming and the progress bar are command-line options, not
    configuration. ``split_log_std_floor = None`` is no floor; ``num_train = 0`` /
    ``num_test = 0`` all images; ``partition_size = 0`` the init batch's 512 images.
    """

    components: int = 3
    latent_components: int = 3
    epochs: int = 3
    batch_size: int = 64
    levels: int = 2
    steps: int = 4
    hidden: int = 64
    em_every: int = 1
    num_train: int = 0
    num_test: int = 0
    scheme: str = "uniform"
    linear: str = "lu"
    split_prior: str = "conditional"
    component_axis: str | None = None
    e_step: str = "cached"
    top_prior: str = "learned"
    split_log_std_floor: float | None = None
    compute_dtype: str = "float32"
    conv_impl: str = "lax"
    learning_rate: float = 1e-3
    warmup_steps: int = 200
    schedule: str = "cosine"
    logit_alpha: float = 1e-6
    init: str = "default"
    shared_rounds: int = 0
    warm_start_rounds: int = 1
    balanced_parts: bool = False
    balanced_e_step: bool = False
    trunk_steps: int = 0
    shared_first_level: bool = False
    tempering: str = "none"
    final_prior_update: bool = False
    partition_size: int = 10_000
    partition_space: str = "blurred_unit"
    kmeans_starts: int = 4
    baselines: bool = True
    seed: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            check_type(field.name, value, FIELD_TYPES[field.name])
            if field.name in CHOICES and value not in CHOICES[field.name]:
                raise ConfigError(f"config.{field.name} must be one of {CHOICES[field.name]}, got {value!r}")
            if field.name in LOWER_BOUNDS and value < LOWER_BOUNDS[field.name]:
                raise ConfigError(f"config.{field.name} must be >= {LOWER_BOUNDS[field.name]}, got {value!r}")
        if self.split_log_std_floor is not None and not math.isfinite(self.split_log_std_floor):
            raise ConfigError(f"config.split_log_std_floor must be a finite number or None, got {self.split_log_std_floor}")
        if not 0.0 <= self.logit_alpha < 0.5 or not self.learning_rate > 0:
            raise ConfigError(f"config.logit_alpha must lie in [0, 0.5) and config.learning_rate be > 0, got "
                              f"{self.logit_alpha} and {self.learning_rate}")

    def replace(self, **changes) -> "ImageConfig":
        """A copy with ``changes``; a name that is not a field is refused (``ConfigError``)."""
        for name in changes:
            field_named(name)
        return dataclasses.replace(self, **changes)


CHOICES = {
    "scheme": ("uniform", "paper"), "linear": ("lu", "plain"), "split_prior": SplitPrior.__args__,
    "component_axis": (None, "vmap", "unrolled", "scan"), "e_step": ("per_batch", "cached"), "top_prior": TOP_PRIORS,
    "compute_dtype": ("float32", "bfloat16"), "conv_impl": CONV_IMPLS, "schedule": ("noam", "cosine"),
    "init": ("default", "shared"), "tempering": ("none", "annealed", "paper"),
    "partition_space": tuple(LATENT_PARTITION_SPACES),
}
LOWER_BOUNDS = {"components": 1, "latent_components": 1, "epochs": 1, "batch_size": 1, "levels": 1, "steps": 1,
                "hidden": 1, "em_every": 1, "num_train": 0, "num_test": 0, "warmup_steps": 0, "shared_rounds": 0,
                "warm_start_rounds": 0, "trunk_steps": 0, "partition_size": 0, "kmeans_starts": 1}
FIELD_TYPES = typing.get_type_hints(ImageConfig)


def check_type(name: str, value, annotation) -> None:
    """Refuse ``value`` unless it is of ``annotation`` (``int``, ``float``, ``bool``, ``str`` or ``X | None``).

    An ``int`` passes for a ``float``; a ``bool`` never passes for a number."""
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if value is None and type(None) in allowed:
        return
    if isinstance(value, bool):
        ok = bool in allowed
    else:
        ok = any(isinstance(value, t) for t in allowed if t is not type(None)) or (
            float in allowed and isinstance(value, int))
    if not ok:
        expected = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
        raise ConfigError(f"config.{name} must be {expected}, got {value!r} ({type(value).__name__})")


def field_named(name: str) -> dataclasses.Field:
    """The field ``name`` of :class:`ImageConfig`, or a ``ConfigError`` naming it and its closest fields."""
    fields = {f.name: f for f in dataclasses.fields(ImageConfig)}
    if name not in fields:
        near = difflib.get_close_matches(name, fields, n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else f"; the fields are {', '.join(fields)}"
        raise ConfigError(f"config has no field {name!r}{hint}")
    return fields[name]


def load(path: str | pathlib.Path) -> ImageConfig:
    """The :class:`ImageConfig` that ``get_config()`` of the Python file ``path`` returns."""
    path = pathlib.Path(path)
    if not path.is_file():
        known = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.py") if p.name != "__init__.py"))
        raise ConfigError(f"config file {str(path)!r} does not exist (the jobs' files in {CONFIG_DIR}: {known})")
    spec = importlib.util.spec_from_file_location(f"emflow_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "get_config", None)):
        raise ConfigError(f"config file {str(path)!r} defines no get_config()")
    config = module.get_config()
    if not isinstance(config, ImageConfig):
        raise ConfigError(f"get_config() of {str(path)!r} must return an ImageConfig, got {type(config).__name__}")
    return config


def parse_value(name: str, text: str):
    """The command line's ``text`` as a value of the field ``name`` (``none`` for None; ``nan`` for no floor)."""
    annotation = FIELD_TYPES[field_named(name).name]
    allowed = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    if type(None) in allowed and text.lower() in ("none", "nan"):
        return None
    kind = next(t for t in allowed if t is not type(None))
    try:
        if kind is bool:
            return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[text.lower()]
        return kind(text)
    except (KeyError, ValueError):
        raise ConfigError(f"--config.{name} must be {kind.__name__}, got {text!r}") from None


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """``argv`` without its ``--config.NAME=VALUE`` / ``--config.NAME VALUE`` items, and those items as a dict."""
    rest, overrides, items = [], {}, iter(argv)
    for item in items:
        if not item.startswith("--config."):
            rest.append(item)
            continue
        name, sep, value = item[len("--config."):].partition("=")
        if not sep:
            value = next(items, None)
            if value is None:
                raise ConfigError(f"--config.{name} needs a value")
        overrides[name] = value
    return rest, overrides
