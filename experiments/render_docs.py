"""Render the documentation's result tables from ``experiments/results/*.json`` and ``benchmarks/results/*.json``.

    python -m experiments.render_docs            # rewrite every rendered block in README.md and docs/
    python -m experiments.render_docs --check    # exit 1, naming each stale block, if one differs

A page holds a block as

    <!-- rendered: NAME -->
    ... (written by this script; edits are overwritten) ...
    <!-- end rendered -->

and ``BLOCKS[NAME]`` renders it from the results files it names, with each file's path, date and
machine beside the table. The experiments' own ``render`` functions draw their tables, so a page
shows exactly what the run printed. ``tests/test_docs.py`` fails when a block differs from what
this script renders, so no number in the docs can drift from its run.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from collections.abc import Callable

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
BENCHMARKS = ROOT / "benchmarks" / "results"
BLOCK_RE = re.compile(r"(<!-- rendered: (?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- end rendered -->)", re.S)
CPU = "this project's 2-core x86_64 CPU, no GPU, jax 0.10.2, float32"


class RenderError(ValueError):
    """A page names a block this script does not know, or a block's results file is missing."""


def load(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise RenderError(f"results file {path.relative_to(ROOT)} does not exist")
    return json.loads(path.read_text())


def source(*paths: pathlib.Path, machine: str = CPU) -> str:
    """The line under a table: its results files (the date is in each name) and the machine."""
    names = ", ".join(f"`{p.relative_to(ROOT)}`" for p in paths)
    return f"\n*Source: {names}; measured on {machine}.*\n"


# --- density: the main jobs -------------------------------------------------------------------------------

MAIN_JOBS = RESULTS / "relayout_main_jobs_cpu_2026-12-06.json"


def main_jobs() -> str:
    """The four main jobs: test bits/dim beside the two closed-form baselines of the same run, pi, wall time."""
    d = load(MAIN_JOBS)
    lines = ["| job | test bits/dim | pixel histograms (same run) | logit-space Gaussian (same run) | final π | wall time |",
             "| --- | --- | --- | --- | --- | --- |"]
    for job, r in d["runs"].items():
        b = r["baselines_bits_per_dim"]
        lines.append(f"| `python -m experiments.{job}` | **{r['final_test_bits_per_dim']:.4f}** | "
                     f"{b['pixel_histogram']:.4f} | {b['logit_gaussian']:.4f} | "
                     f"{' '.join(f'{p:.3f}' for p in r['pi'])} | {r['wall_clock']} |")
    return "\n".join(lines) + "\n" + source(MAIN_JOBS, machine=d["machine"]) + f"\n*Command: {d['command']}.*\n"


# --- Table I and Fig. 3 ---------------------------------------------------------------------------------------

TABLE1 = {model: [RESULTS / f"table1_{model}_blurred_unit_{ds}_cpu_2026-12-06.json" for ds in ("mnist", "fashion_mnist")]
          for model in ("genmm", "latmm")}


def table1(model: str) -> str:
    """Table I for ``model``: experiments.table1's own table of each dataset's run (K trend, pi, purity)."""
    from experiments import table1 as table1_lib

    parts = []
    for path in TABLE1[model]:
        d = load(path)
        results = {ds: {int(k): {int(s): r for s, r in by_seed.items()} for k, by_seed in by_k.items()}
                   for ds, by_k in d["results"].items()}
        ks = [int(k) for k in d["args"]["components"].split(",")]
        seeds = [int(s) for s in d["args"]["seeds"].split(",")]
        parts.append(table1_lib.render(results, d["purity"], ks, seeds, argparse.Namespace(**d["args"]))
                     + source(path) + f"\n*Wall time of the sweep: {d['seconds'] / 60:.0f} min.*\n")
    return "\n".join(parts)


# --- Figs. 4-5: sample quality ------------------------------------------------------------------------------

SAMPLES = [RESULTS / f"samples_{ds}_cpu_2026-12-03.json" for ds in ("mnist", "fashion_mnist")]


def samples() -> str:
    """IS, FID, MMD and 1-NN of GenMM and LatMM samples beside real-vs-real and the closed-form baselines."""
    from experiments import evaluate_samples

    return "\n".join(evaluate_samples.render(load(p)) + source(p) for p in SAMPLES)


# --- Figs. 6-7: interpolation ---------------------------------------------------------------------------------

INTERPOLATION = [RESULTS / f"interpolation_{ds}_cpu_2026-12-03.json" for ds in ("mnist", "fashion_mnist")]


def interpolation() -> str:
    """Which test images were interpolated, at which steps and temperature, and the figures each run wrote."""
    lines = ["| dataset | test image pairs (labels) | steps t | temperature | figures |", "| --- | --- | --- | --- | --- |"]
    for p in INTERPOLATION:
        d = load(p)
        pairs = ", ".join(f"{a}→{b}" for a, b in zip(d["labels_first"], d["labels_second"]))
        steps = f"{len(d['steps'])} from {d['steps'][0]:.2f} to {d['steps'][-1]:.2f}"
        lines.append(f"| {d['dataset']} | {pairs} | {steps} | {d['temperature']} | {', '.join(d['files'])} |")
    return "\n".join(lines) + "\n" + source(*INTERPOLATION)


# --- Table II ---------------------------------------------------------------------------------------------------

TABLE2 = [RESULTS / f"table2_{ds}_3seeds_cpu_2026-12-02.json" for ds in ("letter", "satimage")]


def table2() -> str:
    """Table II: accuracy per K over three seeds, the seeds averaged, the paper's numbers and scikit-learn's baselines."""
    from experiments import classify

    return "\n".join(classify.render(load(p)) + source(p) for p in TABLE2)


TABLE2_SPLINE = {ds: RESULTS / f"table2_spline_{ds}_3seeds_cpu_2026-12-06.json" for ds in ("letter", "satimage")}
TABLE2_SPLINE_4_BINS = {"letter": RESULTS / "table2_spline4_letter_3seeds_cpu_2026-12-06.json"}
SPLINE_VALIDATION = RESULTS / "classify_validation_spline_cpu_2026-12-06.json"


def _flow_name(flow: dict) -> str:
    if flow.get("coupling", "affine") != "spline":
        return f"affine, {flow['num_steps']} steps x {flow['hidden']}"
    return f"spline, {flow.get('spline_bins', 8)} bins, {flow['num_steps']} steps x {flow['hidden']}"


def spline_validation() -> str:
    """The validation accuracies that chose the spline setting: each flow on one split of the training set."""
    d = load(SPLINE_VALIDATION)
    lines = ["| data | K | flow (the preset's other settings) | validation accuracy | s |", "| --- | --- | --- | --- | --- |"]
    best = {}  # the chosen spline setting's accuracy, per data set
    for row in d["rows"]:
        if row["flow"]["coupling"] == "spline":
            best[row["dataset"]] = max(best.get(row["dataset"], 0.0), row["val_acc"])
    for row in d["rows"]:
        mark = "**" if row["flow"]["coupling"] == "spline" and row["val_acc"] == best[row["dataset"]] else ""
        lines.append(f"| {row['dataset']} | {row['num_components']} | {_flow_name(row['flow'])} | "
                     f"{mark}{row['val_acc']:.4f}{mark} | {row['seconds']:.0f} |")
    return "\n".join(lines) + f"\n\n{d['split']}\n" + source(SPLINE_VALIDATION)


def table2_spline() -> str:
    """Table II with spline couplings beside the affine preset's run, per K: mean ± std over the seeds (the seeds'
    densities averaged in brackets), the spline setting chosen on validation, the paper and the best baseline."""
    lines = ["| data | K | spline, 8 bins | spline, 4 bins | affine (Table II above) | paper | best baseline (Table II run) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def spread(run, k):
        row = None if run is None else run["ours"].get(k)
        return "–" if row is None else f"{row['mean']:.4f} ± {row['std']:.4f} ({row['seed_ensemble_accuracy']:.4f})"

    for (dataset, spline_path), affine_path in zip(TABLE2_SPLINE.items(), TABLE2):
        spline, affine = load(spline_path), load(affine_path)
        four = load(TABLE2_SPLINE_4_BINS[dataset]) if dataset in TABLE2_SPLINE_4_BINS else None
        name, best = max(affine["baselines"].items(), key=lambda kv: kv[1]["accuracy"])
        for k in spline["ours"]:
            lines.append(f"| {dataset} | {k} | {spread(spline, k)} | {spread(four, k)} | {spread(affine, k)} | "
                         f"{spline['paper'].get(k, '–')} | {best['accuracy']:.4f} ({name}) |")
    paths = [*TABLE2_SPLINE.values(), *TABLE2_SPLINE_4_BINS.values()]
    return (spline_validation() + "\n" + "\n".join(lines)
            + "\n\nMean ± std of the three seeds' test accuracy; in brackets the one classifier whose class densities"
              " are the three seeds' averaged (`num_restarts=3`). Each data set's preset with its flow's couplings"
              " replaced; a dash: not run (the validation chose the other number of bins).\n" + source(*paths))


# --- speed ------------------------------------------------------------------------------------------------------

CPU_SPEED = BENCHMARKS / "cpu_throughput_2026-11-27.json"
H100_SPEED = BENCHMARKS / "h100_throughput_2026-11-27.json"


def speed(path: pathlib.Path, machine: str, batches: tuple[int, ...]) -> str:
    """ms per EM training step of each implementation and K, from one benchmarks.throughput run."""
    d = load(path)
    rows = [r for r in d["rows"] if r["batch"] in batches and r.get("dtype", "float32") == "float32"]
    ks = sorted({r["K"] for r in rows})
    impls = list(dict.fromkeys((r["impl"], r["batch"]) for r in rows))
    table = {(r["impl"], r["batch"], r["K"]): r["ms_per_step"] for r in rows}
    lines = ["| implementation | batch | " + " | ".join(f"K={k} ms/step" for k in ks) + " |",
             "| --- | --- | " + " | ".join("---" for _ in ks) + " |"]
    for impl, batch in impls:
        cells = [f"{table[(impl, batch, k)]:.1f}" if (impl, batch, k) in table else "–" for k in ks]
        lines.append(f"| {impl} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + source(path, machine=machine)


# --- the README's headline ----------------------------------------------------------------------------------

def headline() -> str:
    """One table of today's results, each row linking to its page."""
    jobs = load(MAIN_JOBS)["runs"]
    t1 = load(TABLE1["genmm"][0])["results"]["mnist"]
    t1_means = {int(k): np.mean([r["best_test_nll_nats_per_dim"] for r in by_seed.values()]) for k, by_seed in t1.items()}
    t2 = {p: load(p) for p in TABLE2}
    fid = load(SAMPLES[0])
    cpu = {(r["impl"], r["K"]): r["ms_per_step"] for r in load(CPU_SPEED)["rows"] if r["batch"] == 64}
    h100 = {(r["impl"], r["K"], r["batch"]): r["ms_per_step"] for r in load(H100_SPEED)["rows"]}
    best_acc = {d["dataset"]: max(r["mean"] for r in d["ours"].values()) for d in t2.values()}
    best_baseline = {d["dataset"]: max(((b["accuracy"], name) for name, b in d["baselines"].items())) for d in t2.values()}
    tabular = {}
    for r in load(FLOWJAX)["records"]:
        tabular.setdefault((r.get("label", r["library"]), r["dataset"], r["components"]), []).append(r["test_nll"])
    semi_runs = [r for r in load(SEMI[-1])["runs"] if r["count"] == 1000]
    semi_mnist = lambda method: float(np.mean([r[method]["accuracy"] for r in semi_runs]))
    real_fid = next(iter(fid["rulers"].values()))["FID"]["mean"]
    genmm_fid = min(m["by_temperature"][str(m["best_temperature"])]["FID"]["mean"]
                    for m in fid["models"].values() if m["model"] == "genmm")
    torch_cpu = next(v for (i, k), v in cpu.items() if i.startswith("torch") and k == 4)
    ours_cpu = min(v for (i, k), v in cpu.items() if i.startswith("emflow") and k == 4)
    torch_gpu = [v for (i, k, b), v in h100.items() if i.startswith("torch") and k == 4 and b == 64]
    ours_gpu = [v for (i, k, b), v in h100.items() if i.startswith("emflow") and "float32" in i and k == 4 and b == 64]
    rows = [
        ("Density, `mnist_genmm` main job (bits/dim; pixel histograms of the same run)",
         f"{jobs['mnist_genmm']['final_test_bits_per_dim']:.4f}",
         f"{jobs['mnist_genmm']['baselines_bits_per_dim']['pixel_histogram']:.4f}", "reproducing/main_jobs.md"),
        ("Density, `mnist_latmm` main job (bits/dim)", f"{jobs['mnist_latmm']['final_test_bits_per_dim']:.4f}",
         f"{jobs['mnist_latmm']['baselines_bits_per_dim']['pixel_histogram']:.4f}", "reproducing/main_jobs.md"),
        ("Table I trend, GenMM on MNIST, K = 1 → 7 (nats/dim, 2,000 images, 3 seeds)",
         f"{t1_means[min(t1_means)]:.4f} → {t1_means[max(t1_means)]:.4f}", "paper (32×32): 1.8929 → 1.8579",
         "reproducing/table1.md"),
        ("Table II, Letter accuracy (best K, 3 seeds)", f"{best_acc['letter']:.4f}",
         "{1} {0:.4f}".format(*best_baseline["letter"]), "reproducing/table2.md"),
        ("Table II, Satimage accuracy (best K, 3 seeds)", f"{best_acc['satimage']:.4f}",
         "{1} {0:.4f}".format(*best_baseline["satimage"]), "reproducing/table2.md"),
        ("Tabular density, Letter, K = 4 (test NLL, nats per example; each library's defaults, 3 seeds)",
         f"{np.mean(tabular[('emflow', 'letter', 4)]):.2f}", f"flowjax {np.mean(tabular[('flowjax', 'letter', 4)]):.2f}",
         "benchmarks.md"),
        ("Semi-supervised MNIST, 1,000 labels (GenMM's semi-supervised EM, 3 restarts as one estimator, on 50 PCA "
         "features; 3 label draws)",
         f"{semi_mnist('ours, GenMM, 3 restarts (semi-supervised EM)'):.4f}",
         f"LabelSpreading (k-NN) {semi_mnist('LabelSpreading (k-NN)'):.4f}", "guides/classification.md"),
        ("Sample quality, MNIST FID of GenMM samples (best temperature)", f"{genmm_fid:.1f}",
         f"real vs real {real_fid:.1f}", "reproducing/samples.md"),
        ("Speed, EM step K = 4, batch 64, 2-core CPU (ms; Glow 2×2×32)", f"{ours_cpu:.0f}", f"PyTorch {torch_cpu:.0f}",
         "benchmarks.md"),
        ("Speed, EM step K = 4, batch 64, float32, one H100 (ms; the paper's Glow 3×4×512)",
         f"{min(ours_gpu):.1f}" if ours_gpu else "–", f"PyTorch {min(torch_gpu):.1f}" if torch_gpu else "–",
         "benchmarks.md"),
    ]
    lines = ["| result | emflow | ruler | page |", "| --- | --- | --- | --- |"]
    lines += [f"| {what} | **{ours}** | {ruler} | [{page.split('/')[-1][:-3]}](docs/{page}) |"
              for what, ours, ruler, page in rows]
    return "\n".join(lines) + "\n"


# --- tabular: compilations and flowjax ---------------------------------------------------------------------

TABULAR_COMPILE = BENCHMARKS / "tabular_compile_cpu_2026-12-06.json"
FLOWJAX = BENCHMARKS / "flowjax_compare_cpu_2026-12-06.json"
FLOWJAX_MATCHED = BENCHMARKS / "flowjax_matched_cpu_2026-12-06.json"
FLOWJAX_MATCHED_QUIET = BENCHMARKS / "flowjax_matched_quiet_cpu_2026-12-07.json"
FIT_TO_DATA_DEFAULTS = BENCHMARKS / "fit_to_data_defaults_cpu_2026-12-06.json"


def tabular_compile() -> str:
    """Compilations of one ``fit`` on Letter before and after, the first epoch's time beside a later one's."""
    d = load(TABULAR_COMPILE)
    lines = ["| code | K | programs compiled | compile s: step / init / evaluation | first epoch s | later epoch s "
             "| first / later | fit's call to the end of epoch 1 s | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in d["runs"]:
        c = r["compile_seconds"]
        step, init = c.get("jit(step_fn)", 0.0), c.get("jit(init_with_partition)", c.get("jit(init)", 0.0))
        lines.append(f"| {r['code']} | {r['components']} | {r['compiles']} | {step:.1f} / {init:.1f} / "
                     f"{c.get('jit(<lambda>)', 0.0):.1f} | {r['epoch_seconds'][0]:.2f} | "
                     f"{float(np.median(r['epoch_seconds'][1:])):.2f} | {r['first_over_later']:.1f} | "
                     f"{r['wall_seconds'] - sum(r['epoch_seconds'][1:]):.1f} | {r['wall_seconds']:.1f} |")
    return "\n".join(lines) + "\n" + source(TABULAR_COMPILE, machine=d["machine"]) + f"\n*Command: {d['command']}.*\n"


def fit_to_data_defaults() -> str:
    """Variants of fit_to_data's settings by their best validation NLL: benchmarks.fit_to_data_defaults' table."""
    from benchmarks import fit_to_data_defaults as defaults

    d = load(FIT_TO_DATA_DEFAULTS)
    return (defaults.table(d["records"]) + "\n" + source(FIT_TO_DATA_DEFAULTS, machine=d["machine"])
            + f"\n*Command: {d['command']}.*\n")


def flowjax(path: pathlib.Path = FLOWJAX) -> str:
    """emflow beside flowjax (each library's defaults, or ``FLOWJAX_MATCHED``'s matched settings):
    benchmarks.flowjax_compare's own table."""
    from benchmarks import flowjax_compare

    d = load(path)
    return (flowjax_compare.table(d["records"]) + "\n" + source(path, machine=d["machine"])
            + f"\n*Command: {d['command']}.*\n")


# --- semi-supervised -------------------------------------------------------------------------------------------

SEMI = [RESULTS / f"semisupervised_{ds}_5pct_w{w}_cpu_2026-12-06.json" for ds in ("satimage", "letter")
        for w in ("1.0", "0.3", "0.3_genmm")] + [
    RESULTS / "semisupervised_satimage_5pct_select_cpu_2026-12-07.json",
    RESULTS / "semisupervised_satimage_5pct_w0.3_noise8_dihedral_select_cpu_2026-12-07.json",
    RESULTS / "semisupervised_letter_5pct_w0.3_genmm_labelled_start_cpu_2026-12-07.json",
    RESULTS / "semisupervised_mnist_100_1000labels_3seeds_w0.3_cpc1_cpc3_genmm_cpu_2026-12-06.json"]  # MNIST last: the headline's


# experiments.semisupervised's arguments that a table's header names when a run changed them
SEMI_DEFAULTS = {"components_per_class": 1, "noise": 1.0, "feature_symmetries": "", "epochs": 30, "labelled_epochs": 0}


def _semi_setting(args: dict) -> str:
    """A run's setting in words: its unlabelled weight and each argument of ``SEMI_DEFAULTS`` it changed."""
    named = [("unlabelled_weight", args["unlabelled_weight"])] + [
        (name, args[name]) for name, default in SEMI_DEFAULTS.items() if args.get(name, default) != default]
    return ", ".join(f"{name.replace('_', ' ')} {value:g}" if isinstance(value, float) else
                     f"{name.replace('_', ' ')} {value}" for name, value in named)


def semisupervised() -> str:
    """experiments.semisupervised's own table of each run (5% of the labels, 3 seeds), EM and EM-lambda."""
    from experiments import semisupervised as semi

    parts = []
    for path in SEMI:
        d = load(path)
        model = {"latmm": "LatMM", "genmm": "GenMM"}[d["args"]["model"]]
        if "args_genmm" in d:  # GenMM's rows beside LatMM's, on the same label subsets
            model += " and GenMM"
        setting = _semi_setting(d["args"])
        if d["args"].get("select"):
            setting += f"; a row with the setting chosen by labelled-fold CV among `{d['args']['select']}`"
        parts.append(f"**{d['dataset']}, {model}, {setting}** "
                     f"(`{d['command']}`)\n\n" + semi.render(d) + source(path, machine=d["machine"]))
    return "\n".join(parts)


BLOCKS: dict[str, Callable[[], str]] = {
    "main_jobs": main_jobs,
    "table1_genmm": lambda: table1("genmm"),
    "table1_latmm": lambda: table1("latmm"),
    "samples": samples,
    "interpolation": interpolation,
    "table2": table2,
    "speed_cpu": lambda: speed(CPU_SPEED, CPU, (64,)),
    "speed_h100": lambda: speed(H100_SPEED, "one NVIDIA H100 80GB HBM3, jax 0.11.2 (CUDA 13)", (64, 256)),
    "headline": headline,
    "tabular_compile": tabular_compile,
    "flowjax": flowjax,
    "flowjax_matched": lambda: flowjax(FLOWJAX_MATCHED),
    "flowjax_matched_quiet": lambda: flowjax(FLOWJAX_MATCHED_QUIET),
    "fit_to_data_defaults": fit_to_data_defaults,
    "table2_spline": table2_spline,
    "semisupervised": semisupervised,
}


def pages() -> list[pathlib.Path]:
    """README.md and every Markdown page under docs/ (the generated API pages aside)."""
    return [ROOT / "README.md"] + sorted(p for p in (ROOT / "docs").rglob("*.md") if "_build" not in p.parts)


def render_text(text: str, where: str) -> str:
    """``text`` with every rendered block rewritten; RenderError names ``where`` and an unknown block."""
    def sub(m: re.Match) -> str:
        name = m["name"]
        if name not in BLOCKS:
            raise RenderError(f"{where}: unknown rendered block {name!r}; known: {', '.join(BLOCKS)}")
        return m.group(1) + BLOCKS[name]() + m.group(4)

    return BLOCK_RE.sub(sub, text)


def stale_blocks() -> list[str]:
    """``"page: block"`` for every block that differs from what it renders to."""
    stale = []
    for page in pages():
        text = page.read_text()
        for m in BLOCK_RE.finditer(text):
            if render_text(m.group(0), str(page.relative_to(ROOT))) != m.group(0):
                stale.append(f"{page.relative_to(ROOT)}: {m['name']}")
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report stale blocks (exit 1 if any)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_blocks()
        for s in stale:
            print(f"stale: {s} (python -m experiments.render_docs)")
        return 1 if stale else 0
    for page in pages():
        text = page.read_text()
        new = render_text(text, str(page.relative_to(ROOT)))
        if new != text:
            page.write_text(new)
            print(f"rendered {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
