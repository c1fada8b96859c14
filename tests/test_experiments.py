"""The experiments end to end at a tiny size: the image harness, Table I over seeds and the init comparison."""
import argparse
import json

import numpy as np
import pytest

from experiments import image_experiment, part_likelihoods, partition_spaces, table1
from experiments.ablations import init_variants

TINY = ["--num_train", "256", "--num_test", "128", "--levels", "2", "--steps", "1", "--hidden", "4",
        "--epochs", "2", "--em_every", "1", "--no_progress"]


@pytest.fixture(autouse=True)
def _data(data_dir, monkeypatch):
    monkeypatch.setenv("EMFLOW_DATA_DIR", str(data_dir))


def test_mnist_genmm_tiny_run_reports_its_rulers_and_components(tmp_path, capsys):
    summary = image_experiment.run("mnist", "genmm", [*TINY, "--workdir", str(tmp_path / "run")])
    out = capsys.readouterr().out
    assert "after logit (alpha 1e-06)" in out and "init default, warm start 1 round(s)" in out
    # MNIST GenMM's additions to the base configuration (experiments/configs/mnist_genmm.py).
    assert "first level shared, final pi update" in out and summary["glow"]["shared_first_level"]
    # The run records its whole resolved configuration: the job file's, with the command line's changes.
    assert summary["config"] == {**json.loads((tmp_path / "run" / "summary.json").read_text())["config"],
                                 "num_train": 256, "epochs": 2, "hidden": 4, "steps": 1, "split_log_std_floor": -7.0}
    # The per-pixel histogram baseline is always fitted; the Gaussian needs more images than pixels.
    assert set(summary["baselines_bits_per_dim"]) == {"pixel_histogram"} and "not fitted" in out
    assert "| per-pixel histograms (baseline) |" in out
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert history[0]["e_step"] == "warm start" and history[1]["e_step"].startswith("beta 1 ")
    # The preset's cached E-step makes no pass over the data in the warm round: no NLL under Phi_old there.
    assert history[0]["train_nll_old_nats_per_dim"] is None and history[1]["train_nll_old_nats_per_dim"] > 0
    closing = history[-1]["final_prior_update"]
    np.testing.assert_allclose(closing["pi_after"], history[-1]["pi"], rtol=1e-6)
    assert closing["train_log_px_gain_nats"] >= 0 and "final_prior_update" not in history[0]
    report = summary["final_components"]
    assert len(report["posterior_share"]) == 3 and np.sum(report["wins"]) == 128
    for name in ("components.png", "nll.png", "samples/epoch_0002.png", "samples/components_epoch_0002.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert np.isfinite(summary["final_test_bits_per_dim"]) and summary["final_test_bits_per_dim"] < 8
    # The image experiments partition the blurred images' directions, the best of 4 k-means starts.
    model = json.loads((tmp_path / "run" / "config.json").read_text())["model"]
    assert (model["partition_space"], model["kmeans_starts"]) == ("blurred_unit", 4)
    assert (summary["partition_space"], summary["kmeans_starts"]) == ("blurred_unit", 4)


def test_the_prior_flags_reach_the_generators(tmp_path):
    """``--split_prior standard --top_prior learned``: N(0, I) on the split-off halves, a learned Gaussian on top
    (and the partition flags reach GenMM)."""
    summary = image_experiment.run("mnist", "genmm", [*TINY, "--epochs", "1", "--split_prior", "standard",
                                                      "--top_prior", "learned", "--no_baselines",
                                                      "--partition_space", "unit", "--kmeans_starts", "2",
                                                      "--workdir", str(tmp_path)])
    assert summary["glow"]["split_prior"] == "standard" and summary["glow"]["top_prior"] == "learned"
    flow = json.loads((tmp_path / "config.json").read_text())["model"]["flow"]
    assert flow["split_prior"] == "standard" and flow["top_prior"] == "learned"
    model = json.loads((tmp_path / "config.json").read_text())["model"]
    assert (model["partition_space"], model["kmeans_starts"]) == ("unit", 2)
    assert np.isfinite(summary["final_test_bits_per_dim"])
    with pytest.raises(SystemExit, match="--top_prior learned is a GenMM option"):
        image_experiment.run("mnist", "latmm", [*TINY, "--top_prior", "learned"])
    with pytest.raises(SystemExit, match="--partition_space latent is a LatMM option"):
        image_experiment.run("mnist", "genmm", [*TINY, "--partition_space", "latent"])


def test_mnist_hybrid_tiny_run_has_k_times_m_components(tmp_path):
    """``python -m experiments.mnist_hybrid``: K = 2 generators sharing M = 2 latent Gaussians, 4 components."""
    summary = image_experiment.run("mnist", "hybrid", [*TINY, "--components", "2", "--latent_components", "2",
                                                       "--epochs", "1", "--no_baselines", "--workdir", str(tmp_path)])
    model = json.loads((tmp_path / "config.json").read_text())["model"]
    assert model["__class__"] == "HybridMM" and model["latent"]["num_components"] == 2
    assert model["generators"]["flow"]["top_prior"] == "standard"  # the shared Gaussians are the learned top
    assert len(summary["final_pi"]) == 4 and np.isfinite(summary["final_test_bits_per_dim"])
    assert (tmp_path / "samples" / "components_epoch_0001.png").is_file()
    with pytest.raises(SystemExit, match="--top_prior learned is a GenMM option"):
        image_experiment.run("mnist", "hybrid", [*TINY, "--top_prior", "learned"])


def test_table1_over_seeds_and_the_init_comparison(tmp_path):
    flags = ["--num_train", "256", "--num_test", "128", "--steps", "1", "--hidden", "4", "--epochs", "1",
             "--no_progress"]
    results = table1.main(["--datasets", "mnist", "--components", "1,2", "--seeds", "0,1", "--purity_components", "2",
                           "--purity_num_train", "384",
                           "--workdir", str(tmp_path / "t1"), *flags])
    assert set(results["mnist"]) == {1, 2} and set(results["mnist"][2]) == {0, 1}
    text = (tmp_path / "t1" / "table1.md").read_text()
    assert " ± " in text and "k-means on pixels" in text and "seed 1:" in text
    purity = json.loads((tmp_path / "t1" / "table1.json").read_text())["purity"]["mnist"]
    assert purity["num_train"] == 384 and purity["seeds"] == [0, 1] and len(purity["model"]) == 2
    assert all(0.1 <= v <= 1 for v in purity["model"] + purity["kmeans"])
    assert (tmp_path / "t1" / "mnist_k2_s1_n384" / "summary.json").is_file()
    variants = init_variants.main(["--variants", "shared,partition+warm", "--components", "2", "--workdir",
                                   str(tmp_path / "iv"), "--em_every", "1", *flags])
    assert set(variants) == {"shared", "partition+warm"}
    assert "k-means on pixels (ruler)" in (tmp_path / "iv" / "variants_mnist_k2.md").read_text()


def test_partition_spaces_tiny(tmp_path):
    out = partition_spaces.main(["--num_train", "300", "--num_test", "200", "--components", "3", "--keys", "3",
                                 "--starts", "1,2", "--workdir", str(tmp_path)])
    assert [(r["space"], r["starts"]) for r in out["rows"]] == [
        (s, n) for s in ("input", "unit", "blurred_unit") for n in (1, 2)]
    for r in out["rows"]:
        assert all(0.1 <= v <= 1 for v in r["purity"]) and (r["inertia_purity_correlation"] is None) == (r["starts"] == 2)
        if r["space"] != "input":   # non-negative unit vectors lie within sqrt(2) of each other: the seeds,
            assert all(0 < i < 2 * 300 for i in r["inertia"])   # and so Lloyd's result, have inertia below 2 N
    assert len(out["ruler_kmeans_on_pixels_sklearn"]) == 3
    assert "| blurred_unit | 2 |" in (tmp_path / "partition_spaces_mnist_k3.md").read_text()


def test_part_likelihoods_tiny(tmp_path):
    out = part_likelihoods.main(["--num_train", "256", "--num_test", "128", "--steps", "1", "--hidden", "4",
                                 "--epochs", "1", "--components", "2", "--no_progress", "--workdir", str(tmp_path)])
    assert sum(out["test_images_per_part"]) == 128
    wins = np.array([[w for w in row] for row in out["wins"]], dtype=float)
    np.testing.assert_allclose(np.nansum(wins, axis=0), 1.0, atol=1e-9)  # every part's images are won by someone
    assert (tmp_path / "part_likelihoods_mnist_k2.json").is_file()
    with pytest.raises(SystemExit):  # a sweep option it cannot honour is refused, not ignored
        part_likelihoods.main(["--shared_first_level", "--workdir", str(tmp_path)])


def test_classify_defaults_tiny_reports_every_model_with_its_rulers():
    from experiments import classify_defaults

    result = classify_defaults.main(["--datasets", "iris", "--seeds", "0", "--epochs", "2"])
    models = result["iris"]["models"]
    assert set(models) == {"MixtureClassifier()", "Gaussian Bayes (reg 0.1)", "RBF SVC (standardised, CV grid)"}
    assert models["Gaussian Bayes (reg 0.1)"]["mean"] > 0.9 and all(len(m["accuracy"]) == 1 for m in models.values())


def test_table2_over_seeds_reports_each_seed_and_its_mean(tmp_path):
    from experiments import classify

    out = classify.main(["--dataset", "satimage", "--components", "1,2", "--seeds", "0,1", "--epochs", "1",
                         "--flow_steps", "1", "--hidden", "8", "--feature_symmetries", "none", "--no_baselines",
                         "--workdir", str(tmp_path)])
    assert set(out["ours"]) == {"1", "2"} and out["seeds"] == [0, 1]
    for row in out["ours"].values():
        assert len(row["accuracy"]) == 2 and len(row["fit_seconds"]) == 2
        np.testing.assert_allclose(row["mean"], np.mean(row["accuracy"]), rtol=1e-12)
        np.testing.assert_allclose(row["std"], np.std(row["accuracy"]), rtol=1e-12)
        assert 0.5 < row["mean"] <= 1.0  # six classes (chance 1/6), one epoch
        assert 0.5 < row["seed_ensemble_accuracy"] <= 1.0
    text = (tmp_path / "table2_satimage_genmm.md").read_text()
    assert "± " in text and "(2 seeds)" in text and "0.8900" in text  # the paper's K = 1 number beside ours
    assert (tmp_path / "accuracy_vs_k_satimage_genmm.png").is_file()
    with pytest.raises(SystemExit):
        classify.main(["--dataset", "satimage", "--seeds", "0,0"])


def test_classify_command_line_changes_only_the_flow_fields_it_is_given():
    from emflow.classify import GlowSpec, VectorFlowSpec
    from experiments.classify import flow_setting

    args = lambda **given: argparse.Namespace(**{**dict(flow=None, flow_steps=None, hidden=None, coupling=None,
                                                        spline_bins=None), **given})
    preset = VectorFlowSpec(num_steps=6, hidden=64)
    assert flow_setting(preset, args()) == preset
    assert flow_setting(preset, args(coupling="spline", spline_bins=4)) == VectorFlowSpec(coupling="spline", spline_bins=4)
    assert flow_setting(preset, args(flow="glow", hidden=16)) == GlowSpec(hidden=16)
    with pytest.raises(ValueError, match="--spline_bins: a setting of the vector flow, but the flow is GlowSpec"):
        flow_setting(preset, args(flow="glow", spline_bins=4))


def test_classify_validation_takes_a_flow_record_and_reports_it(data_dir, capsys):
    from experiments import classify_validation

    flow = {"kind": "VectorFlowSpec", "num_steps": 1, "hidden": 4, "coupling": "spline", "spline_bins": 3}
    settings = dict(epochs=1, batch_size=32, warmup_steps=1, early_stopping=False, flow=flow)
    classify_validation.main(["--dataset", "satimage", "--data_dir", str(data_dir), json.dumps(settings)])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["flow"] == {**flow, "tail_bound": 4.0}
    assert 1 / 6 < line["val_acc"]["0"] <= 1.0  # six classes, one epoch: above chance


def test_seed_ensemble_averages_the_densities_not_the_log_densities():
    from scipy.special import logsumexp

    from experiments.classify import seed_ensemble_accuracy

    rng = np.random.default_rng(0)
    log_liks = [rng.normal(scale=30.0, size=(200, 4)) for _ in range(3)]
    classes, log_prior, y = np.array(["a", "b", "c", "d"]), np.log([0.1, 0.2, 0.3, 0.4]), rng.choice(list("abcd"), 200)
    expected = np.mean(classes[np.argmax(logsumexp(np.stack(log_liks), axis=0) + log_prior, axis=1)] == y)
    assert seed_ensemble_accuracy(log_liks, classes, log_prior, y) == expected
    single = np.mean(classes[np.argmax(log_liks[0] + log_prior, axis=1)] == y)
    assert seed_ensemble_accuracy(log_liks[:1], classes, log_prior, y) == single
    # Averaging log densities (a product of experts) is a different rule, and disagrees here.
    geometric = np.mean(classes[np.argmax(np.mean(log_liks, axis=0) + log_prior, axis=1)] == y)
    assert geometric != expected


def test_evaluate_samples_and_interpolate_tiny(tmp_path, data_dir):
    """Both figure scripts end to end at a tiny size, with a tiny feature network in a temporary cache."""
    from emflow import data as data_lib
    from emflow.evaluation import feature_net
    from experiments import evaluate_samples, interpolate

    ds = data_lib.load_dataset("mnist", data_dir)
    config = feature_net.FeatureNetConfig(widths=(4,), feature_width=8, epochs=1, batch_size=64)
    net = feature_net.train_feature_net(ds.x_train[:256], ds.y_train[:256], ds.x_test[:64], ds.y_test[:64], config,
                                        progress=False, log=lambda s: None)
    feature_net.save(net, feature_net.cache_dir("mnist", tmp_path / "cache"))
    flags = ["--num_train", "256", "--num_test", "64", "--levels", "2", "--steps", "1", "--hidden", "4", "--epochs",
             "1", "--warmup_steps", "5", "--no_progress"]
    out = evaluate_samples.main(["--datasets", "mnist", "--models", "genmm,latmm", "--components", "1,2",
                                 "--num_samples", "20", "--trials", "2", "--temperatures", "1.0,0.7", "--cache_dir",
                                 str(tmp_path / "cache"), "--workdir", str(tmp_path / "runs"), *flags])["mnist"]
    assert set(out["models"]) == {"genmm_k1", "genmm_k2", "latmm_k1", "latmm_k2"}
    assert len(out["rulers"]) == 2 and len(out["models"]["genmm_k2"]["by_temperature"]["0.7"]["FID"]["trials"]) == 2
    text = (tmp_path / "runs" / "samples_mnist.md").read_text()
    assert "logit-space Gaussian" not in text  # 256 training images: a full covariance is not fitted
    assert "real vs real" in text and "per-pixel histograms (sampler)" in text and "feature network test accuracy" in text
    assert (tmp_path / "runs" / "figs45_mnist.png").is_file()
    record = interpolate.main(["--runs", str(tmp_path / "runs"), "--genmm_k", "2", "--latmm_k", "2", "--pairs", "3",
                               "--points", "2", "--out", str(tmp_path / "interp"), *flags])
    assert len(record["first"]) == 3 and len(record["genmm_argmax_first"]) == 3
    for name in ("fig6_mnist_genmm_k2.png", "fig7a_mnist_genmm_k2.png", "fig7b_mnist_genmm_k2.png",
                 "fig7c_mnist_latmm_k2.png", "interpolation_mnist.json"):
        assert (tmp_path / "interp" / name).is_file(), name


def _resolved(dataset, model, argv):
    return image_experiment.parse(dataset, model, argv)


def test_the_job_presets_add_to_their_own_jobs_only_and_explicit_flags_win(capsys):
    mnist = _resolved("mnist", "genmm", [])
    assert mnist.shared_first_level and mnist.final_prior_update and mnist.shared_first_level_from_preset
    # Fashion-MNIST LatMM: 6 epochs instead of the cpu preset's 8 for LatMM; MNIST LatMM keeps 8; a flag wins.
    assert _resolved("fashion_mnist", "latmm", []).epochs == 6 and _resolved("mnist", "latmm", []).epochs == 8
    assert _resolved("fashion_mnist", "latmm", ["--epochs", "2"]).epochs == 2
    assert _resolved("fashion_mnist", "latmm", ["--preset", "paper"]).epochs == 400
    for dataset, model in (("fashion_mnist", "genmm"), ("mnist", "latmm"), ("fashion_mnist", "latmm")):
        other = _resolved(dataset, model, [])
        assert not other.shared_first_level and not other.final_prior_update, (dataset, model)
    off = _resolved("mnist", "genmm", ["--no-shared_first_level", "--no-final_prior_update"])
    assert not off.shared_first_level and not off.final_prior_update
    assert not _resolved("mnist", "genmm", ["--preset", "paper"]).shared_first_level  # the paper's protocol
    # A run that cannot share its first level drops the preset's choice, and says so ...
    for argv, mesh, reason in ((["--trunk_steps", "2"], None, "--trunk_steps 2"), (["--levels", "1"], None, "--levels 1"),
                               ([], object(), "a mesh")):
        settled = image_experiment.settle_shared_first_level(_resolved("mnist", "genmm", argv), mesh)
        assert not settled.shared_first_level and reason in capsys.readouterr().out
    # ... but keeps the user's own, to be refused with the reason.
    explicit = _resolved("mnist", "genmm", ["--shared_first_level", "--trunk_steps", "2"])
    assert image_experiment.settle_shared_first_level(explicit, None).shared_first_level
    with pytest.raises(SystemExit, match="replaces --trunk_steps"):
        image_experiment.run("mnist", "genmm", ["--shared_first_level", "--trunk_steps", "2", "--no_progress"])
    # The sweeps (table1, init_variants, evaluate_samples) keep their documented protocol.
    sweep = argparse.ArgumentParser()
    image_experiment.add_sweep_size_arguments(sweep, epochs=1, em_every=1, num_train=256, num_test=128)
    swept = _resolved("mnist", "genmm", image_experiment.sweep_size_flags(sweep.parse_args([])))
    assert not swept.shared_first_level and not swept.final_prior_update and swept.top_prior == "standard"
    asked = _resolved("mnist", "genmm", image_experiment.sweep_size_flags(
        sweep.parse_args(["--shared_first_level", "--final_prior_update", "--top_prior", "learned"])))
    assert asked.shared_first_level and asked.final_prior_update and asked.top_prior == "learned"
    # The partition a run starts from: 10,000 images, but Fashion-MNIST GenMM's main job keeps its init batch's;
    # a flag wins, and a sweep keeps 10,000 on either dataset.
    assert [_resolved(d, m, argv).partition_size for d, m, argv in (
        ("mnist", "genmm", []), ("fashion_mnist", "genmm", []), ("fashion_mnist", "latmm", []),
        ("fashion_mnist", "genmm", ["--partition_size", "2000"]))] == [10000, 0, 10000, 2000]
    assert _resolved("fashion_mnist", "genmm", image_experiment.sweep_size_flags(sweep.parse_args([]))
                     ).partition_size == 10000
    assert _resolved("fashion_mnist", "genmm", image_experiment.sweep_size_flags(
        sweep.parse_args(["--partition_size", "0"]))).partition_size == 0
    # What the partition clusters: the blurred images' directions, best of 4 starts, for both models; a flag wins,
    # and a sweep passes its own on to every run (none given: the model's).
    assert [(r.partition_space, r.kmeans_starts) for r in (
        _resolved("mnist", "genmm", []), _resolved("fashion_mnist", "latmm", []),
        _resolved("mnist", "latmm", ["--partition_space", "latent", "--kmeans_starts", "1"]))] == [
        ("blurred_unit", 4), ("blurred_unit", 4), ("latent", 1)]
    swept = _resolved("mnist", "latmm", image_experiment.sweep_size_flags(
        sweep.parse_args(["--partition_space", "input", "--kmeans_starts", "2"])))
    assert (swept.partition_space, swept.kmeans_starts) == ("input", 2)
    assert "--partition_space" not in image_experiment.sweep_size_flags(sweep.parse_args([]))
    # The split priors' log-std floor: MNIST GenMM's job only; "nan" removes it; a sweep has none.
    assert [_resolved(d, m, argv).split_log_std_floor for d, m, argv in (
        ("mnist", "genmm", []), ("fashion_mnist", "genmm", []), ("mnist", "latmm", []),
        ("mnist", "genmm", ["--split_log_std_floor", "nan"]), ("fashion_mnist", "genmm", ["--split_log_std_floor", "-5"]),
    )] == [-7.0, None, None, None, -5.0]
    assert _resolved("mnist", "genmm", image_experiment.sweep_size_flags(sweep.parse_args([]))).split_log_std_floor is None
    assert _resolved("mnist", "genmm", image_experiment.sweep_size_flags(
        sweep.parse_args(["--split_log_std_floor", "-7"]))).split_log_std_floor == -7.0
    # The cpu preset's GenMM generators learn their top prior; LatMM's latent Gaussians are one; the paper's is N(0, I).
    assert [_resolved(d, m, argv).top_prior for d, m, argv in (
        ("mnist", "genmm", []), ("fashion_mnist", "genmm", []), ("mnist", "latmm", []),
        ("mnist", "genmm", ["--preset", "paper"]), ("mnist", "genmm", ["--top_prior", "standard"]))] == [
        "learned", "learned", "standard", "standard", "standard"]


def test_semisupervised_tiny_reports_every_method(tmp_path):
    from experiments import semisupervised

    result = semisupervised.main(["--dataset", "satimage", "--labels", "30", "--seeds", "0", "--num_train", "300",
                                  "--num_test", "200", "--epochs", "1", "--flow_steps", "1", "--hidden", "8",
                                  "--select", "unlabelled_weight=0.3,1.0", "--select_folds", "2",
                                  "--workdir", str(tmp_path)])
    run = result["runs"][0]
    assert run["count"] == 30 and len([k for k in run if k not in ("count", "seed")]) == 7
    chosen = run[semisupervised.SELECTED]
    assert [g for g, _ in chosen["cv_accuracy"]] == [{"unlabelled_weight": 0.3}, {"unlabelled_weight": 1.0}]
    assert chosen["chosen"] == max(chosen["cv_accuracy"], key=lambda c: c[1])[0]
    assert all(0.0 <= v["accuracy"] <= 1.0 for k, v in run.items() if k not in ("count", "seed"))
    assert "| ours (semi-supervised EM) |" in (tmp_path / "semisupervised_satimage.md").read_text()
    assert (tmp_path / "accuracy_vs_labels_satimage.png").is_file()
    np.testing.assert_array_equal(np.bincount(semisupervised.labelled_subset(np.repeat(np.arange(3), 10), 7, 0) // 10),
                                  [3, 2, 2])


def test_self_training_sees_every_label_and_a_seeded_subsample_of_the_rest():
    from experiments import semisupervised

    partial = np.full(100, -1)
    partial[[3, 50, 97]] = [0, 1, 2]
    xs = np.arange(100.0)[:, None]
    x, y = semisupervised.self_training_split(xs, partial, 10, seed=4)
    assert len(y) == 13 and np.all(np.diff(x[:, 0]) > 0)  # 13 distinct rows, in their order
    assert dict(zip(x[y != -1, 0], y[y != -1])) == {3.0: 0, 50.0: 1, 97.0: 2}  # each label with its own row
    np.testing.assert_array_equal(semisupervised.self_training_split(xs, partial, 10, seed=4)[0], x)
    assert not np.array_equal(semisupervised.self_training_split(xs, partial, 10, seed=5)[0], x)
    for everything in (0, 97, 500):
        assert semisupervised.self_training_split(xs, partial, everything, seed=4)[0] is xs
    assert semisupervised.self_training_name(10, 97) == "SelfTraining (RBF SVC, 10 unlabelled)"
    assert semisupervised.self_training_name(0, 97) == semisupervised.self_training_name(97, 97) == "SelfTraining (RBF SVC)"


def test_the_setting_search_hides_each_fold_of_labels_and_scores_on_it():
    from sklearn.semi_supervised import LabelSpreading

    from emflow.classify import VectorFlowSpec
    from experiments import semisupervised

    assert semisupervised.setting_grid("unlabelled_weight=0.3,1;flow_steps=2,6;model=latmm") == [
        {"unlabelled_weight": w, "flow_steps": f, "model": "latmm"} for w in (0.3, 1) for f in (2, 6)]
    settings = {"flow": VectorFlowSpec(num_steps=6, hidden=64), "epochs": 30, "unlabelled_weight": 1.0}
    assert semisupervised.with_changes(settings, {"flow_steps": 2, "unlabelled_weight": 0.3}) == {
        "flow": VectorFlowSpec(num_steps=2, hidden=64), "epochs": 30, "unlabelled_weight": 0.3}
    with pytest.raises(SystemExit, match="NAME=V1,V2"):
        semisupervised.setting_grid("flow_steps")

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(c, 0.3, (40, 2)) for c in (-3.0, 0.0, 3.0)])
    partial = np.full(120, -1)
    partial[::4] = np.repeat([0, 1, 2], 40)[::4]  # 10 labels per class
    fits = []

    class Recording(LabelSpreading):  # scikit-learn's own estimator; it keeps the labels each fit was given
        def fit(self, x, y):
            fits.append(y.copy())
            return super().fit(x, y)

    accuracy = semisupervised.labelled_cv_accuracy(lambda: Recording(kernel="knn", n_neighbors=5), x, partial, 3, 0)
    assert accuracy > 0.9 and len(fits) == 3
    hidden = [np.flatnonzero((partial != -1) & (y == -1)) for y in fits]
    assert sorted(np.concatenate(hidden).tolist()) == np.flatnonzero(partial != -1).tolist()  # each label hidden once
    assert all(len(h) == 10 for h in hidden) and all(np.array_equal(y[y != -1], partial[y != -1]) for y in fits)
    # labels drawn at random: the hidden ones cannot be predicted from the others, and the score says so
    noisy = np.where(partial == -1, -1, rng.integers(0, 3, 120))
    assert semisupervised.labelled_cv_accuracy(lambda: Recording(kernel="knn", n_neighbors=5), x, noisy, 3, 0) < 0.6


def test_semisupervised_table_marks_a_method_run_at_some_sizes_only(tmp_path):
    from experiments import semisupervised

    run = lambda count, seed, acc, extra: {"count": count, "seed": seed, "a": {"accuracy": acc, "seconds": 1.0},
                                           **({"b": {"accuracy": acc + 0.1, "seconds": 3.0}} if extra else {})}
    result = {"dataset": "toy", "n_train": 10, "n_test": 5, "seeds": [0, 1],
              "runs": [run(10, 0, 0.5, False), run(10, 1, 0.7, False), run(100, 0, 0.6, True), run(100, 1, 0.8, True)]}
    lines = semisupervised.render(result).splitlines()
    assert lines[-2] == "| a | 0.6000 ± 0.1414 (1 s) | 0.7000 ± 0.1414 (1 s) |"
    assert lines[-1] == "| b | – | 0.8000 ± 0.1414 (3 s) |"
    semisupervised.plot(result, tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
