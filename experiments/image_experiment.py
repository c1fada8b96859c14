"""The image experiments' harness: GenMM / LatMM with EM on MNIST or Fashion-MNIST.

Used by ``experiments.mnist_genmm``, ``mnist_latmm``, ``fashion_mnist_genmm``,
``fashion_mnist_latmm`` (and ``table1``). Writes into ``--workdir``:
``config.json``, ``metrics.jsonl`` (one line per epoch), ``nll.png`` (NLL vs
epoch), ``samples/epoch_*.png`` (after each EM round), ``checkpoints/`` and
``summary.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
import time

import jax
import numpy as np

import emflow
from emflow.evaluation import baselines as baselines_lib
from emflow import data as data_lib
from emflow import train
from emflow.parallel import distributed, sharding
from emflow.data import download
from emflow.bijectors.conditioners import CONV_IMPLS
from emflow.bijectors.split import SplitPrior
from emflow.contrib import annealing, balanced, shared_rounds
from emflow.flows.glow import TOP_PRIORS
from emflow.mixtures.latmm import LATENT_PARTITION_SPACES
from experiments import config as config_lib

MODELS = {"genmm": emflow.GenMM, "latmm": emflow.LatMM}


def build_parser(dataset: str, model: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m experiments.{dataset}_{model}",
        description=f"{model.upper()} on {dataset} with EM (the paper's Algorithm 1). Every option that is a field of "
                    "the configuration (experiments.config.ImageConfig) defaults to the job's configuration file.",
    )
    p.add_argument("--config", metavar="FILE", help=f"the job's configuration file (default: experiments/configs/{dataset}_{model}.py); "
                   "--config.NAME=VALUE changes any field of it (experiments.config.ImageConfig)")
    p.add_argument("--preset", choices=["cpu", "paper"], help="cpu: the job's own file; paper: experiments/configs/paper_<model>.py")
    p.add_argument("--components", type=int, help="K, the number of mixture components (hybrid: of generators)")
    p.add_argument("--latent_components", type=int,
                   help="hybrid: M, the latent Gaussians the K generators share (K * M mixture components)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch_size", type=int)
    p.add_argument("--levels", type=int, help="Glow levels (L)")
    p.add_argument("--steps", type=int, help="flow steps per level")
    p.add_argument("--hidden", type=int, help="hidden channels of the coupling networks")
    p.add_argument("--em_every", type=int, help="t_EM: epochs between prior updates")
    p.add_argument("--num_train", type=int, help="training images (the first N of the training set; 0 = all)")
    p.add_argument("--num_test", type=int, help="test images to evaluate on (the first N; 0 = all 10,000)")
    p.add_argument("--scheme", choices=["uniform", "paper"], help="dequantization: uniform 28x28, or the paper's 32x32")
    p.add_argument("--linear", choices=["lu", "plain"], help="1x1 convolution parametrisation")
    p.add_argument("--split_prior", choices=SplitPrior.__args__,
                   help="density of the halves split off at every level but the last: Glow's learned conditional "
                        "Gaussian, or N(0, I)")
    p.add_argument("--component_axis", choices=["vmap", "unrolled", "scan"], help="GenMM: how the K generators run")
    p.add_argument("--e_step", choices=["per_batch", "cached"],
                   help="responsibilities on every batch, or once per EM round")
    p.add_argument("--top_prior", choices=TOP_PRIORS,
                   help="GenMM: density of the generators' top-level latent: N(0, I), or a learned diagonal Gaussian "
                        "(Glow's learn_top)")
    p.add_argument("--split_log_std_floor", type=float,
                   help="smallest log-std of the conditional split priors (Split.log_std_floor); 'nan' for none")
    p.add_argument("--compute_dtype", choices=["float32", "bfloat16"],
                   help="dtype of the coupling networks' arithmetic (mixed precision)")
    p.add_argument("--conv_impl", choices=CONV_IMPLS,
                   help="how the 3x3 convolutions run: XLA's convolution, or one matrix product each")
    p.add_argument("--learning_rate", type=float, help="peak learning rate")
    p.add_argument("--warmup_steps", type=int, help="learning-rate warm-up steps (paper: 1000)")
    p.add_argument("--schedule", choices=["noam", "cosine"], help="learning-rate decay after the warm-up")
    p.add_argument("--logit_alpha", type=float,
                   help="put y = logit(alpha + (1 - 2 alpha) x) in front of the flow (0: no logit; paper: 0)")
    p.add_argument("--init", choices=["default", "shared"],
                   help="default: k-means partition (GenMM) / k-means latents (LatMM); shared: the paper's init")
    p.add_argument("--shared_rounds", type=int,
                   help="ablation (emflow.contrib.shared_rounds): first EM rounds in which every generator learns "
                        "every image (gamma = 1/K); 0: none")
    p.add_argument("--warm_start_rounds", type=int,
                   help="EM rounds whose responsibilities are the init partition's (hard); 0: off")
    p.add_argument("--balanced_parts", action="store_true", default=None,
                   help="ablation (emflow.contrib.balanced): equal-size parts for the warm start")
    p.add_argument("--balanced_e_step", action="store_true", default=None,
                   help="ablation (emflow.contrib.balanced): responsibilities reweighted so every component's "
                        "total is N/K")
    p.add_argument("--trunk_steps", type=int,
                   help="GenMM: Glow steps every generator shares in front of it (emflow.GlowTrunk; 0: none)")
    p.add_argument("--shared_first_level", action=argparse.BooleanOptionalAction, default=None,
                   help="GenMM: the generators' first-level Glow steps become one trunk they all share "
                        "(the generators keep a squeeze and split there, and their own other levels)")
    p.add_argument("--tempering", choices=["none", "annealed", "paper"],
                   help="E-step after the warm start: exact, the paper code's 1/D, or (ablation, "
                        "emflow.contrib.annealing) deterministic annealing from beta 0.1 over 3 rounds")
    p.add_argument("--final_prior_update", action=argparse.BooleanOptionalAction, default=None,
                   help="after the last epoch, pi <- the final generators' mean responsibilities on the training "
                        "set (one more E-step; never lowers the training likelihood)")
    p.add_argument("--partition_size", type=int,
                   help="the partition a mixture starts from is k-means of this many training images: of their "
                        "features (--partition_space) for GenMM's generators and LatMM's Gaussians (0: the init batch's "
                        "512)")
    p.add_argument("--partition_space", choices=list(LATENT_PARTITION_SPACES),
                   help="what that k-means clusters: the pixels ('input'), their direction ('unit'), the direction "
                        "of the images blurred by one pixel ('blurred_unit'), or LatMM's top-level latents "
                        "('latent')")
    p.add_argument("--kmeans_starts", type=int,
                   help="k-means starts of that partition, the least-inertia one kept")
    p.add_argument("--no_baselines", dest="baselines", action="store_false", default=None,
                   help="skip the closed-form baselines")
    p.add_argument("--data_dir", help="folder with mnist/ and fashion_mnist/ (default: $EMFLOW_DATA_DIR, else TFDS)")
    p.add_argument("--workdir", help="where metrics, plots and checkpoints go (default: runs/<dataset>_<model>_k<K>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --workdir from its last checkpoint")
    p.add_argument("--seed", type=int)
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--mesh_components", type=int, default=None,
                   help="GenMM: split the K generators over this many devices (a (data, components) mesh over "
                        "all devices of all processes); default 1 when several processes run, else no mesh")
    distributed.add_arguments(p)
    return p


# The hybrid (a GenMM whose generators share LatMM's latent) takes the GenMM's paper configuration.
PRESET_MODEL = {"genmm": "genmm", "latmm": "latmm", "hybrid": "genmm"}

SWEEP_SIZE_FLAGS = ("epochs", "em_every", "num_train", "num_test", "levels", "steps", "hidden", "warmup_steps")


def add_sweep_size_arguments(p: argparse.ArgumentParser, *, epochs: int, em_every: int, num_train: int,
                             num_test: int, warmup_steps: int = 20) -> None:
    """The flags a sweep of runs (``table1``, ``init_variants``) passes on to every run, with a small Glow by default."""
    for name, default in zip(SWEEP_SIZE_FLAGS, (epochs, em_every, num_train, num_test, 2, 2, 32, warmup_steps)):
        p.add_argument(f"--{name}", type=int, default=default)
    for name, what in SWEEP_PROTOCOL_OPTIONS.items():
        p.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=SWEEP_PROTOCOL[name],
                       help=f"GenMM: {what} in every run (default: off, the sweep's documented protocol)")
    p.add_argument("--top_prior", choices=TOP_PRIORS, default=SWEEP_PROTOCOL["top_prior"],
                   help="GenMM: the generators' top-level prior in every run (default: standard, the sweep's "
                        "documented protocol; learned: the GenMM main jobs')")
    p.add_argument("--partition_size", type=int, default=SWEEP_PROTOCOL["partition_size"],
                   help="training images whose k-means partition every run starts from (0: the init batch's)")
    p.add_argument("--split_log_std_floor", type=float, default=SWEEP_PROTOCOL["split_log_std_floor"],
                   help="smallest log-std of the split priors in every run (default: nan, none: Glow's)")
    p.add_argument("--partition_space", choices=list(LATENT_PARTITION_SPACES), default=None,
                   help="what every run's k-means partition clusters (default: the job's configuration)")
    p.add_argument("--kmeans_starts", type=int, default=None,
                   help="k-means starts of every run's partition (default: the job's configuration)")
    p.add_argument("--data_dir")
    p.add_argument("--no_progress", action="store_true")


# A sweep's runs keep the sweep's documented protocol: the main jobs' additions (JOB_PRESETS, the cpu preset's
# learned top prior for GenMM) are off unless the sweep is asked for them (``--shared_first_level
# --final_prior_update --top_prior learned``: the MNIST GenMM main job's setting).
SWEEP_PROTOCOL_OPTIONS = {"shared_first_level": "the generators' first level shared",
                          "final_prior_update": "the closing pi update"}
SWEEP_PROTOCOL = {"shared_first_level": False, "final_prior_update": False, "top_prior": "standard",
                  "partition_size": config_lib.ImageConfig.partition_size, "split_log_std_floor": math.nan}


def sweep_protocol_flags(values: dict = SWEEP_PROTOCOL) -> list[str]:
    """The protocol options (``SWEEP_PROTOCOL``'s names) as ``image_experiment`` flags."""
    return [*(f"--{'' if values[name] else 'no-'}{name}" for name in SWEEP_PROTOCOL_OPTIONS),
            "--top_prior", values["top_prior"], "--partition_size", str(values["partition_size"]),
            "--split_log_std_floor", str(values["split_log_std_floor"])]


SWEEP_PROTOCOL_FLAGS = tuple(sweep_protocol_flags())


def sweep_size_flags(args: argparse.Namespace) -> list[str]:
    """``add_sweep_size_arguments``' values as ``image_experiment`` flags, the protocol options included."""
    protocol = sweep_protocol_flags({name: getattr(args, name) for name in SWEEP_PROTOCOL})
    flags = [*protocol, *(item for name in SWEEP_SIZE_FLAGS for item in (f"--{name}", str(getattr(args, name))))]
    flags += [item for name in ("partition_space", "kmeans_starts") if getattr(args, name, None) is not None
              for item in (f"--{name}", str(getattr(args, name)))]
    return flags + (["--data_dir", args.data_dir] if args.data_dir else []) + (
        ["--no_progress"] if args.no_progress else [])


def config_path(args: argparse.Namespace, dataset: str, model: str) -> pathlib.Path:
    """The configuration file of this run: ``--config``, else the job's own (``--preset paper``: the paper's)."""
    if args.config and args.preset:
        raise config_lib.ConfigError("give --config or --preset, not both")
    if args.config:
        return pathlib.Path(args.config)
    name = f"paper_{PRESET_MODEL[model]}" if args.preset == "paper" else f"{dataset}_{model}"
    return config_lib.CONFIG_DIR / f"{name}.py"


def parse(dataset: str, model: str, argv=None) -> argparse.Namespace:
    """The command line ``argv`` resolved against the job's configuration (``resolve``).

    A configuration that cannot be used (a field that does not exist, a value of the wrong type
    or range) ends the program with a message that names it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        rest, overrides = config_lib.split_overrides(argv)
        args = build_parser(dataset, model).parse_args(rest)
        return resolve(args, dataset, model, overrides)
    except config_lib.ConfigError as err:
        raise SystemExit(f"configuration: {err}") from err


def resolve(args: argparse.Namespace, dataset: str, model: str, overrides: dict[str, str] | None = None
            ) -> argparse.Namespace:
    """Every configuration field of this run: the configuration file's, then ``--config.NAME=VALUE``
    (``overrides``), then the named flags given.

    Returns the flags with every field filled, ``config`` (the resolved ``ImageConfig``) and
    ``shared_first_level_from_preset`` (whether the shared first level is the file's choice rather
    than the command line's: ``settle_shared_first_level`` may drop it then)."""
    config = config_lib.load(config_path(args, dataset, model))
    changes = {name: config_lib.parse_value(name, text) for name, text in (overrides or {}).items()}
    given = {name: value for name, value in vars(args).items()
             if value is not None and name in config_lib.FIELD_TYPES}
    if given.get("split_log_std_floor") is not None and math.isnan(given["split_log_std_floor"]):
        given["split_log_std_floor"] = None   # "--split_log_std_floor nan": none, whatever the file says
    config = config.replace(**{**changes, **given})
    values = {**vars(args), **dataclasses.asdict(config), "config": config}
    values["shared_first_level_from_preset"] = config.shared_first_level and not (
        "shared_first_level" in changes or "shared_first_level" in given)
    return argparse.Namespace(**values)


def settle_shared_first_level(args: argparse.Namespace, mesh) -> argparse.Namespace:
    """Drop the configuration file's shared first level where this run cannot have one, and say why.

    A shared first level given on the command line is kept (and refused later with a clear error)."""
    if not (args.shared_first_level and args.shared_first_level_from_preset):
        return args
    reasons = [why for clash, why in ((args.trunk_steps, f"--trunk_steps {args.trunk_steps}"),
                                      (args.levels < 2, f"--levels {args.levels}"),
                                      (mesh is not None, "a mesh (a trunk has no K axis to shard)")) if clash]
    if not reasons:
        return args
    print(f"the configuration's shared first level is off in this run: {', '.join(reasons)}")
    return argparse.Namespace(**{**vars(args), "shared_first_level": False,
                                 "config": args.config.replace(shared_first_level=False)})


def run(dataset: str, model: str, argv=None) -> dict:
    """Resolve the command line ``argv`` against the job's configuration (``parse``), train, and return the summary."""
    args = parse(dataset, model, argv)
    distributed.initialize_from_args(args)  # before anything touches a device
    workdir = pathlib.Path(args.workdir or f"runs/{dataset}_{model}_k{args.components}")

    mesh = None
    if args.mesh_components is not None or jax.process_count() > 1:
        mesh = sharding.make_mesh(components=args.mesh_components or 1)
        print(f"mesh {dict(mesh.shape)} over {jax.device_count()} devices of {jax.process_count()} process(es)")
    if jax.process_count() > 1:
        ds, x_train, x_test, y_test = load_process_rows(dataset, args, mesh)
    else:
        ds = data_lib.load_dataset(dataset, download.ensure_dataset(dataset, args.data_dir))
        check_num_examples(dataset, args, {"train": len(ds.x_train), "test": len(ds.x_test)})
        x_train = ds.x_train[: args.num_train] if args.num_train else ds.x_train
        x_test = ds.x_test[: args.num_test] if args.num_test else ds.x_test
        y_test = ds.y_test[: len(x_test)]
    dequantizer = emflow.Dequantizer(ds.x_train.shape[1:], scheme=args.scheme)
    generators = model in ("genmm", "hybrid")
    if args.trunk_steps < 0 or (args.trunk_steps and not generators):
        raise SystemExit(f"--trunk_steps must be >= 0 and is a GenMM option, got {args.trunk_steps} for {model}")
    args = settle_shared_first_level(args, mesh)
    if args.shared_first_level and (not generators or args.trunk_steps):
        raise SystemExit("--shared_first_level is a GenMM option and replaces --trunk_steps (its trunk has --steps steps)")
    flow = emflow.Glow(dequantizer.model_shape, num_levels=args.levels, num_steps=args.steps,
                       hidden_channels=args.hidden, linear=args.linear, split_prior=args.split_prior,
                       top_prior=args.top_prior, compute_dtype=args.compute_dtype, conv_impl=args.conv_impl,
                       first_level_steps=0 if args.shared_first_level else None,
                       split_log_std_floor=args.split_log_std_floor)
    logit = None
    if args.logit_alpha:
        if args.scheme == "paper":
            raise SystemExit("--logit_alpha needs --scheme uniform (the paper scheme's inputs lie in [-0.5, 0.5])")
        logit = emflow.Logit(dequantizer.model_shape, args.logit_alpha)
    trunk = None
    trunk_steps = args.steps if args.shared_first_level else args.trunk_steps
    if trunk_steps:  # the logit map moves into the trunk, so that the trunk sees logit-space images
        trunk = emflow.GlowTrunk(dequantizer.model_shape, trunk_steps, args.hidden, linear=args.linear,
                                 compute_dtype=args.compute_dtype, conv_impl=args.conv_impl, prefix=logit)
    elif logit is not None:
        flow = emflow.Prefixed(logit, flow)
    if generators:
        if args.partition_space == "latent":
            raise SystemExit("--partition_space latent is a LatMM option (GenMM partitions its input: "
                             "'input', 'unit' or 'blurred_unit')")
        mixture = emflow.GenMM(flow, args.components, component_axis=args.component_axis,
                               init_strategy="partition" if args.init == "default" else "shared", trunk=trunk,
                               partition_space=args.partition_space, kmeans_starts=args.kmeans_starts)
        if model == "hybrid":
            if args.top_prior == "learned":
                raise SystemExit("--top_prior learned is a GenMM option (the hybrid's shared latent Gaussians are "
                                 "its learned top prior)")
            mixture = emflow.HybridMM(mixture, emflow.LatMM(flow, args.latent_components))
    else:
        if args.top_prior == "learned":
            raise SystemExit("--top_prior learned is a GenMM option (LatMM's latent Gaussians are its learned top prior)")
        mixture = emflow.LatMM(flow, args.components, init_strategy="shared" if args.init == "shared" else "kmeans",
                               partition_space=args.partition_space, kmeans_starts=args.kmeans_starts)
    config = train.TrainConfig(epochs=args.epochs, batch_size=args.batch_size, em_every=args.em_every,
                               learning_rate=args.learning_rate, warmup_steps=args.warmup_steps, seed=args.seed,
                               e_step=args.e_step, schedule=args.schedule, warm_start_rounds=args.warm_start_rounds,
                               tempering="paper" if args.tempering == "paper" else "none",
                               final_prior_update=args.final_prior_update, partition_size=args.partition_size)
    unit = ("nats per pixel of the 32x32 resized input (the paper's protocol; not comparable with 28x28 bits/dim)"
            if args.scheme == "paper" else "per pixel of the original 28x28 image")
    print(f"{model.upper()} K={args.components} on {dataset}: {len(x_train)} training / {len(x_test)} test images, "
          f"Glow {args.levels}x{args.steps}x{args.hidden} on {dequantizer.model_shape}"
          f"{f' after logit (alpha {args.logit_alpha:g})' if args.logit_alpha else ''}, {args.epochs} epochs, "
          f"batch {args.batch_size}, t_EM {args.em_every}, lr {args.learning_rate:g} ({args.schedule}, warm-up "
          f"{args.warmup_steps} steps), init {args.init}, "
          f"{f'{args.shared_rounds} shared round(s), ' if args.shared_rounds else ''}warm start {args.warm_start_rounds} round(s), "
          f"E-step {args.tempering}"
          f"{', first level shared' if args.shared_first_level else ''}"
          f"{', final pi update' if args.final_prior_update else ''}"
          f"{f', trunk of {trunk_steps} shared step(s)' if trunk_steps else ''}; backend {jax.default_backend()}; NLL {unit}")
    baselines = ({} if not args.baselines or args.scheme == "paper" or jax.process_count() > 1 else
                 closed_form_baselines(x_train, x_test))
    if jax.process_count() > 1 and args.baselines:
        print("closed-form baselines skipped: they are fitted on one host's copy of the whole training set")
    run_info = {"dataset": dataset, "num_train": len(x_train), "num_test": len(x_test), "scheme": args.scheme}
    t0 = time.time()
    result = train.fit(mixture, config, dequantizer, x_train, x_test, workdir=workdir, resume=args.resume,
                       run_info=run_info, progress=not args.no_progress, y_test=y_test, mesh=mesh,
                       e_step_of_round=ablation_schedule(args, config, mixture))
    history = result.history
    best = min(history, key=lambda r: r["test_nll_nats_per_dim"])
    last_report = next((r["components"] for r in reversed(history) if "components" in r), None)
    summary = {
        "dataset": dataset, "model": model, "components": args.components, "preset": args.preset,
        "epochs": args.epochs, "num_train": len(x_train), "num_test": len(x_test), "scheme": args.scheme, "nll_unit": unit,
        "glow": {"levels": args.levels, "steps": args.steps, "hidden": args.hidden, "linear": args.linear,
                 "shared_first_level": args.shared_first_level, "split_prior": args.split_prior,
                 "top_prior": args.top_prior, "split_log_std_floor": args.split_log_std_floor},
        "batch_size": args.batch_size, "em_every": args.em_every, "warmup_steps": args.warmup_steps, "seed": args.seed,
        "e_step": args.e_step, "compute_dtype": args.compute_dtype, "conv_impl": args.conv_impl,
        "best_test_nll_nats_per_dim": best["test_nll_nats_per_dim"],
        "best_test_bits_per_dim": best["test_bits_per_dim"], "best_epoch": best["epoch"],
        "final_test_nll_nats_per_dim": history[-1]["test_nll_nats_per_dim"],
        "final_pi": history[-1]["pi"], "backend": jax.default_backend(),
        "final_test_bits_per_dim": history[-1]["test_bits_per_dim"],
        "logit_alpha": args.logit_alpha, "init": args.init, "shared_rounds": args.shared_rounds,
        "warm_start_rounds": args.warm_start_rounds, "final_prior_update": args.final_prior_update,
        "partition_size": args.partition_size,
        "partition_space": args.partition_space, "kmeans_starts": args.kmeans_starts,
        "tempering": args.tempering, "learning_rate": args.learning_rate, "schedule": args.schedule,
        "baselines_bits_per_dim": baselines, "final_components": last_report,
        "seconds_this_call": round(time.time() - t0, 1),
        "history": [{k: r[k] for k in ("epoch", "train_nll_nats_per_dim", "test_nll_nats_per_dim", "pi")} for r in history],
        "config": dataclasses.asdict(args.config),
    }
    if distributed.is_primary():
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"best test NLL {summary['best_test_nll_nats_per_dim']:.4f} nats/dim "
          f"({summary['best_test_bits_per_dim']:.4f} bits/dim) at epoch {best['epoch']}; outputs in {workdir}")
    print(result_table(summary))
    return summary


def ablation_schedule(args: argparse.Namespace, config: train.TrainConfig, mixture):
    """The E-step schedule of the ablation flags (``emflow.contrib``), or None for ``fit``'s own.

    ``--tempering annealed`` anneals the first 3 exact rounds from beta 0.1; ``--balanced_parts`` and
    ``--balanced_e_step`` balance the warm start's parts and the exact rounds; ``--shared_rounds N`` puts
    N rounds of gamma = 1/K before everything else.
    """
    if not (args.tempering == "annealed" or args.balanced_parts or args.balanced_e_step or args.shared_rounds):
        return None
    schedule = train.e_step_schedule(config, math.prod(mixture.event_shape), mixture.init_strategy != "shared")
    if args.tempering == "annealed":
        schedule = annealing.schedule(0.1, 3, schedule)
    if args.balanced_parts or args.balanced_e_step:
        schedule = balanced.schedule(schedule, parts=args.balanced_parts, e_step=args.balanced_e_step)
    if args.shared_rounds:
        schedule = shared_rounds.schedule(args.shared_rounds, schedule)
    return schedule


def check_num_examples(dataset: str, args: argparse.Namespace, sizes: dict[str, int]) -> None:
    """Refuse ``--num_train`` / ``--num_test`` beyond the split's ``sizes[split]`` examples (never clipped)."""
    for split in ("train", "test"):
        asked = getattr(args, f"num_{split}")
        if asked and asked > sizes[split]:
            raise SystemExit(f"--num_{split} {asked} exceeds the {sizes[split]} examples of {dataset}")


def load_process_rows(dataset: str, args: argparse.Namespace, mesh):
    """Several processes: each loads only the training and test examples its devices hold.

    Returns ``(ds, x_train, x_test, y_test)``: ``ds`` holds this process's examples only; the
    other three are global ``jax.Array`` s spread over the mesh (``sharding.example_sharding``).
    """
    sizes = data_lib.split_sizes(dataset, args.data_dir)
    check_num_examples(dataset, args, sizes)
    wanted = {"train": args.num_train or sizes["train"], "test": args.num_test or sizes["test"]}
    try:
        rows = {split: sharding.process_rows(mesh, n) for split, n in wanted.items()}
    except ValueError as err:
        raise SystemExit(str(err)) from err
    ds = data_lib.load_dataset(dataset, args.data_dir, train_rows=rows["train"], test_rows=rows["test"])
    print(f"process {jax.process_index()} of {jax.process_count()} loaded training examples "
          f"{rows['train'].start}:{rows['train'].stop} of {wanted['train']} and test examples "
          f"{rows['test'].start}:{rows['test'].stop} of {wanted['test']}")
    return (ds, sharding.from_process_rows(ds.x_train, mesh, wanted["train"]),
            sharding.from_process_rows(ds.x_test, mesh, wanted["test"]),
            sharding.from_process_rows(ds.y_test, mesh, wanted["test"]))


def closed_form_baselines(x_train, x_test) -> dict:
    """The rulers of ``emflow.evaluation.baselines``, fitted on this run's training images, in test bits/dim."""
    t0 = time.time()
    out = {"pixel_histogram": baselines_lib.pixel_histogram_bits_per_dim(x_train, x_test)}
    pixels = int(np.prod(x_train.shape[1:]))
    if len(x_train) > pixels:
        out["logit_gaussian"] = baselines_lib.logit_gaussian_bits_per_dim(x_train, x_test)
    gaussian = (f"{out['logit_gaussian']:.4f}" if "logit_gaussian" in out
                else f"not fitted (a full covariance needs more than {pixels} training images)")
    print(f"baselines (test bits/dim, fitted on the same {len(x_train)} images in {time.time() - t0:.0f} s): "
          f"per-pixel histograms {out['pixel_histogram']:.4f}, logit-space Gaussian {gaussian}")
    return out


def result_table(summary: dict) -> str:
    """The run's result beside its rulers, as markdown."""
    unit = "bits/dim" if summary["scheme"] != "paper" else "nats/pixel (32x32)"
    value = summary["final_test_bits_per_dim"] if summary["scheme"] != "paper" else summary["final_test_nll_nats_per_dim"]
    pi = " ".join(f"{p:.3f}" for p in summary["final_pi"])
    rows = [f"| model | test {unit} |", "| --- | --- |",
            f"| {summary['model'].upper()} K={summary['components']} (final epoch; pi = {pi}) | {value:.4f} |"]
    names = {"pixel_histogram": "per-pixel histograms (baseline)", "logit_gaussian": "logit-space Gaussian (baseline)"}
    for key, v in (summary.get("baselines_bits_per_dim") or {}).items():
        rows.append(f"| {names[key]} | {v:.4f} |")
    report = summary.get("final_components")
    if report:
        rows.append("\nposterior share of the test set per component: "
                    + " ".join(f"{v:.3f}" for v in report["posterior_share"]) + f"; purity {report['purity']:.3f}")
    return "\n".join(rows)
