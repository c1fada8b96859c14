"""The EM training step's time on two commits, measured in one run: did a change keep the step time?

    python -m benchmarks.step_time_vs_commit --old a5a9197 [--new HEAD] [--rounds 2] [--json out.json]
        [-- <benchmarks.throughput flags>]      # default: --components 1,4,8 --batches 64, a small Glow

Each commit is checked out into a temporary git worktree; ``benchmarks.throughput`` then runs in a
fresh process on each, alternately (old, new, old, new, ...: ``--rounds`` of each), so that a machine
that slows down or warms up over the run weighs on both sides alike. Printed: every (K, batch, axis)
row's median ms/step on each commit and the ratio new / old.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_FLAGS = ["--components", "1,4,8", "--batches", "64", "--levels", "2", "--steps", "2", "--hidden", "32",
                 "--size", "28", "--axes", "unrolled", "--no_torch", "--repeats", "10"]


def worktree(commit: str, where: pathlib.Path) -> pathlib.Path:
    """A detached worktree of ``commit`` at ``where`` (removed by ``remove``)."""
    subprocess.run(["git", "worktree", "add", "--detach", str(where), commit], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    return where


def remove(where: pathlib.Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(where)], cwd=ROOT, capture_output=True, text=True)


def measure(tree: pathlib.Path, flags: list[str], out: pathlib.Path) -> dict[tuple, float]:
    """``{(K, batch, impl): ms_per_step}`` of one ``benchmarks.throughput`` run in ``tree``."""
    subprocess.run([sys.executable, "-m", "benchmarks.throughput", *flags, "--json", str(out)], cwd=tree, check=True)
    rows = json.loads(out.read_text())["rows"]
    return {(r["K"], r["batch"], r["impl"]): r["ms_per_step"] for r in rows if r["impl"].startswith("emflow")}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True, help="the commit to compare against")
    p.add_argument("--new", default="HEAD")
    p.add_argument("--rounds", type=int, default=2, help="runs of each commit, alternating")
    p.add_argument("--json", help="write the medians and ratios here")
    p.add_argument("flags", nargs="*", help="benchmarks.throughput flags (after --)")
    args = p.parse_args(argv)
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")
    flags = args.flags or DEFAULT_FLAGS
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {side: worktree(getattr(args, side), pathlib.Path(tmp) / side) for side in ("old", "new")}
        try:
            for r in range(args.rounds):
                for side in ("old", "new"):
                    runs[side].append(measure(trees[side], flags, pathlib.Path(tmp) / f"{side}_{r}.json"))
        finally:
            for tree in trees.values():
                remove(tree)
    keys = sorted(set(runs["old"][0]) & set(runs["new"][0]))
    rows = []
    print(f"| K | batch | implementation | old {args.old} ms/step | new {args.new} ms/step | new / old |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key in keys:
        old = statistics.median(run[key] for run in runs["old"])
        new = statistics.median(run[key] for run in runs["new"])
        rows.append({"K": key[0], "batch": key[1], "impl": key[2], "old_ms": old, "new_ms": new, "ratio": new / old})
        print(f"| {key[0]} | {key[1]} | {key[2]} | {old:.1f} | {new:.1f} | {new / old:.3f} |")
    result = {"old": args.old, "new": args.new, "rounds": args.rounds, "flags": flags, "rows": rows,
              "runs": {side: [{" ".join(map(str, k)): v for k, v in run.items()} for run in rs]
                       for side, rs in runs.items()}}
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
