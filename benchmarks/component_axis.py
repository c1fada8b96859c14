"""Which way to run GenMM's K generators is fastest here: vmap, an unrolled loop, or lax.map.

    python -m benchmarks.component_axis [--components 1,3] [--batch 64] [--levels 2 --steps 2 --hidden 32]

Times one complete EM training step (E-step with Phi_old, M-step gradient,
Adam update) per strategy in one process and prints ms/step and the ratio to
the fastest. The default in ``emflow.mixture.DEFAULT_COMPONENT_AXIS`` comes
from this script.
"""
from __future__ import annotations

import argparse
import json

import jax

import emflow
from benchmarks.throughput import time_emflow


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", default="1,3")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--levels", type=int, default=2)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    flow = emflow.Glow((args.size, args.size, 1), args.levels, args.steps, args.hidden)
    x = jax.random.uniform(jax.random.PRNGKey(1), (args.batch, args.size, args.size, 1))
    rows = []
    print(f"backend {jax.default_backend()}, Glow {args.levels}x{args.steps}x{args.hidden} on {args.size}x{args.size}, batch {args.batch}")
    for k in [int(v) for v in args.components.split(",")]:
        times = {axis: 1e3 * time_emflow(emflow.GenMM(flow, k, component_axis=axis), x, args.repeats)[0]
                 for axis in ("vmap", "unrolled", "scan")}
        best = min(times.values())
        for axis, ms in times.items():
            rows.append({"K": k, "axis": axis, "ms_per_step": round(ms, 1), "vs_fastest": round(ms / best, 2)})
            print(f"K={k:2d}  {axis:9s} {ms:9.1f} ms/step  x{ms / best:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": jax.default_backend(), "args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
