"""The census of emflow's public callables: what each one does with a bad argument.

``public_callables()`` lists the public API: every name in the packages' ``__all__`` (and the
modules they export: ``emflow.latent``, ``emflow.em.e_steps``, ``emflow.em.semi_supervised``), the
public functions and classes of ``emflow.evaluation``, ``emflow.parallel`` and ``emflow.contrib``
and of ``experiments.config``, and the user-facing methods of the models (``init``, ``log_prob``,
``component_log_prob``, ``responsibilities``, ``sample``, ``component_samples``, ...) and flows
(``init``, ``forward``, ``inverse``, ``log_prob``, ``sample``). ``CENSUS`` gives each of them either

- ``Refuses(bad, call, error, pattern)``: ``call(ctx)`` passes it the bad argument ``bad``; it must
  raise ``error`` with a message matching ``pattern`` (which names the argument or what it
  should be), and compile nothing before it does; or
- ``Exempt(reason)``: it has no argument a caller can get wrong (an exception or protocol
  class, a record the library builds, a function of no arguments).

A public callable missing from the census, or one listed that no longer exists, fails
``test_the_census_lists_every_public_callable``. ``python tests/test_api_census.py`` prints the
summary the faults guide shows.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import inspect
import pathlib
import pkgutil
import re
import sys
from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import emflow  # noqa: E402
from emflow import bijectors as B  # noqa: E402
from emflow import data as D  # noqa: E402
from emflow import em, latent, train  # noqa: E402
from emflow.classify import (FeaturePreprocessor, GlowSpec, MixtureClassifier,  # noqa: E402
                             SemiSupervisedMixtureClassifier, StackTrainer, VectorFlowSpec)
import emflow.classify as C  # noqa: E402
from emflow.contrib import annealing, balanced, copies, pi_plot, reseed, shared_rounds  # noqa: E402
from emflow.em import e_steps, semi_supervised as ss  # noqa: E402
from emflow.evaluation import baselines, diagnostics, feature_net, interpolation, metrics, plots  # noqa: E402
from emflow.parallel import distributed, sharding  # noqa: E402
from benchmarks.tabular_fit import CompileCounter  # noqa: E402
from experiments import config as xconfig  # noqa: E402

PACKAGES = ("emflow", "emflow.bijectors", "emflow.classify", "emflow.data", "emflow.em", "emflow.flows",
            "emflow.mixtures", "emflow.train")
EXPORTED_MODULES = ("emflow.flows.latent", "emflow.em.e_steps", "emflow.em.semi_supervised")
FUNCTION_PACKAGES = ("emflow.evaluation", "emflow.parallel", "emflow.contrib")
SUBPACKAGES = ("bijectors", "classify", "contrib", "data", "em", "evaluation", "flows", "mixtures", "parallel", "train")
MODEL_METHODS = {
    "GenMM": ("init", "init_with_partition", "log_prob", "component_log_prob", "responsibilities", "sample",
              "component_samples", "generator", "generator_log_prob"),
    "LatMM": ("init", "init_with_partition", "log_prob", "component_log_prob", "responsibilities", "sample",
              "component_samples"),
    "HybridMM": ("init", "log_prob", "component_log_prob", "responsibilities", "sample", "component_samples"),
    "VectorFlow": ("init", "forward", "inverse", "log_prob", "sample"),
    "AutoregressiveFlow": ("init", "forward", "inverse", "log_prob", "sample"),
    "Glow": ("init", "forward", "inverse", "log_prob", "sample"),
}


def _module_callables(module) -> dict[str, Any]:
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, o in vars(module).items() if not n.startswith("_") and callable(o)
                 and getattr(o, "__module__", None) == module.__name__]
    return {f"{module.__name__}.{n}": getattr(module, n) for n in names
            if callable(getattr(module, n)) and not inspect.ismodule(getattr(module, n))}


def public_callables() -> dict[str, Any]:
    """Every public callable, by its first public name (an object exported twice is listed once)."""
    found: dict[str, Any] = {}
    seen: set[int] = set()

    def add(entries):
        for name, obj in entries.items():
            if id(obj) not in seen:
                seen.add(id(obj))
                found[name] = obj

    for name in PACKAGES + EXPORTED_MODULES:
        add(_module_callables(importlib.import_module(name)))
    for name in FUNCTION_PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.iter_modules(package.__path__):
            add(_module_callables(importlib.import_module(f"{name}.{info.name}")))
    add(_module_callables(xconfig))
    for cls, methods in MODEL_METHODS.items():
        found.update({f"emflow.{cls}.{m}": getattr(getattr(emflow, cls), m) for m in methods})
    return found


class Refuses(NamedTuple):
    bad: str
    call: Callable[[dict], Any]
    error: type
    pattern: str


class Exempt(NamedTuple):
    reason: str


EXCEPTION = Exempt("an exception class")
PROTOCOL = Exempt("a protocol or base class: no arguments of its own")
RECORD = Exempt("a record (NamedTuple or dataclass) the library builds and returns")
NO_ARGS = Exempt("takes no arguments")
FORMATS = Exempt("formats the records fit builds (called by fit with them)")
INNER = Exempt("an E-step update run inside the compiled step on the table its init built")
ALIAS = Exempt("a type alias (typing.Literal), not called")
FLAX = Exempt("a Flax module, built by feature_net.build from a checked FeatureNetConfig")
SHAPE = r"expected a batch of shape \(batch, 2\), got shape \(3, 3\)"
KEY = r"key must be a JAX PRNG key"
FIT = dict(progress=False, log=lambda s: None)


def _mixture_methods(name: str, model: str, params: str, other: str) -> dict[str, Refuses]:
    """The rows every mixture shares: a wrong-width batch, another model's params, a bad n / temperature / key."""
    return {
        f"emflow.{name}.init": Refuses("a PRNG key that is a str", lambda c: c[model].init("key", c["x"]),
                                       TypeError, KEY),
        f"emflow.{name}.log_prob": Refuses("another model's params", lambda c: c[model].log_prob(c[other], c["x"]),
                                           ValueError, r"params(\['log_pi'\] must have shape| do not fit the model)"),
        f"emflow.{name}.component_log_prob": Refuses("a batch of another width",
                                                     lambda c: c[model].component_log_prob(c[params], c["xb"]),
                                                     ValueError, SHAPE),
        f"emflow.{name}.responsibilities": Refuses("params that are an empty dict",
                                                   lambda c: c[model].responsibilities({}, c["x"]), TypeError,
                                                   r"params must be the dict that \w+\.init returns"),
        f"emflow.{name}.sample": Refuses("n = -3", lambda c: c[model].sample(c[params], c["key"], -3), ValueError,
                                         r"n must be an integer >= 0, got -3"),
        f"emflow.{name}.component_samples": Refuses(
            "temperature = -1", lambda c: c[model].component_samples(c[params], c["key"], 2, -1.0), ValueError,
            r"temperature must be a finite number >= 0"),
    }


