"""Several devices and processes through JAX's own runtime: meshes and shardings (``sharding``),
``jax.distributed`` start-up and process-aware I/O (``distributed``)."""
