"""What XLA:GPU makes of one EM step, without a GPU: a deviceless compile for an H100, its kernels and their traffic.

    pip install "jax[cuda13]==$(python -c 'import jax; print(jax.__version__)')"   # the CUDA plugin; no GPU needed
    python -m benchmarks.gpu_plan [--components 4] [--batch 256] [--variants vmap/lax/float32,vmap/matmul/bfloat16]
        [--levels 3 --steps 4 --hidden 512 --size 32] [--top 8] [--hlo_dir DIR] [--json out.json]

JAX compiles for a described GPU with no device attached (``jax.experimental.topologies``,
``target_config``: the chip's ``GpuTargetConfigProto``, built from ``H100_SXM`` below,
NVIDIA's datasheet figures). The optimized HLO says which kernels the step runs (fusions,
cuBLAS/Triton matrix products, cuDNN convolutions) and what each one reads and writes. Their
sum, divided by the chip's bandwidth, is the time the step's memory traffic alone takes; a
measured step much slower than that is limited by its kernels, not by its traffic.

Without a device there is no autotuning, so the real compile may choose other kernels for the
matrix products and convolutions; the fusion plan around them is the same compiler's. These
are estimates, never timings.
"""
from __future__ import annotations

import argparse
import collections
import json
import pathlib
import re

import jax

from benchmarks.throughput import add_glow_arguments, compile_em_step_for, em_step_hidden_bytes, variant_for_compiling, xla_cost

# NVIDIA H100 SXM5 80GB, from NVIDIA's datasheet and CUDA's limits for compute capability 9.0.
H100_SXM = {
    "description": "NVIDIA H100 80GB HBM3",
    "compute_capability": (9, 0),
    "sm_count": 132,
    "fp32_lanes_per_sm": 128,
    "max_threads_per_sm": 2048,
    "max_threads_per_block": 1024,
    "registers_per_sm": 65536,
    "shared_memory_per_sm": 228 * 1024,
    "shared_memory_per_block": 48 * 1024,
    "shared_memory_per_block_optin": 227 * 1024,
    "l2_bytes": 50 * 1024 * 1024,
    "memory_bytes": 84929347584,  # the 80 GB part's device memory as CUDA reports it
    "memory_bandwidth": 3.35232e12,  # bytes/s
    "boost_clock_ghz": 1.98,
    "cudnn": (9, 7),
}


def target_config(chip: dict) -> str:
    """XLA's ``GpuTargetConfigProto`` (text format) for a chip described as in ``H100_SXM``."""
    major, minor = chip["compute_capability"]
    info = {
        "threads_per_block_limit": chip["max_threads_per_block"], "threads_per_warp": 32,
        "shared_memory_per_block": chip["shared_memory_per_block"],
        "shared_memory_per_core": chip["shared_memory_per_sm"], "threads_per_core_limit": chip["max_threads_per_sm"],
        "core_count": chip["sm_count"], "fpus_per_core": chip["fp32_lanes_per_sm"],
        "block_dim_limit_x": 2 ** 31 - 1, "block_dim_limit_y": 65535, "block_dim_limit_z": 65535,
        "memory_bandwidth": int(chip["memory_bandwidth"]), "l2_cache_size": chip["l2_bytes"],
        "clock_rate_ghz": chip["boost_clock_ghz"], "device_memory_size": chip["memory_bytes"],
        "shared_memory_per_block_optin": chip["shared_memory_per_block_optin"],
        "registers_per_core_limit": chip["registers_per_sm"], "registers_per_block_limit": chip["registers_per_sm"],
    }
    fields = "\n".join(f"  {name}: {value}" for name, value in info.items())
    dnn_major, dnn_minor = chip["cudnn"]
    return (f"gpu_device_info {{\n{fields}\n  cuda_compute_capability {{ major: {major} minor: {minor} }}\n}}\n"
            f'platform_name: "CUDA"\ndnn_version_info {{ major: {dnn_major} minor: {dnn_minor} }}\n'
            f'device_description_str: "{chip["description"]}"\n')



_DTYPE_BYTES = {"f64": 8, "s64": 8, "u64": 8, "f32": 4, "s32": 4, "u32": 4, "bf16": 2, "f16": 2, "s16": 2, "u16": 2,
                "s8": 1, "u8": 1, "pred": 1, "f8e4m3fn": 1, "f8e5m2": 1}
_ARRAY = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([0-9,]*)\]")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.+?) ([\w\-]+)\((.*)$")
_NO_KERNEL = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "after-all", "opt-barrier"}


def shape_bytes(text: str) -> int:
    """Bytes of every array shape written in ``text`` (an HLO shape, or a tuple of them)."""
    total = 0
    for dtype, dims in _ARRAY.findall(text):
        n = 1
        for d in filter(None, dims.split(",")):
            n *= int(d)
        total += n * _DTYPE_BYTES[dtype]
    return total