def _flow_methods(name: str, flow: str, params: str, bad_x: str) -> dict[str, Refuses]:
    return {
        f"emflow.{name}.init": Refuses("a PRNG key that is a str", lambda c: c[flow].init("key", c[bad_x]),
                                       TypeError, KEY),
        f"emflow.{name}.forward": Refuses("a batch of another shape", lambda c: c[flow].forward(c[params], c["xb"]),
                                          ValueError, rf"{name}.forward: expected a batch of shape"),
        f"emflow.{name}.inverse": Refuses("an array instead of a Latent", lambda c: c[flow].inverse(c[params], c["x"]),
                                          TypeError, rf"{name}.inverse: latent must be an emflow.Latent"),
        f"emflow.{name}.log_prob": Refuses("params that are an empty dict", lambda c: c[flow].log_prob({}, c[bad_x]),
                                           ValueError, rf"{name}.log_prob: params do not fit the model"),
        f"emflow.{name}.sample": Refuses("n = 2.5", lambda c: c[flow].sample(c[params], c["key"], 2.5), TypeError,
                                         r"n must be an integer >= 0, got 2.5"),
    }


CENSUS: dict[str, Refuses | Exempt] = {
    # emflow
    "emflow.AutoregressiveFlow": Refuses("kind = 'additive'", lambda c: emflow.AutoregressiveFlow(2, kind="additive"),
                                         ValueError, r"MaskedAutoregressive: kind must be 'affine' or 'spline'"),
    "emflow.Dequantizer": Refuses("a data_shape with a zero", lambda c: emflow.Dequantizer((4, 0)), ValueError,
                                  r"Dequantizer: data_shape must be a non-empty tuple of positive ints"),
    "emflow.GenMM": Refuses("a str as the flow", lambda c: emflow.GenMM("x", 2), TypeError, r"GenMM: flow must be a flow"),
    "emflow.Glow": Refuses("image_shape (4, 4)", lambda c: emflow.Glow((4, 4)), ValueError,
                           r"Glow: image_shape \(H, W, C\) must be a tuple of 3 positive ints"),
    "emflow.GlowTrunk": Refuses("num_steps = 0", lambda c: emflow.GlowTrunk((4, 4, 1), num_steps=0), ValueError,
                                r"GlowTrunk: num_steps must be an integer >= 1"),
    "emflow.HybridMM": Refuses("two GenMMs", lambda c: emflow.HybridMM(c["g"], c["g"]), TypeError,
                               r"HybridMM: expected a GenMM and a LatMM"),
    "emflow.LatMM": Refuses("gamma_rate = 0", lambda c: emflow.LatMM(c["vf"], 2, gamma_rate=0.0), ValueError,
                            r"LatMM: the Gamma prior needs shape > 0 and rate > 0"),
    "emflow.Latent": RECORD,
    "emflow.Logit": Refuses("alpha = 0.6", lambda c: emflow.Logit((2,), alpha=0.6), ValueError,
                            r"Logit: alpha must lie in \(0, 0.5\)"),
    "emflow.Prefixed": Refuses("an int as the prefix", lambda c: emflow.Prefixed(1, c["vf"]), TypeError,
                               r"Prefixed: prefix must be a bijector"),
    "emflow.VectorFlow": Refuses("hidden = 2.5", lambda c: emflow.VectorFlow(2, hidden=2.5), TypeError,
                                 r"VectorFlow: hidden must be an integer >= 1, got 2.5"),
    "emflow.Whiten": Refuses("reg = -1", lambda c: emflow.Whiten((2,), reg=-1.0), ValueError,
                             r"Whiten: reg must be a finite number >= 0"),
    "emflow.Whitened": Refuses("a str as the flow", lambda c: emflow.Whitened("x"), TypeError,
                               r"Whitened: flow must be a flow"),
    "emflow.load": Refuses("a folder that does not exist", lambda c: emflow.load(c["tmp"] / "nope"),
                           FileNotFoundError, r"nope is neither a training run"),
    "emflow.save": Refuses("another model's params", lambda c: emflow.save(c["tmp"] / "s", c["g"], c["pl"]),
                           ValueError, r"save: params do not fit the model"),
    # emflow.bijectors
    "emflow.bijectors.ActNorm": Refuses("event_shape (0,)", lambda c: B.ActNorm((0,)), ValueError,
                                        r"ActNorm: event_shape must be"),
    "emflow.bijectors.Bijector": PROTOCOL,
    "emflow.bijectors.Chain": PROTOCOL,
    "emflow.bijectors.ConvConditioner": Refuses("in_channels = 0", lambda c: B.ConvConditioner(0, 2, 4), ValueError,
                                                r"ConvConditioner: in_channels must be an integer >= 1"),
    "emflow.bijectors.Coupling": Refuses("hidden = 0", lambda c: B.Coupling((4,), hidden=0), ValueError,
                                         r"Coupling: hidden must be an integer >= 1"),
    "emflow.bijectors.FlowStep": Refuses("linear = 'x'", lambda c: B.FlowStep((4,), linear="x"), ValueError,
                                         r"FlowStep: linear must be"),
    "emflow.bijectors.InvertibleLinear": Refuses("parametrization = 'x'", lambda c: B.InvertibleLinear((4,), "x"),
                                                 ValueError, r"InvertibleLinear: parametrization must be"),
    "emflow.bijectors.MLPConditioner": Refuses("in_features = 0", lambda c: B.MLPConditioner(0, 2, 4), ValueError,
                                               r"MLPConditioner: in_features must be an integer >= 1"),
    "emflow.bijectors.Repeat": Refuses("a str as the step", lambda c: B.Repeat("x", 2), TypeError,
                                       r"Repeat: step must be a bijector"),
    "emflow.bijectors.MaskedAutoregressive": Refuses("tail_bound = 0", lambda c: B.MaskedAutoregressive((4,), tail_bound=0),
                                                     ValueError, r"MaskedAutoregressive: tail_bound must be a finite number > 0"),
    "emflow.bijectors.Reverse": Refuses("event_shape ()", lambda c: B.Reverse(()), ValueError,
                                        r"Reverse: event_shape must be"),
    "emflow.bijectors.Split": Refuses("prior = 'x'", lambda c: B.Split((4, 4, 2), prior="x"), ValueError,
                                      r"Split: prior must be"),
    "emflow.bijectors.Squeeze": Refuses("an odd height", lambda c: B.Squeeze((3, 3, 1)), ValueError,
                                        r"Squeeze: height and width must be even"),
    "emflow.bijectors.ZeroConv": Refuses("in_channels = 0", lambda c: B.ZeroConv(0, 2), ValueError,
                                         r"ZeroConv: in_channels must be"),
    "emflow.bijectors.check_batch": Refuses("a batch of another width", lambda c: B.check_batch(c["x"], (3,), "here"),
                                            ValueError, r"here: expected a batch of shape \(batch, 3\)"),
    "emflow.bijectors.random_rotation": Refuses("n = 0", lambda c: B.random_rotation(c["key"], 0), ValueError,
                                                r"random_rotation: n must be an integer >= 1"),
    # emflow.classify
    "emflow.classify.FeaturePreprocessor": Refuses(
        "a zero scale", lambda c: FeaturePreprocessor("standardize", np.zeros(2), np.zeros(2)), ValueError,
        r"FeaturePreprocessor: scale must be finite and > 0"),
    "emflow.classify.GlowSpec": Refuses("image_shape (4, 4)", lambda c: GlowSpec(image_shape=(4, 4)), ValueError,
                                        r"GlowSpec: image_shape"),
    "emflow.classify.MixtureClassifier": Refuses(
        "num_components = 0 (at fit)", lambda c: MixtureClassifier(num_components=0).fit(c["xn"], c["y"]),
        ValueError, r"num_components must be an integer >= 1"),
    "emflow.classify.NotFittedError": EXCEPTION,
    "emflow.classify.SemiSupervisedMixtureClassifier": Refuses(
        "a label -2 (at fit)", lambda c: SemiSupervisedMixtureClassifier().fit(c["xn"], np.r_[-2, c["y"][1:]]),
        ValueError, r"numeric labels must be class labels >= 0 or -1"),
    "emflow.classify.StackTrainer": Refuses("ema_decay = 2", lambda c: StackTrainer(c["g"], c["cfg"], c["pre"],
                                                                                    ema_decay=2.0),
                                            ValueError, r"StackTrainer: ema_decay must be"),
    "emflow.classify.TrainedStack": RECORD,
    "emflow.classify.VectorFlowSpec": Refuses("num_steps = 0", lambda c: VectorFlowSpec(num_steps=0), ValueError,
                                              r"VectorFlowSpec: num_steps must be"),
    "emflow.classify.class_log_prob": Refuses("samples = -1", lambda c: C.class_log_prob(c["g"], c["pre"], None, -1),
                                              ValueError, r"class_log_prob: samples must be an integer >= 0"),
    "emflow.classify.class_permutation": Refuses("size = 0", lambda c: C.class_permutation(c["key"], 3, 0),
                                                 ValueError, r"class_permutation: size must be"),
    "emflow.classify.feature_permutations": Refuses("an unknown name", lambda c: C.feature_permutations("x", 4),
                                                    ValueError, r"unknown feature_symmetries 'x'"),
    "emflow.classify.glow_image_shape": Refuses("7 features", lambda c: C.glow_image_shape(7), ValueError,
                                                r"7 features is not such a square"),
    "emflow.classify.orbit": Refuses("permutations of another width", lambda c: C.orbit(c["xn"], np.array([[0, 1, 2]])),
                                     ValueError, r"orbit: expected x \(N, D\) and perms \(G, D\)"),
    "emflow.classify.pad_by_class": Refuses("codes of another length", lambda c: C.pad_by_class(c["xn"], np.zeros(3, int), 2),
                                            ValueError, r"pad_by_class: expected x \(N, D\) and codes \(N,\)"),
    "emflow.classify.stratified_holdout": Refuses("fraction = 2", lambda c: C.stratified_holdout(c["y"], 2.0, 0),
                                                  ValueError, r"stratified_holdout: fraction must be"),
    # emflow.data
    "emflow.data.DataFormatError": EXCEPTION,
    "emflow.data.Dataset": Refuses("labels of another length", lambda c: D.Dataset(c["xn"], np.zeros(3), c["xn"],
                                                                                   np.zeros(8), "x", ("a",)),
                                   ValueError, r"x_train has shape \(8, 2\) but y_train has shape \(3,\)"),
    "emflow.data.has_dataset": Refuses("an unknown name", lambda c: D.has_dataset("x", c["tmp"]), ValueError,
                                       r"has_dataset: unknown dataset 'x'"),
    "emflow.data.idx_num_rows": Refuses("a missing file", lambda c: D.idx_num_rows(c["tmp"] / "nope"),
                                        FileNotFoundError, r"nope"),
    "emflow.data.load_dataset": Refuses("an unknown name", lambda c: D.load_dataset("x"), ValueError,
                                        r"unknown dataset 'x'"),
    "emflow.data.load_fashion_mnist": Refuses("train_rows = 3", lambda c: D.load_fashion_mnist(c["tmp"], train_rows=3),
                                              TypeError, r"train_rows must be None or a slice"),
    "emflow.data.load_letter": Refuses("a folder without the file", lambda c: D.load_letter(c["tmp"] / "none"),
                                       FileNotFoundError, r"letter-recognition.data' not found"),
    "emflow.data.load_mnist": Refuses("test_rows = 3", lambda c: D.load_mnist(c["tmp"], test_rows=3), TypeError,
                                      r"test_rows must be None or a slice"),
    "emflow.data.load_satimage": Refuses("a folder without the files", lambda c: D.load_satimage(c["tmp"] / "none"),
                                         FileNotFoundError, r"sat.trn' not found"),
    "emflow.data.load_smallnorb": Refuses("data_dir = 3", lambda c: D.load_smallnorb(3), TypeError,
                                          r"data_dir must be None or a path"),
    "emflow.data.preprocess_smallnorb": Refuses("a 3x3 image", lambda c: D.preprocess_smallnorb(np.zeros((3, 3)),
                                                                                               np.zeros((3, 3))),
                                                ValueError, r"preprocess_smallnorb: image must have shape"),
    "emflow.data.read_idx": Refuses("a missing file", lambda c: D.read_idx(c["tmp"] / "nope"), FileNotFoundError,
                                    r"nope"),
    "emflow.data.resolve_data_dir": Refuses("data_dir = 3", lambda c: D.resolve_data_dir(3), TypeError,
                                            r"resolve_data_dir: data_dir must be None or a path"),
    "emflow.data.satimage_dihedral_permutations": NO_ARGS,
    "emflow.data.split_sizes": Refuses("a dataset not read by rows", lambda c: D.split_sizes("letter"), ValueError,
                                       r"split_sizes: only mnist, fashion_mnist are read by rows"),
    # emflow.em
    "emflow.em.Tempering": ALIAS,
    "emflow.em.check_beta": Refuses("beta = 0", lambda c: em.check_beta(0.0), ValueError, r"beta must lie in \(0, 1\]"),
    "emflow.em.e_step": Refuses("a batch of another width", lambda c: em.e_step(c["g"], c["pg"], c["xb"]), ValueError,
                                SHAPE),
    "emflow.em.expected_complete_log_likelihood": Refuses(
        "gamma of 7 rows for 8 examples",
        lambda c: em.expected_complete_log_likelihood(c["g"], c["pg"], c["x"], np.ones((7, 2))), ValueError,
        r"expected_complete_log_likelihood: gamma must have shape \(batch, K\) = \(8, 2\)"),
    "emflow.em.lower_bound": Refuses("a batch of another width", lambda c: em.lower_bound(c["g"], c["pg"], c["pg"], c["xb"]),
                                     ValueError, SHAPE),
    "emflow.em.m_step_loss": Refuses("gamma of 3 columns for K = 2",
                                     lambda c: em.m_step_loss(c["g"], c["pg"], c["x"], np.ones((8, 3))),
                                     ValueError, r"m_step_loss: gamma must have shape \(batch, K\)"),
    "emflow.em.partition_e_step": Refuses("3 centroids for K = 2",
                                          lambda c: em.partition_e_step(c["g"], c["pg"], np.ones((3, 2)), c["x"]),
                                          ValueError, r"partition_e_step: centroids must have shape \(K, F\)"),
    "emflow.em.posterior": Refuses("beta = 2", lambda c: em.posterior(c["g"], c["pg"], c["x"], 2.0), ValueError,
                                   r"posterior: beta must lie in \(0, 1\]"),
    "emflow.em.tempered_e_step": Refuses("beta = 0", lambda c: em.tempered_e_step(c["g"], c["pg"], c["x"], 0.0),
                                         ValueError, r"tempered_e_step: beta must lie in \(0, 1\]"),
    "emflow.em.tempered_responsibilities": Refuses(
        "log_pi of another K", lambda c: em.tempered_responsibilities(np.zeros((3, 2)), np.zeros(3), 0.5),
        ValueError, r"expected joint \(B, K\) and log_pi \(K,\)"),
    "emflow.em.update_prior": Refuses("count = 0", lambda c: em.update_prior(np.ones(2), 0), ValueError,
                                      r"update_prior: count must be > 0"),
    "emflow.em.with_log_pi": Refuses("log_pi of another K", lambda c: em.with_log_pi(c["pg"], np.zeros(3)), ValueError,
                                     r"with_log_pi: log_pi must have the shape of params\['log_pi'\]"),
    "emflow.em.e_steps.RoundData": RECORD,
    "emflow.em.e_steps.EStep": Exempt("the NamedTuple (name, init, update) a new E-step variant fills in"),
    "emflow.em.e_steps.lookup": INNER,
    "emflow.em.e_steps.tempered": Refuses("beta = 2", lambda c: e_steps.tempered(2.0), ValueError,
                                          r"e_steps.tempered: beta must lie in \(0, 1\]"),
    "emflow.em.e_steps.one_component": NO_ARGS,
    "emflow.em.e_steps.exact": NO_ARGS,
    "emflow.em.e_steps.table": Refuses("gamma of one axis", lambda c: e_steps.table(np.zeros(3), np.zeros(3)),
                                       ValueError, r"table: expected gamma \(N, K\) and log_px \(N,\)"),
    "emflow.em.e_steps.without_likelihood": Refuses("gamma of one axis", lambda c: e_steps.without_likelihood(np.zeros(3)),
                                                    ValueError, r"without_likelihood: gamma must have shape \(N, K\)"),
    "emflow.em.e_steps.warm_start": NO_ARGS,
    "emflow.em.e_steps.cached": Refuses("a str for the E-step", lambda c: e_steps.cached("x"), TypeError,
                                        r"cached: e_step must be an EStep"),
    "emflow.em.semi_supervised.check_labels": Refuses("a label -2", lambda c: ss.check_labels(np.array([0, -2]), np.arange(2)),
                                                      ValueError, r"labels must be class indices >= 0 or -1"),
    "emflow.em.semi_supervised.allowed_components": Refuses(
        "labels of two axes", lambda c: ss.allowed_components(np.zeros((2, 2), np.int32), np.arange(2)),
        ValueError, r"allowed_components: expected y \(B,\) and component_classes \(K,\)"),
    "emflow.em.semi_supervised.responsibilities": Refuses(
        "4 labels for 3 rows", lambda c: ss.responsibilities(np.zeros((3, 2)), np.zeros(4, np.int32), np.arange(2)),
        ValueError, r"responsibilities: expected joint \(B, K\), y \(B,\) and component_classes \(K,\)"),
    "emflow.em.semi_supervised.semi_supervised": Refuses("a label -2", lambda c: ss.semi_supervised(np.array([0, -2]),
                                                                                                    np.arange(2)),
                                                         ValueError, r"labels must be class indices >= 0 or -1"),
    # emflow.latent
    "emflow.flows.latent.standard_normal_log_prob": Refuses("a str", lambda c: latent.standard_normal_log_prob("x"),
                                                            ValueError, r"standard_normal_log_prob: x must be an array"),
    "emflow.flows.latent.splits_log_prob": Refuses("a str", lambda c: latent.splits_log_prob("x"), TypeError,
                                                   r"splits_log_prob: latent must be an emflow.Latent"),
    "emflow.flows.latent.flatten": Refuses("a str", lambda c: latent.flatten("x"), TypeError,
                                           r"flatten: latent must be an emflow.Latent"),
    "emflow.flows.latent.check_latent": Refuses("a str", lambda c: latent.check_latent("x", "here"), TypeError,
                                                r"here: latent must be an emflow.Latent"),
    "emflow.flows.latent.check_temperature": Refuses("temperature = -1", lambda c: latent.check_temperature(-1.0),
                                                     ValueError, r"temperature must be a finite number >= 0"),
    "emflow.flows.latent.sample": Refuses("n = -1", lambda c: latent.sample(c["key"], c["vf"].latent_shapes, -1),
                                          ValueError, r"n must be an integer >= 0, got -1"),
    # emflow.flows, emflow.mixtures
    "emflow.flows.StandardNormalFlow": PROTOCOL,
    "emflow.mixtures.MixtureModel": PROTOCOL,
    # emflow.train
    "emflow.train.AverageState": RECORD,
    "emflow.train.BaseHook": PROTOCOL,
    "emflow.train.ComponentPlot": Refuses("workdir = 3", lambda c: train.ComponentPlot(3), TypeError,
                                          r"ComponentPlot: workdir must be a path"),
    "emflow.train.EMState": RECORD,
    "emflow.train.EarlyStopping": Refuses("batch_size = 0", lambda c: train.EarlyStopping(c["g"], None, c["xn"], batch_size=0),
                                          ValueError, r"EarlyStopping: batch_size must be an integer >= 1"),
    "emflow.train.EpochEnd": RECORD,
    "emflow.train.Evaluator": Refuses("a str as the config", lambda c: train.Evaluator(c["g"], None, "cfg", c["x"], None,
                                                                                       None, c["key"]),
                                      TypeError, r"Evaluator: config must be an emflow.train.TrainConfig"),
    "emflow.train.FitResult": RECORD,
    "emflow.train.Hook": PROTOCOL,
    "emflow.train.HookError": EXCEPTION,
    "emflow.train.MetricsFile": Refuses("workdir = 3", lambda c: train.MetricsFile(3), TypeError,
                                        r"MetricsFile: workdir must be a path"),
    "emflow.train.NonFiniteLossError": EXCEPTION,
    "emflow.train.RunKeys": RECORD,
    "emflow.train.SampleGrids": Refuses("num_samples = -1", lambda c: train.SampleGrids(c["tmp"], c["g"], None, -1, 1.0,
                                                                                        c["key"]),
                                        ValueError, r"SampleGrids: num_samples must be an integer >= 1"),
    "emflow.train.TrainConfig": Refuses("learning_rate = -1e-3", lambda c: train.TrainConfig(learning_rate=-1e-3),
                                        ValueError, r"learning_rate must be a finite number > 0"),
    "emflow.train.adam_with_clipping": Refuses("total_steps = -1", lambda c: train.adam_with_clipping(c["cfg"], -1),
                                               ValueError, r"adam_with_clipping: total_steps"),
    "emflow.train.average_decay_for_data": Refuses("steps_per_epoch = 0", lambda c: train.average_decay_for_data(0),
                                                   ValueError, r"average_decay_for_data: steps_per_epoch must be an integer >= 1"),
    "emflow.train.averaged_params": Refuses("a str as the state", lambda c: train.averaged_params("x"), TypeError,
                                            r"averaged_params: state must be an emflow.train.EMState"),
    "emflow.train.check_finite_data": Refuses("a NaN", lambda c: train.check_finite_data(np.array([np.nan]), "x"),
                                              ValueError, r"x: 1 values are NaN or Inf"),
    "emflow.train.check_inputs": Refuses("x_test of another width",
                                         lambda c: train.check_inputs(c["cfg"], None, c["xn"], c["xn"][:, :1], None),
                                         ValueError, r"x_test must hold examples of x_train's shape"),
    "emflow.train.closing_prior_update": Refuses("a str as the state", lambda c: train.closing_prior_update(
        c["g"], "state", None, c["x"], c["key"], 4), TypeError, r"closing_prior_update: state must be an emflow.train.EMState"),
    "emflow.train.config_for_data": Refuses("0 examples", lambda c: train.config_for_data(0), ValueError,
                                            r"config_for_data: num_examples must be an integer >= 1"),
    "emflow.train.e_step_schedule": Refuses("num_dims = 0", lambda c: train.e_step_schedule(c["cfg"], 0, False, 2),
                                            ValueError, r"e_step_schedule: num_dims must be an integer >= 1"),
    "emflow.train.em_round_update": Refuses("dead_fraction = -1", lambda c: train.em_round_update(c["g"], c["state"], -1.0),
                                            ValueError, r"em_round_update: dead_fraction must be"),
    "emflow.train.em_update": Refuses("a str as the state", lambda c: train.em_update("x"), TypeError,
                                      r"em_update: state must be an emflow.train.EMState"),
    "emflow.train.epoch_record": FORMATS,
    "emflow.train.features_of_more_examples": Refuses("a str as the config", lambda c: train.features_of_more_examples(
        c["g"], None, c["x"], c["key"], c["key"], None, "cfg"), TypeError,
        r"features_of_more_examples: config must be an emflow.train.TrainConfig"),
    "emflow.train.fit": Refuses("hooks = 3", lambda c: train.fit(c["g"], c["cfg"], None, c["xn"], hooks=3, **FIT),
                                TypeError, r"fit: hooks must be a list or tuple of hooks"),
    "emflow.train.fit_to_data": Refuses("validation_fraction = 1.5", lambda c: train.fit_to_data(
        c["g"], np.zeros((100, 2), np.float32), validation_fraction=1.5), ValueError,
        r"validation_split: fraction must lie in \(0, 1\)"),
    "emflow.train.format_record": FORMATS,
    "emflow.train.identity_preprocess": Refuses("an array of strings", lambda c: train.identity_preprocess(
        c["key"], np.array(["a"])), TypeError, r"identity_preprocess: x must be an array of numbers"),
    "emflow.train.init_params": Refuses("a str as the config", lambda c: train.init_params(
        c["g"], c["key"], c["x"], c["x"], None, "cfg", print), TypeError, r"init_params: config must be"),
    "emflow.train.init_state": Refuses("a str as the optimizer", lambda c: train.init_state(c["g"], "adam", c["pg"]),
                                       TypeError, r"init_state: optimizer must be an optax.GradientTransformation"),
    "emflow.train.learning_rate_schedule": Refuses("total_steps = 0", lambda c: train.learning_rate_schedule(c["cfg"], 0),
                                                   ValueError, r"learning_rate_schedule: total_steps"),
    "emflow.train.make_optimizer": Refuses("total_steps = -1", lambda c: train.make_optimizer(c["cfg"], -1), ValueError,
                                           r"make_optimizer: total_steps"),
    "emflow.train.map_batches": Refuses("batch_size = 0", lambda c: train.map_batches(c["g"].log_prob, c["pg"], c["x"],
                                                                                      c["key"], 0),
                                        ValueError, r"map_batches: batch_size must be an integer >= 1"),
    "emflow.train.mean_log_prob": Refuses("batch_size = 0", lambda c: train.mean_log_prob(c["pg"], c["x"], c["key"], 0,
                                                                                          c["g"].log_prob),
                                          ValueError, r"mean_log_prob: batch_size must be an integer >= 1"),
    "emflow.train.parameter_average": Refuses("decay = 1", lambda c: train.parameter_average(c["opt"], 1.0), ValueError,
                                              r"parameter_average: decay must be a number in \(0, 1\), got 1.0"),
    "emflow.train.partition_centroids": Refuses("a str as the config", lambda c: train.partition_centroids(
        c["g"], c["x"], c["key"], None, "cfg"), TypeError, r"partition_centroids: config must be"),
    "emflow.train.place_on_more_examples": Refuses("a str as the config", lambda c: train.place_on_more_examples(
        c["l"], c["pl"], c["x"], c["key"], None, "cfg"), TypeError, r"place_on_more_examples: config must be"),
    "emflow.train.start_epoch": Refuses("a str as the state", lambda c: train.start_epoch("x"), TypeError,
                                        r"start_epoch: state must be an emflow.train.EMState"),
    "emflow.train.start_params": Refuses("a str as the config", lambda c: train.start_params(
        c["g"], c["key"], c["x"], None, "cfg", print), TypeError, r"start_params: config must be"),
    "emflow.train.train_step": Refuses("a batch of another width", lambda c: train.train_step(c["g"], c["opt"], c["state"],
                                                                                             c["xb"]),
                                       ValueError, SHAPE),
    "emflow.train.validation_split": Refuses("labels of another length", lambda c: train.validation_split(
        c["xn"], 0.25, y=np.zeros(3)), ValueError, r"validation_split: y must hold one label per example"),
    "emflow.train.without_log_pi": Refuses("a str as the optimizer", lambda c: train.without_log_pi("adam"), TypeError,
                                           r"without_log_pi: optimizer must be an optax.GradientTransformation"),
    # emflow.contrib
    "emflow.contrib.annealing.beta_of_round": Refuses("beta0 = 2", lambda c: annealing.beta_of_round(2.0, 3, 0),
                                                      ValueError, r"beta0: beta must lie in \(0, 1\]"),
    "emflow.contrib.annealing.schedule": Refuses("rounds = 0", lambda c: annealing.schedule(0.5, 0, e_steps.exact),
                                                 ValueError, r"annealing.schedule: rounds must be"),
    "emflow.contrib.balanced.balanced": Refuses("num_iterations = 0", lambda c: balanced.balanced(0), ValueError,
                                                r"balanced: num_iterations must be an integer >= 1"),
    "emflow.contrib.balanced.balanced_assignment": Refuses("costs of one axis", lambda c: balanced.balanced_assignment(
        np.zeros(3)), ValueError, r"balanced_assignment: d2 must have shape \(N, K\)"),
    "emflow.contrib.balanced.balanced_responsibilities": Refuses(
        "joint of one axis", lambda c: balanced.balanced_responsibilities(np.zeros(3)), ValueError,
        r"balanced_responsibilities: joint must have shape \(N, K\)"),
    "emflow.contrib.balanced.balanced_warm_start": NO_ARGS,
    "emflow.contrib.balanced.schedule": Refuses("a str as the schedule", lambda c: balanced.schedule("x"), TypeError,
                                                r"balanced.schedule: then must be"),
    "emflow.contrib.copies.init_copies": Refuses("a batch of another width", lambda c: copies.init_copies(
        c["g"], c["key"], c["xb"]), ValueError, r"expected a batch of shape \(batch, 2\)"),
    "emflow.contrib.hard_em.hard": NO_ARGS,
    "emflow.contrib.pi_plot.PiPlot": Refuses("workdir = 3", lambda c: pi_plot.PiPlot(3), TypeError,
                                             r"PiPlot: workdir must be a path"),
    "emflow.contrib.reseed.component_fields": Refuses("a str as the model", lambda c: reseed.component_fields("x"),
                                                      TypeError, r"component_fields: model must be a mixture model"),
    "emflow.contrib.reseed.dead_components": Refuses("threshold = -1", lambda c: reseed.dead_components(np.zeros(2), -1.0),
                                                     ValueError, r"dead_components: threshold must be"),
    "emflow.contrib.reseed.reseed_dead": Refuses("threshold = -1", lambda c: reseed.reseed_dead(c["g"], c["state"],
                                                                                                c["key"], -1.0),
                                                 ValueError, r"dead_components: threshold must be a finite number in \[0, inf\)"),
    "emflow.contrib.reseed.split_component": Refuses("target = 5 for K = 2", lambda c: reseed.split_component(
        c["g"], c["pg"], 0, 5, c["key"]), ValueError, r"split_component target: k must lie in \[0, K\)"),
    "emflow.contrib.reseed.split_optimizer_state": Refuses("target = 5 for K = 2", lambda c: reseed.split_optimizer_state(
        c["g"], c["state"].opt_state, 0, 5), ValueError, r"split_optimizer_state target: k must lie in \[0, K\)"),
    "emflow.contrib.shared_rounds.schedule": Refuses("num_shared = -1", lambda c: shared_rounds.schedule(-1, e_steps.exact),
                                                     ValueError, r"num_shared must be an integer >= 0"),
    "emflow.contrib.shared_rounds.uniform": NO_ARGS,
    "emflow.contrib.shared_rounds.uniform_e_step": Refuses("a batch of another width", lambda c: shared_rounds.uniform_e_step(
        c["g"], c["xb"]), ValueError, r"uniform_e_step: expected a batch of shape"),
    "emflow.contrib.shared_rounds.uniform_responsibilities": Refuses(
        "K = 0", lambda c: shared_rounds.uniform_responsibilities(3, 0), ValueError,
        r"uniform_responsibilities: num_components must be an integer >= 1"),
    # emflow.evaluation
    "emflow.evaluation.baselines.logit_gaussian_bits_per_dim": Refuses(
        "fewer images than pixels", lambda c: baselines.logit_gaussian_bits_per_dim(c["img"], c["img"]), ValueError,
        r"needs more than 64 training images, got 4"),
    "emflow.evaluation.baselines.pixel_histogram_bits_per_dim": Refuses(
        "float images", lambda c: baselines.pixel_histogram_bits_per_dim(np.zeros((4, 2)), np.zeros((4, 2))),
        ValueError, r"expected uint8 images"),
    "emflow.evaluation.baselines.sample_logit_gaussian": Refuses(
        "n = -1", lambda c: baselines.sample_logit_gaussian(c["img"], -1), ValueError,
        r"sample_logit_gaussian: n must be an integer >= 0"),
    "emflow.evaluation.baselines.sample_pixel_histogram": Refuses(
        "n = -1", lambda c: baselines.sample_pixel_histogram(c["img"], -1), ValueError,
        r"sample_pixel_histogram: n must be an integer >= 0"),
    "emflow.evaluation.diagnostics.component_report": Refuses(
        "labels of another length", lambda c: diagnostics.component_report(np.zeros((4, 2)), np.zeros(3, int)),
        ValueError, r"component_report: expected joint \(N, K\) and labels \(N,\)"),
    "emflow.evaluation.diagnostics.purity": Refuses("labels of another length", lambda c: diagnostics.purity(
        np.zeros(4, int), np.zeros(3, int)), ValueError, r"purity: assignment and labels must be"),
    "emflow.evaluation.feature_net.FeatureNetConfig": Refuses("epochs = 0", lambda c: feature_net.FeatureNetConfig(epochs=0),
                                                              ValueError, r"FeatureNetConfig: epochs must be >= 1"),
    "emflow.evaluation.feature_net.MissingFeatureNetError": EXCEPTION,
    "emflow.evaluation.feature_net.ResNet": FLAX,
    "emflow.evaluation.feature_net.TrainedFeatureNet": RECORD,
    "emflow.evaluation.feature_net.build": Refuses("a str as the config", lambda c: feature_net.build("x"), TypeError,
                                                   r"build: config must be a FeatureNetConfig"),
    "emflow.evaluation.feature_net.cache_dir": Refuses("dataset = 3", lambda c: feature_net.cache_dir(3), TypeError,
                                                       r"cache_dir: dataset must be a dataset name"),
    "emflow.evaluation.feature_net.load": Refuses("no network in the cache", lambda c: feature_net.load("mnist", c["tmp"]),
                                                  feature_net.MissingFeatureNetError,
                                                  r"no trained feature network for 'mnist'"),
    "emflow.evaluation.feature_net.load_or_train": Refuses("an unknown dataset", lambda c: feature_net.load_or_train(
        "x", root=c["tmp"]), ValueError, r"unknown dataset 'x'"),
    "emflow.evaluation.feature_net.num_parameters": Refuses("a str", lambda c: feature_net.num_parameters("x"), TypeError,
                                                            r"num_parameters: trained must be a TrainedFeatureNet"),
    "emflow.evaluation.feature_net.save": Refuses("a str", lambda c: feature_net.save("x", c["tmp"]), TypeError,
                                                  r"save: trained must be a TrainedFeatureNet"),
    "emflow.evaluation.feature_net.train_feature_net": Refuses(
        "labels of another length", lambda c: feature_net.train_feature_net(c["img"], np.zeros(3, int), c["img"],
                                                                            np.zeros(4, int)),
        ValueError, r"train_feature_net: expected uint8 images \(n, H, W, 1\) and \(n,\) labels"),
    "emflow.evaluation.interpolation.genmm_latents": Refuses("a batch of another width", lambda c: interpolation.genmm_latents(
        c["g"], c["pg"], c["xb"]), ValueError, SHAPE),
    "emflow.evaluation.interpolation.interpolate_genmm": Refuses(
        "generator = 'x'", lambda c: interpolation.interpolate_genmm(c["g"], c["pg"], c["xa"], c["xz"], c["ts"],
                                                                      generator="x"),
        ValueError, r"interpolate_genmm: generator must be 'argmax' or 'prior'"),
    "emflow.evaluation.interpolation.interpolate_latmm": Refuses(
        "single examples, not batches", lambda c: interpolation.interpolate_latmm(c["l"], c["pl"], c["x0"], c["x0"],
                                                                                  c["ts"]),
        ValueError, r"interpolate_latmm: x1 and x2 must both have shape \(B, \*event_shape\)"),
    "emflow.evaluation.metrics.check_features": Refuses("arrays of different widths", lambda c: metrics.check_features(
        "m", np.zeros((4, 2)), np.zeros((4, 3))), ValueError, r"m: "),
    "emflow.evaluation.metrics.feature_statistics": Refuses("one sample", lambda c: metrics.feature_statistics(
        np.zeros((1, 2))), ValueError, r"needs at least 2 samples"),
    "emflow.evaluation.metrics.frechet_distance": Refuses("arrays of different widths", lambda c: metrics.frechet_distance(
        np.zeros((4, 2)), np.zeros((4, 3))), ValueError, r"frechet_distance"),
    "emflow.evaluation.metrics.frechet_distance_from_statistics": Refuses(
        "statistics of different widths", lambda c: metrics.frechet_distance_from_statistics(
            np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)), ValueError, r"expected mu \(F,\) and sigma \(F, F\)"),
    "emflow.evaluation.metrics.inception_score": Refuses("num_splits = 0", lambda c: metrics.inception_score(
        np.full((4, 2), 0.5), 0), ValueError, r"inception_score: num_splits must lie in"),
    "emflow.evaluation.metrics.mmd": Refuses("block_size = 0", lambda c: metrics.mmd(np.zeros((4, 2)), np.ones((4, 2)),
                                                                                     block_size=0),
                                             ValueError, r"mmd: block_size must be an integer >= 1"),
    "emflow.evaluation.metrics.one_nn_accuracy": Refuses("block_size = 0", lambda c: metrics.one_nn_accuracy(
        np.zeros((4, 2)), np.ones((4, 2)), block_size=0), ValueError, r"one_nn_accuracy: block_size must be"),
    "emflow.evaluation.plots.component_classes": Refuses("shares of 1 component for 2 win counts",
                                                         lambda c: plots.component_classes([[1.0]], [1, 2], c["tmp"] / "c.png"),
                                                         ValueError, r"component_classes: expected class_share \(K, C\)"),
    "emflow.evaluation.plots.image_grid": Refuses("images of two axes", lambda c: plots.image_grid(
        np.zeros((4, 4)), c["tmp"] / "g.png"), ValueError, r"image_grid: images must have shape \(n, H, W, C\)"),
    "emflow.evaluation.plots.nll_curves": Refuses("no curves", lambda c: plots.nll_curves({}, c["tmp"] / "n.png"),
                                                  ValueError, r"nll_curves: curves must map at least one label"),
    # emflow.parallel
    "emflow.parallel.distributed.add_arguments": Refuses("a str as the parser", lambda c: distributed.add_arguments("x"),
                                                         TypeError, r"add_arguments: parser must be an argparse"),
    "emflow.parallel.distributed.initialize": Refuses("num_processes without a coordinator",
                                                      lambda c: distributed.initialize(num_processes=2), ValueError,
                                                      r"--num_processes / --process_id need --coordinator_address"),
    "emflow.parallel.distributed.initialize_from_args": Refuses(
        "a namespace without the flags", lambda c: distributed.initialize_from_args(argparse.Namespace()), TypeError,
        r"initialize_from_args: args must hold the flags of add_arguments"),
    "emflow.parallel.distributed.is_primary": NO_ARGS,
    "emflow.parallel.sharding.batch_sharding": Refuses("ndim = 0", lambda c: sharding.batch_sharding(c["mesh"], 0),
                                                       ValueError, r"batch_sharding: ndim must be an integer >= 1"),
    "emflow.parallel.sharding.example_sharding": Refuses("ndim = 0", lambda c: sharding.example_sharding(c["mesh"], 0),
                                                         ValueError, r"example_sharding: ndim must be an integer >= 1"),
    "emflow.parallel.sharding.for_mesh": Refuses("a str as the mesh", lambda c: sharding.for_mesh(c["g"], "x"), TypeError,
                                                 r"for_mesh: mesh must be a jax.sharding.Mesh"),
    "emflow.parallel.sharding.from_process_rows": Refuses(
        "3 rows where the process holds 4", lambda c: sharding.from_process_rows(np.zeros((3, 2)), c["mesh"], 4),
        ValueError, r"from_process_rows: this process holds examples 0:4 of 4"),
    "emflow.parallel.sharding.make_mesh": Refuses("components = 0", lambda c: sharding.make_mesh(components=0), ValueError,
                                                  r"make_mesh: components must be an integer >= 1"),
    "emflow.parallel.sharding.process_rows": Refuses("num_rows = -1", lambda c: sharding.process_rows(c["mesh"], -1),
                                                     ValueError, r"process_rows: num_rows must be an integer >= 0"),
    "emflow.parallel.sharding.replicated": Refuses("a str as the mesh", lambda c: sharding.replicated("x"), TypeError,
                                                   r"replicated: mesh must be a jax.sharding.Mesh"),
    "emflow.parallel.sharding.shard_tree": Refuses("num_components = 0", lambda c: sharding.shard_tree(c["pg"], c["mesh"], 0),
                                                   ValueError, r"num_components \(or None\) must be an integer >= 1"),
    "emflow.parallel.sharding.tree_shardings": Refuses("num_components = 0", lambda c: sharding.tree_shardings(
        c["pg"], c["mesh"], 0), ValueError, r"tree_shardings: num_components \(or None\) must be an integer >= 1"),
    # experiments.config
    "experiments.config.ConfigError": EXCEPTION,
    "experiments.config.ImageConfig": Refuses("epochs = 0", lambda c: xconfig.ImageConfig(epochs=0), xconfig.ConfigError,
                                              r"epochs"),
    "experiments.config.check_type": Refuses("2.5 for an int field", lambda c: xconfig.check_type("epochs", 2.5, int),
                                             xconfig.ConfigError, r"config.epochs must be int"),
    "experiments.config.field_named": Refuses("a misspelt field", lambda c: xconfig.field_named("epoch"),
                                              xconfig.ConfigError, r"config has no field 'epoch'; did you mean epochs"),
    "experiments.config.load": Refuses("a missing file", lambda c: xconfig.load(c["tmp"] / "nope.py"), xconfig.ConfigError,
                                       r"nope.py' does not exist"),
    "experiments.config.parse_value": Refuses("'2.5' for an int field", lambda c: xconfig.parse_value("epochs", "2.5"),
                                              xconfig.ConfigError, r"--config.epochs must be int, got '2.5'"),
    "experiments.config.split_overrides": Refuses("an override without a value", lambda c: xconfig.split_overrides(
        ["--config.epochs"]), xconfig.ConfigError, r"--config.epochs needs a value"),
    # models' and flows' methods
    **_mixture_methods("GenMM", "g", "pg", "pl"),
    "emflow.GenMM.init_with_partition": Refuses("3 centroids for K = 2", lambda c: c["g"].init_with_partition(
        c["key"], c["x"], np.ones((3, 2))), ValueError, r"GenMM: centroids must have shape \(K, N\)"),
    "emflow.GenMM.generator": Refuses("k = 5 for K = 2", lambda c: c["g"].generator(c["pg"], 5), ValueError,
                                      r"k must lie in \[0, K\) = \[0, 2\), got 5"),
    "emflow.GenMM.generator_log_prob": Refuses("a batch of another width", lambda c: c["g"].generator_log_prob(
        c["pg"], c["xb"]), ValueError, SHAPE),
    **_mixture_methods("LatMM", "l", "pl", "pg"),
    "emflow.LatMM.init_with_partition": Refuses("an init batch smaller than K", lambda c: c["l"].init_with_partition(
        c["key"], c["x1"]), ValueError, r"the init batch has 1 examples, fewer than K = 2"),
    **_mixture_methods("HybridMM", "h", "ph", "pg"),
    **_flow_methods("VectorFlow", "vf", "pv", "x"),
    **_flow_methods("AutoregressiveFlow", "af", "paf", "x"),
    **_flow_methods("Glow", "glow", "pglow", "img_f"),
}


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Models, parameters, keys and arrays every row reads, built (and compiled) before any row runs."""
    key = jax.random.PRNGKey(0)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32))
    vf = emflow.VectorFlow(2, num_steps=1, hidden=4)
    af = emflow.AutoregressiveFlow(2, num_steps=1, hidden=4)
    glow = emflow.Glow((4, 4, 1), 1, 1, 4)
    g, l = emflow.GenMM(vf, 2), emflow.LatMM(vf, 2)
    h = emflow.HybridMM(g, l)
    img_f = jnp.asarray(np.random.default_rng(1).standard_normal((4, 4, 4, 1)).astype(np.float32))
    cfg = train.TrainConfig(epochs=1, batch_size=4, em_every=1, init_batch_size=8, num_samples=0, warmup_steps=1)
    pg = g.init(key, x)
    opt = train.make_optimizer(cfg)
    return {"key": key, "x": x, "x1": x[:1], "x0": x[0], "xa": x[:2], "xz": x[2:4], "xb": jnp.ones((3, 3)), "xn": np.asarray(x), "y": np.arange(8) % 2, "vf": vf,
            "glow": glow, "g": g, "l": l, "h": h, "pg": pg, "pl": l.init(key, x), "ph": h.init(key, x),
            "pv": vf.init(key, x), "af": af, "paf": af.init(key, x), "pglow": glow.init(key, img_f), "img_f": img_f,
            "img": np.zeros((4, 8, 8, 1), np.uint8), "ts": jnp.linspace(0.0, 1.0, 3), "cfg": cfg, "opt": opt,
            "state": train.init_state(g, opt, pg), "mesh": sharding.make_mesh(),
            "pre": FeaturePreprocessor("standardize", np.zeros(2, np.float32), np.ones(2, np.float32)),
            "tmp": tmp_path_factory.mktemp("census")}


def test_the_census_lists_every_public_callable():
    public = public_callables()
    assert not sorted(set(public) - set(CENSUS)), f"public callables without a census entry: {sorted(set(public) - set(CENSUS))}"
    assert not sorted(set(CENSUS) - set(public)), f"census entries for no public callable: {sorted(set(CENSUS) - set(public))}"


REFUSALS = sorted((name, row) for name, row in CENSUS.items() if isinstance(row, Refuses))


@pytest.mark.parametrize("name,row", REFUSALS, ids=[name for name, _ in REFUSALS])
def test_each_refuses_its_bad_argument_before_compiling(ctx, name, row):
    with CompileCounter() as compiles, pytest.raises(row.error) as info:
        row.call(ctx)
    assert re.search(row.pattern, str(info.value)), f"{name} ({row.bad}): {str(info.value)!r} !~ {row.pattern!r}"
    assert compiles.count == 0, f"{name} ({row.bad}) compiled {compiles.count} program(s) before refusing"


def summary() -> str:
    """The census as the faults guide shows it: counts by kind and by package."""
    public = public_callables()
    refuses = [n for n, r in CENSUS.items() if isinstance(r, Refuses)]
    reasons = collections.Counter(r.reason for r in CENSUS.values() if isinstance(r, Exempt))
    def package(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2]) if parts[0] == "experiments" or parts[1] in SUBPACKAGES else "emflow"

    packages = collections.Counter(package(n) for n in refuses)
    lines = [f"{len(public)} public callables: **{len(refuses)} check their arguments** and refuse a bad one "
             f"before compiling anything (one bad call each, run by `tests/test_api_census.py`); "
             f"{sum(reasons.values())} take no argument a caller can get wrong:", ""]
    lines += [f"- {n} × {reason}" for reason, n in reasons.most_common()]
    lines += ["", "Checked, by package (`emflow`: the top level and the models' and flows' methods): " + ", ".join(f"`{p}` {n}" for p, n in sorted(packages.items())) + "."]
    return "\n".join(lines)


def markdown_table() -> str:
    """Every entry as a row: the callable, the bad argument it was given (or why none) and the error."""
    lines = ["| public callable | bad argument | error |", "| --- | --- | --- |"]
    for name, row in sorted(CENSUS.items()):
        if isinstance(row, Refuses):
            lines.append(f"| `{name}` | {row.bad} | `{row.error.__name__}` |")
        else:
            lines.append(f"| `{name}` | none: {row.reason} | |")
    return "\n".join(lines)


def test_the_docs_show_the_census():
    page = (ROOT / "docs" / "guides" / "faults_and_bad_inputs.md").read_text()
    stale = "the census of docs/guides/faults_and_bad_inputs.md is stale: python tests/test_api_census.py"
    assert summary() in page and markdown_table() in page, stale


if __name__ == "__main__":
    print(summary() + "\n\n" + markdown_table())
