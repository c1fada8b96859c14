"""Beyond one device with JAX's own sharding: data parallel, component parallel, or both.

A ``Mesh`` with axes ``("data", "components")``:

- **data parallel**: every batch is split along ``"data"``; parameters are replicated
  and XLA inserts the gradient all-reduce.
- **component parallel** (GenMM): the K generators' stacked parameters (and their
  optimizer moments) are split along ``"components"``, so each device holds and runs
  K / n of them: ``GenMM(..., mesh=mesh)`` evaluates its generators through
  ``jax.shard_map`` over that axis (vmap within a device). Letting the SPMD
  partitioner split a plain vmap over K instead gave wrong gradients for the
  coupling networks' output kernels on jax 0.10.2 (CPU), so it is not used.

Both compose (e.g. 8 devices as 2 x 4). Nothing here is home-made communication:
``jax.jit`` compiles one SPMD program from the shardings of its inputs, and
``shard_map`` states the per-device program for the generators.

    mesh = emflow.parallel.sharding.make_mesh(data=2, components=4)
    result = emflow.train.fit(model, config, dequantizer, x_train, x_test, mesh=mesh)

Across hosts, call ``jax.distributed.initialize()`` on every host first; the same
mesh then spans all hosts' devices (``emflow.parallel.distributed``).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from emflow import checks

DATA, COMPONENTS = "data", "components"


def _check_mesh(where: str, mesh) -> None:
    checks.instance(where, "mesh", mesh, Mesh, "a jax.sharding.Mesh (emflow.parallel.sharding.make_mesh())")


def make_mesh(data: int | None = None, components: int = 1, devices=None) -> Mesh:
    """A ``(data, components)`` mesh over ``devices`` (default: all); ``data`` defaults to what is left."""
    devices = list(jax.devices() if devices is None else devices)
    checks.integer("make_mesh", "components", components, 1)
    if data is not None:
        checks.integer("make_mesh", "data (or None)", data, 1)
    if data is None:
        data = len(devices) // components
    if data * components != len(devices):
        raise ValueError(
            f"make_mesh: data x components = {data} x {components} = {data * components} "
            f"must equal the number of devices, {len(devices)}"
        )
    return Mesh(np.asarray(devices).reshape(data, components), (DATA, COMPONENTS))


def _is_component_leaf(path, leaf, num_components: int) -> bool:
    names = jax.tree_util.keystr(path)
    return "flows" in names and getattr(leaf, "ndim", 0) >= 1 and leaf.shape[0] == num_components


def tree_shardings(tree: Any, mesh: Mesh, num_components: int | None = None) -> Any:
    """Shardings for a params / optimizer-state / trainer-state pytree.

    Leaves under a ``"flows"`` key whose leading axis is K (GenMM's stacked
    generators and their Adam moments) are split along ``"components"`` when the
    mesh has more than one device there; every other leaf is replicated.
    """
    if num_components is not None:
        checks.integer("tree_shardings", "num_components (or None)", num_components, 1)
    split = num_components is not None and mesh.shape[COMPONENTS] > 1
    if split and num_components % mesh.shape[COMPONENTS]:
        raise ValueError(
            f"tree_shardings: K = {num_components} components cannot be split evenly over "
            f"{mesh.shape[COMPONENTS]} devices"
        )

    def spec(path, leaf):
        if split and _is_component_leaf(path, leaf, num_components):
            return NamedSharding(mesh, P(COMPONENTS))
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(spec, tree)


def shard_tree(tree: Any, mesh: Mesh, num_components: int | None = None) -> Any:
    """``jax.device_put`` of ``tree`` with ``tree_shardings``."""
    return jax.device_put(tree, tree_shardings(tree, mesh, num_components))


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """A batch ``(B, ...)`` split along ``"data"``."""
    checks.integer("batch_sharding", "ndim", ndim, 1)
    return NamedSharding(mesh, P(DATA, *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that puts a whole copy of an array on every device of ``mesh``."""
    _check_mesh("replicated", mesh)
    return NamedSharding(mesh, P())


def example_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """A dataset ``(N, ...)`` spread over every device of ``mesh``: each holds N / (number of devices) examples.

    ``fit`` gathers each batch from it inside the compiled step, so no process needs the
    whole dataset (see :func:`process_rows`).
    """
    checks.integer("example_sharding", "ndim", ndim, 1)
    return NamedSharding(mesh, P((DATA, COMPONENTS), *([None] * (ndim - 1))))


def process_rows(mesh: Mesh, num_rows: int) -> slice:
    """The examples ``start:stop`` of an ``(num_rows, ...)`` dataset that this process's devices hold.

    Under :func:`example_sharding`, each process holds one contiguous block. A process
    loads just that block (e.g. ``emflow.data.load_mnist(train_rows=...)``) and hands it
    to :func:`from_process_rows`.

    Raises:
      ValueError: ``num_rows`` not a multiple of the number of devices.
    """
    checks.integer("process_rows", "num_rows", num_rows, 0)
    if num_rows % mesh.size:
        raise ValueError(f"process_rows: {num_rows} examples cannot be split evenly over the mesh's {mesh.size} "
                         f"devices; use a multiple of {mesh.size} (e.g. --num_train / --num_test)")
    blocks = sorted({(index[0].start or 0, num_rows if index[0].stop is None else index[0].stop) for index in
                     example_sharding(mesh, 1).addressable_devices_indices_map((num_rows,)).values()})
    if any(a[1] != b[0] for a, b in zip(blocks, blocks[1:])):
        raise ValueError(f"process_rows: this process's devices hold the blocks {blocks}, which are not contiguous")
    return slice(blocks[0][0], blocks[-1][1])


def from_process_rows(local, mesh: Mesh, num_rows: int) -> jax.Array:
    """One global ``(num_rows, ...)`` array, sharded by :func:`example_sharding`, from each process's own block.

    Args:
      local: this process's examples ``process_rows(mesh, num_rows)`` (numpy, ``(num_rows / P, ...)``
        for P equal processes).

    Raises:
      ValueError: ``local`` does not hold exactly this process's block.
    """
    rows = process_rows(mesh, num_rows)
    if np.shape(local)[0] != rows.stop - rows.start:
        raise ValueError(f"from_process_rows: this process holds examples {rows.start}:{rows.stop} of {num_rows}, "
                         f"so it must pass {rows.stop - rows.start} of them, got {np.shape(local)[0]}")
    return jax.make_array_from_process_local_data(example_sharding(mesh, np.ndim(local)), np.asarray(local),
                                                  (num_rows, *np.shape(local)[1:]))


def for_mesh(model, mesh: Mesh):
    """``model`` set up for ``mesh``: a GenMM runs its generators component parallel when the mesh splits them."""
    import dataclasses

    from emflow.mixtures.genmm import GenMM

    checks.mixture("for_mesh", model)
    _check_mesh("for_mesh", mesh)

    if isinstance(model, GenMM) and mesh.shape[COMPONENTS] > 1:
        return dataclasses.replace(model, mesh=mesh)
    return model
