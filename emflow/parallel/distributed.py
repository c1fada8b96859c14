"""Several processes, one program: JAX's multi-controller runtime, started the way JAX documents it.

Every process runs the same script. ``initialize`` calls ``jax.distributed.initialize``.
After that, ``jax.devices()`` lists the devices of *all* processes, a mesh built over them
spans the hosts, and ``train.fit`` runs one SPMD program across them.

- **On Cloud TPU pod slices and SLURM**, ``initialize(auto=True)`` finds the coordinator,
  the process count and this process's id by itself.
- **Elsewhere** (two machines by hand, or N processes on one machine as the tests do),
  pass ``coordinator_address="host:port"`` (process 0's address), ``num_processes`` and
  ``process_id``. ``local_device_ids`` may restrict a process to some of its devices.

On CPUs, cross-process collectives go through gloo
(``jax_cpu_collectives_implementation``), which this function selects before starting.

Only the primary process (``jax.process_index() == 0``) writes a run's files (metrics, plots,
``config.json``). Orbax writes the checkpoints once, coordinated across processes, and every
process restores them.
"""
from __future__ import annotations

import jax


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, local_device_ids: list[int] | None = None,
               auto: bool = False) -> bool:
    """Start JAX's distributed runtime if asked to; returns whether it was started.

    Nothing happens unless ``auto`` is set or ``coordinator_address`` is given, so that
    a single-process run needs no flags.

    Raises:
      ValueError: an explicit address without ``num_processes`` and ``process_id``, or an id
        outside ``0 .. num_processes - 1``.
    """
    if coordinator_address is None and not auto:
        if num_processes is not None or process_id is not None:
            raise ValueError("distributed: --num_processes / --process_id need --coordinator_address "
                             "(process 0's host:port), or --distributed to detect them (Cloud TPU, SLURM)")
        return False
    if coordinator_address is not None:
        if num_processes is None or process_id is None:
            raise ValueError(f"distributed: coordinator_address={coordinator_address!r} needs num_processes and "
                             f"process_id too, got {num_processes} and {process_id}")
        if not 0 <= process_id < num_processes:
            raise ValueError(f"distributed: process_id must lie in 0 .. {num_processes - 1}, got {process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, local_device_ids=local_device_ids)
    return True


def is_primary() -> bool:
    """Whether this process writes the run's files (process 0; always true in a single process)."""
    return jax.process_index() == 0


def add_arguments(parser) -> None:
    """``--coordinator_address --num_processes --process_id --distributed`` for a script's argparse parser."""
    if not hasattr(parser, "add_argument_group"):
        raise TypeError(f"add_arguments: parser must be an argparse.ArgumentParser, got {type(parser).__name__}")
    group = parser.add_argument_group("several processes (jax.distributed)")
    group.add_argument("--coordinator_address", default=None,
                       help="host:port of process 0; with --num_processes and --process_id")
    group.add_argument("--num_processes", type=int, default=None)
    group.add_argument("--process_id", type=int, default=None)
    group.add_argument("--distributed", action="store_true",
                       help="call jax.distributed.initialize() with no arguments (Cloud TPU pods, SLURM)")


def initialize_from_args(args) -> bool:
    """``initialize`` from the experiments' flags: ``--coordinator_address``, ``--num_processes``,
    ``--process_id`` and ``--distributed``."""
    missing = [a for a in ("coordinator_address", "num_processes", "process_id", "distributed") if not hasattr(args, a)]
    if missing:
        raise TypeError(f"initialize_from_args: args must hold the flags of add_arguments(parser); missing {missing}")
    return initialize(args.coordinator_address, args.num_processes, args.process_id, auto=args.distributed)
