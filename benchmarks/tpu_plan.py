"""The complete EM step compiled for a TPU, without one: does it compile, how much memory does it hold.

    pip install "jax[tpu]==$(python -c 'import jax; print(jax.__version__)')"   # libtpu; no TPU needed
    JAX_PLATFORMS=cpu python -m benchmarks.tpu_plan [--topology v5e:2x2] [--components 4,8] [--batches 64,256]
        [--variants vmap/lax/float32,vmap/lax/bfloat16] [--levels 3 --steps 4 --hidden 512 --size 32] [--json out.json]

JAX compiles for a TPU topology described by name (``jax.experimental.topologies``) with
libtpu's own compiler and no TPU attached. For each variant (component axis / convolution /
compute dtype) this prints the compile time, XLA's FLOPs against the architecture's count,
XLA's bytes moved, and the memory the step holds on one TPU device (arguments, results and
temporaries, less the donated state) beside that device's HBM: what a Colab or Cloud TPU
user needs to know before choosing K and the batch size. Estimates of the compiler, never
timings. ``--topology`` takes libtpu's names: ``v5e:2x2``, ``v6e:2x2``, ``v4:2x2x1``, ``v2:2x2``.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax

from benchmarks.throughput import add_glow_arguments, compile_em_step_for, em_step_flops, variant_for_compiling, xla_cost

# HBM per JAX device (a core on v2/v3, a chip from v4 on), GB, from Google's TPU documentation.
HBM_GB = {"TPU v2": 8, "TPU v3": 16, "TPU v4": 32, "TPU v5 lite": 16, "TPU v5": 95, "TPU v6 lite": 32}


def tpu_device(topology: str):
    """The first device of a TPU topology named as libtpu names them (``"v5e:2x2"``)."""
    from jax.experimental import topologies

    return topologies.get_topology_desc(topology_name=topology, platform="tpu").devices[0]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--topology", default="v5e:2x2")
    p.add_argument("--components", default="4")
    p.add_argument("--batches", default="64,256")
    p.add_argument("--variants", default="vmap/lax/float32,vmap/lax/bfloat16",
                   help="comma-separated axis/conv_impl/dtype")
    add_glow_arguments(p)
    p.add_argument("--json")
    args = p.parse_args(argv)
    device = tpu_device(args.topology)
    hbm = HBM_GB.get(device.device_kind)
    print(f"{args.topology}: {device.device_kind}, {hbm or '?'} GB of HBM per device; jax {jax.__version__}",
          flush=True)
    results = []
    for k in (int(c) for c in args.components.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            x = jax.numpy.zeros((batch, args.size, args.size, 1))
            for variant in args.variants.split(","):
                flow, model, params = variant_for_compiling(variant, k, args.levels, args.steps, args.hidden,
                                                            args.size)
                row = {"variant": variant, "K": k, "batch": batch, "hbm_gbytes": hbm,
                       "gflop_per_step": em_step_flops(flow, k, batch) / 1e9}
                t = time.perf_counter()
                try:
                    compiled = compile_em_step_for(device, model, params, x)
                except jax.errors.JaxRuntimeError as err:  # e.g. RESOURCE_EXHAUSTED: the step does not fit in HBM
                    row["error"] = str(err).splitlines()[0]
                    print(f"{variant} K={k} batch={batch}: does not compile: {row['error']}", flush=True)
                else:
                    row.update(compile_seconds=time.perf_counter() - t, **xla_cost(compiled))
                    fits = "" if hbm is None else f" ({100 * row['device_gbytes'] / hbm:.0f}% of HBM)"
                    print(f"{variant} K={k} batch={batch}: compiled in {row['compile_seconds']:.0f} s; "
                          f"{row['xla_gflop']:.0f} GFLOP (architecture: {row['gflop_per_step']:.0f}); "
                          f"{row['xla_gbytes_accessed']:.1f} GB moved; {row['device_gbytes']:.2f} GB of device "
                          f"memory{fits}", flush=True)
                results.append(row)
                if args.json:  # rewritten after every row
                    pathlib.Path(args.json).write_text(json.dumps(
                        {"jax": jax.__version__, "topology": args.topology, "device_kind": device.device_kind,
                         "model": f"GenMM, Glow {args.levels}x{args.steps}x{args.hidden} on {args.size}x{args.size}x1",
                         "rows": results}, indent=2))


if __name__ == "__main__":
    main()