def kernel_traffic(hlo_text: str) -> list[dict]:
    """One row per instruction of the entry computation that runs as a kernel: its name, kind and bytes moved.

    Bytes moved = the result plus every operand (as the instruction that made it has them);
    parameters, constants, tuples and bitcasts move nothing by themselves. The kind is the
    fusion kind (``fusion:kLoop``, ``fusion:kInput``, ``fusion:kCustom``...) or the custom
    call's target (``custom-call:__cudnn$convForward``...).
    """
    entry = re.search(r"^ENTRY [^\n]*\{\n(.*?)^\}", hlo_text, re.S | re.M)
    if entry is None:
        raise ValueError("kernel_traffic: no ENTRY computation in the HLO text")
    parsed = [m.groups() for m in map(_INSTRUCTION.match, entry.group(1).splitlines()) if m]
    size = {name: shape_bytes(shape) for name, shape, _, _ in parsed}
    rows = []
    for name, shape, op, rest in parsed:
        if op in _NO_KERNEL:
            continue
        depth, end = 1, 0
        while end < len(rest) and depth:  # the operand list is the first balanced parenthesis
            depth += {"(": 1, ")": -1}.get(rest[end], 0)
            end += 1
        operands, attributes = rest[: end - 1], rest[end:]
        kind = op
        if op == "fusion":
            fusion_kind = re.search(r"kind=(\w+)", attributes)
            kind = f"fusion:{fusion_kind.group(1) if fusion_kind else '?'}"
        elif op == "custom-call":
            target = re.search(r'custom_call_target="([^"]+)"', attributes)
            kind = f"custom-call:{target.group(1) if target else '?'}"
        moved = shape_bytes(shape) + sum(size.get(o, 0) for o in re.findall(r"%([\w.\-]+)", operands))
        rows.append({"name": name, "kind": kind, "bytes": moved, "shape": shape})
    return rows


def compile_for_gpu(model, params, x, chip: dict = H100_SXM):
    """The complete EM step (``benchmarks.throughput.em_step``) compiled for the described GPU."""
    from jax.experimental import topologies

    device = topologies.get_topology_desc("emflow", "cuda", target_config=target_config(chip),
                                         topology="1x1x1").devices[0]
    return compile_em_step_for(device, model, params, x)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--components", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--variants", default="vmap/lax/float32,vmap/matmul/float32,vmap/lax/bfloat16,vmap/matmul/bfloat16",
                   help="comma-separated axis/conv_impl/dtype")
    add_glow_arguments(p)
    p.add_argument("--top", type=int, default=8, help="largest kinds of kernel to list per variant")
    p.add_argument("--hlo_dir", help="write each variant's optimized HLO here")
    p.add_argument("--json")
    args = p.parse_args(argv)
    k, batch = args.components, args.batch
    x = jax.numpy.zeros((batch, args.size, args.size, 1))
    results = []
    for variant in args.variants.split(","):
        flow, model, params = variant_for_compiling(variant, k, args.levels, args.steps, args.hidden, args.size)
        compiled = compile_for_gpu(model, params, x)
        hlo = compiled.as_text()
        if args.hlo_dir:
            pathlib.Path(args.hlo_dir).mkdir(parents=True, exist_ok=True)
            (pathlib.Path(args.hlo_dir) / f"{variant.replace('/', '_')}_K{k}_b{batch}.hlo.txt").write_text(hlo)
        rows = kernel_traffic(hlo)
        by_kind, count = collections.Counter(), collections.Counter()
        for r in rows:
            by_kind[r["kind"]] += r["bytes"]
            count[r["kind"]] += 1
        total = sum(by_kind.values())
        floor = em_step_hidden_bytes(flow, k, batch)
        bandwidth = H100_SXM["memory_bandwidth"]
        results.append({"variant": variant, "K": k, "batch": batch, "kernels": len(rows), "gbytes": total / 1e9,
                        "floor_gbytes": floor / 1e9, "bandwidth_ms": total / bandwidth * 1e3,
                        "device_gbytes": xla_cost(compiled)["device_gbytes"],
                        "by_kind_gbytes": {kind: b / 1e9 for kind, b in by_kind.most_common()},
                        "by_kind_kernels": dict(count)})
        print(f"{variant} K={k} batch={batch}: {len(rows)} kernels, {total / 1e9:.1f} GB moved "
              f"({total / floor:.2f}x the {floor / 1e9:.1f} GB floor), "
              f"{total / bandwidth * 1e3:.1f} ms at {bandwidth / 1e12:.2f} TB/s, "
              f"{results[-1]['device_gbytes']:.2f} GB of device memory", flush=True)
        for kind, b in by_kind.most_common(args.top):
            print(f"    {kind:48s} {b / 1e9:7.2f} GB  {count[kind]:5d} kernels")
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps({"jax": jax.__version__, "target": "H100 SXM (datasheet)",
                                                           "rows": results}, indent=2))


if __name__ == "__main__":
    main()
