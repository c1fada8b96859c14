"""The table of bad inputs (docs/guides/faults_and_bad_inputs.md): every row is run here, and the page lists every row.

``ROWS`` is the table: (where, the bad input, the error it gets, a regex the message must
match, the call). ``python tests/test_bad_inputs.py`` prints it as the page's markdown.
Nothing here is clipped or coerced: each input is refused with an error that names what
was expected and what came.
"""
from __future__ import annotations

import json
import pathlib
import shutil
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python tests/test_bad_inputs.py
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import scipy.sparse  # noqa: E402

import emflow  # noqa: E402
from emflow import data as data_lib  # noqa: E402
from emflow import em, notebook, serialization, train  # noqa: E402
from emflow.data import download
from emflow.evaluation import feature_net, metrics
from emflow.train.checkpoint import CorruptCheckpointError  # noqa: E402
from emflow.xla_flags import check_xla_flags  # noqa: E402
from emflow.train.checkpoint import ConfigMismatchError  # noqa: E402
from emflow.classify import MixtureClassifier, NotFittedError, VectorFlowSpec  # noqa: E402

QUIET = dict(progress=False, log=lambda s: None)
VECTOR_MODEL = emflow.GenMM(emflow.VectorFlow(2, num_steps=1, hidden=4), 2)
IMAGES = np.random.default_rng(0).integers(0, 256, size=(32, 4, 4, 1), dtype=np.uint8)
DEQ = emflow.Dequantizer((4, 4, 1))
IMAGE_MODEL = emflow.GenMM(emflow.Glow((4, 4, 1), 1, 1, 4), 2)
TINY_FIT = dict(epochs=1, batch_size=8, em_every=1, init_batch_size=8, num_samples=0, warmup_steps=1)
TINY_CLF = dict(epochs=1, flow=VectorFlowSpec(num_steps=1, hidden=4), batch_size=8, warmup_steps=1, eval_batch_size=64)


def _toy(n=64):
    return np.random.default_rng(1).standard_normal((n, 2)).astype(np.float32)


def _fit_images(images, **kw):
    return train.fit(IMAGE_MODEL, train.TrainConfig(**TINY_FIT), DEQ, images, None, **QUIET, **kw)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """Shared material: a finished tiny run, a fitted classifier, a folder for files."""
    root = tmp_path_factory.mktemp("bad")
    run = root / "run"
    train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None, _toy(), None, workdir=run, **QUIET)
    x = np.random.default_rng(2).integers(0, 16, size=(60, 4)).astype(np.int32)
    y = np.array(list("ab") * 30)
    clf = MixtureClassifier(**TINY_CLF).fit(x, y)
    return {"root": root, "run": run, "clf": clf, "x": x, "y": y}


def _foreign_checkpoint(ctx):
    path = ctx["root"] / "foreign"
    if not path.exists():
        emflow.save(path, VECTOR_MODEL, VECTOR_MODEL.init(jax.random.PRNGKey(0), jnp.ones((4, 2))))
        record = json.loads((path / serialization.MODEL_FILE).read_text())
        (path / serialization.MODEL_FILE).write_text(json.dumps({**record, "format_version": 2,
                                                                 "emflow_version": "0.9.0"}))
    return emflow.load(path)


def _malformed_idx(ctx):
    folder = ctx["root"] / "broken" / "mnist"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (folder / name).write_bytes(b"\x00\x00\x08\x03not an idx file")
    return data_lib.load_dataset("mnist", ctx["root"] / "broken")


def _small_idx_dataset(ctx):
    """A valid MNIST-layout folder of 10 training and 5 test images (IDX written here), for the row checks."""
    from test_data import _write_idx

    folder = ctx["root"] / "small" / "mnist"
    if not folder.exists():
        folder.mkdir(parents=True)
        for stem, n in (("train", 10), ("t10k", 5)):
            _write_idx(folder / f"{stem}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
            _write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return ctx["root"] / "small"


def _mismatched_resume(ctx):
    config = train.TrainConfig(**{**TINY_FIT, "batch_size": 16})
    return train.fit(VECTOR_MODEL, config, None, _toy(), None, workdir=ctx["run"], resume=True, **QUIET)


def _truncated_record(ctx):
    path = ctx["root"] / "truncated"
    if not path.exists():
        shutil.copytree(ctx["run"], path)
        (path / "checkpoints" / "0" / "record" / "metadata").write_text('{"epoch": 0, "conf')
    return emflow.load(path)


def _vector_params():
    return VECTOR_MODEL.init(jax.random.PRNGKey(0), jnp.ones((4, 2)))


class BrokenHook(train.BaseHook):
    def after_epoch(self, end):
        return 1 / 0


def _unwritable_download(ctx):
    blocker = ctx["root"] / "a_file"
    blocker.write_text("a file where the data folder should go")
    return download.ensure_dataset("mnist", blocker, log=lambda s: None)


def _experiment(argv):
    from experiments.image_experiment import run

    return run("mnist", "genmm", argv)


def _config_file(root, expression: str):
    """A job configuration file under ``root`` whose ``get_config()`` returns ``expression`` (of ``base``)."""
    path = root / "job_config.py"
    path.write_text(f"from experiments.configs import base\n\ndef get_config():\n    return {expression}\n")
    return path


# (where, bad input, error, message regex, call)
ROWS = [
    ("library", "images of another dtype than uint8 (float32) given to a `Dequantizer`", "ValueError",
     r"uint8", lambda c: _fit_images(IMAGES.astype(np.float32))),
    ("library", "images of another shape (8×8) than the `Dequantizer`'s (4×4)", "ValueError",
     r"expected uint8 data of shape \(batch, 4, 4, 1\), got \(32, 8, 8, 1\)",
     lambda c: _fit_images(np.zeros((32, 8, 8, 1), np.uint8))),
    ("library", "NaN or Inf in the training data", "ValueError",
     r"x_train.*(NaN|non-finite)", lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None,
                                                       np.r_[_toy(), [[np.nan, 0.0]]].astype(np.float32), None,
                                                       **QUIET)),
    ("library", "K < 1 (`GenMM(flow, 0)`, `LatMM(flow, 0)`)", "ValueError",
     r"num_components must be an integer >= 1, got 0", lambda c: emflow.GenMM(emflow.VectorFlow(2), 0)),
    ("library", "an image size the levels cannot squeeze (28×28, 3 levels)", "ValueError",
     r"cannot be squeezed 3 times.*divisible by 2\*\*num_levels = 8", lambda c: emflow.Glow((28, 28, 1), 3, 1, 8)),
    ("library", "t_EM < 1 (`TrainConfig(em_every=0)`)", "ValueError",
     r"em_every must be an integer >= 1, got 0", lambda c: train.TrainConfig(em_every=0)),
    ("library", "a learning rate <= 0 (`TrainConfig(learning_rate=-1e-3)`)", "ValueError",
     r"learning_rate must be a finite number > 0, got -0.001", lambda c: train.TrainConfig(learning_rate=-1e-3)),
    ("library", "a gradient clip <= 0 (`TrainConfig(clip_value=-5)`)", "ValueError",
     r"clip_value must be a finite number > 0, got -5", lambda c: train.TrainConfig(clip_value=-5)),
    ("library", "a generator index outside [0, K) (`GenMM.generator(params, 5)`, K = 2)", "ValueError",
     r"GenMM.generator: k must lie in \[0, K\) = \[0, 2\), got 5",
     lambda c: VECTOR_MODEL.generator(_vector_params(), 5)),
    ("library", "a negative sample count (`sample(params, key, -3)`)", "ValueError",
     r"GenMM.sample: n must be an integer >= 0, got -3",
     lambda c: VECTOR_MODEL.sample(_vector_params(), jax.random.PRNGKey(0), -3)),
    ("library", "a sample count that is not an integer (`sample(params, key, 2.5)`)", "TypeError",
     r"GenMM.sample: n must be an integer >= 0, got 2.5 of type float",
     lambda c: VECTOR_MODEL.sample(_vector_params(), jax.random.PRNGKey(0), 2.5)),
    ("library", "an `x_test` of another example shape than `x_train`", "ValueError",
     r"x_test must hold examples of x_train's shape \(2,\), got x_test of shape \(8, 3\)",
     lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None, _toy(), np.zeros((8, 3), np.float32),
                         **QUIET)),
    ("library", "continuous examples of another shape than the model's event shape", "ValueError",
     r"x_train must hold examples of the model's event shape \(N, 2\), got shape \(64, 3\)",
     lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None, np.zeros((64, 3), np.float32), None,
                         **QUIET)),
    ("library", "test labels that are not integers (`y_test` of strings)", "TypeError",
     r"y_test must hold integer class labels 0..C-1, got dtype <U1",
     lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None, _toy(), _toy(8), y_test=np.array(list("ab") * 4),
                         **QUIET)),
    ("library", "a hook that raises", "HookError",
     r"hook BrokenHook failed after epoch 1 \(ZeroDivisionError",
     lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None, _toy(), None, hooks=[BrokenHook()],
                         **QUIET)),
    ("library", "an `XLA_FLAGS` flag the installed XLA does not know", "ValueError",
     r"--xla_no_such_flag=1\. Remove them", lambda c: check_xla_flags("--xla_no_such_flag=1")),
    ("library", "a batch larger than the training set", "ValueError",
     r"batch_size 64 is larger than the training set \(10 examples\)",
     lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(batch_size=64), None, _toy(10), None, **QUIET)),
    ("library", "an init batch smaller than K", "ValueError",
     r"the init batch has 2 examples, fewer than K = 3",
     lambda c: emflow.GenMM(emflow.VectorFlow(2), 3).init(jax.random.PRNGKey(0), jnp.ones((2, 2)))),
    ("library", "a tempering β outside (0, 1]", "ValueError",
     r"beta must lie in \(0, 1\]", lambda c: em.check_beta(1.5)),
    ("library", "a batch of the wrong event shape to `log_prob`", "ValueError",
     r"expected a batch of shape \(batch, 2\), got shape \(4, 3\)",
     lambda c: VECTOR_MODEL.log_prob(VECTOR_MODEL.init(jax.random.PRNGKey(0), jnp.ones((4, 2))), jnp.ones((4, 3)))),
    ("library", "a workdir that holds a run, without `resume`", "FileExistsError",
     r"already holds checkpoints of a run.*pass --resume",
     lambda c: train.fit(VECTOR_MODEL, train.TrainConfig(**TINY_FIT), None, _toy(), None, workdir=c["run"], **QUIET)),
    ("library", "a resume with another configuration (batch size 16 for 8)", "ConfigMismatchError",
     r"train.batch_size: 8 \(saved\) != 16 \(now\)", _mismatched_resume),
    ("library", "`emflow.load` of a checkpoint written in another format", "IncompatibleCheckpointError",
     r"written by emflow 0\.9\.0 in checkpoint format 2", _foreign_checkpoint),
    ("library", "`emflow.load` of a folder that is neither a run nor a saved model", "FileNotFoundError",
     r"neither a training run", lambda c: emflow.load(c["root"])),
    ("library", "`emflow.load` of a run whose checkpoint record is truncated", "CorruptCheckpointError",
     r"load: could not read .*truncated/checkpoints/0/record", _truncated_record),
    ("library", "`emflow.save` of parameters that do not fit the model", "ValueError",
     r"save: params do not fit the model: \['log_pi'\] should have shape \(2,\), got \(3,\)",
     lambda c: emflow.save(c["root"] / "misfit", VECTOR_MODEL, {**_vector_params(), "log_pi": jnp.zeros(3)})),
    ("library", "`emflow.save` into a folder that holds other files", "FileExistsError",
     r"holds something other than an emflow saved model",
     lambda c: emflow.save(c["run"], VECTOR_MODEL, VECTOR_MODEL.init(jax.random.PRNGKey(0), jnp.ones((4, 2))))),
    ("data", "an unknown dataset name", "ValueError",
     r"unknown dataset 'mnits'; valid names", lambda c: data_lib.load_dataset("mnits", c["root"])),
    ("data", "a data directory without the files", "FileNotFoundError",
     r"train-images-idx3-ubyte", lambda c: data_lib.load_dataset("mnist", c["root"] / "empty")),
    ("data", "a malformed IDX file", "DataFormatError",
     r"train-images-idx3-ubyte", _malformed_idx),
    ("data", "a download folder that cannot be written", "DownloadError",
     r"cannot write the data folder .*a_file/mnist", lambda c: _unwritable_download(c)),
    ("data", "a row range outside the file's rows", "ValueError",
     r"0 <= start <= stop <= 10 \(the file's row count\)",
     lambda c: data_lib.load_dataset("mnist", _small_idx_dataset(c), train_rows=slice(5, 11))),
    ("classifier", "`predict_proba` before `fit`", "NotFittedError",
     r"not fitted yet; call fit", lambda c: MixtureClassifier().predict_proba(c["x"])),
    ("classifier", "a wrong feature count", "ValueError",
     r"X has 3 features, but MixtureClassifier is expecting 4", lambda c: c["clf"].predict(c["x"][:, :3])),
    ("classifier", "labels of another type than the fitted ones", "TypeError",
     r"labels of dtype int64 do not match", lambda c: c["clf"].score(c["x"], np.zeros(60, np.int64))),
    ("classifier", "sparse input", "TypeError",
     r"Sparse data was passed", lambda c: MixtureClassifier(**TINY_CLF).fit(scipy.sparse.csr_matrix(c["x"]), c["y"])),
    ("classifier", "one class only", "ValueError",
     r"need at least 2 classes, got 1 class", lambda c: MixtureClassifier(**TINY_CLF).fit(c["x"], ["a"] * 60)),
    ("classifier", "a class with fewer examples than K", "ValueError",
     r"at least num_components=4 \(\+ 1 held out for early stopping\) examples", lambda c: MixtureClassifier(num_components=4, **TINY_CLF).fit(
         c["x"][:33], c["y"][:33].tolist()[:32] + ["z"])),
    ("classifier", "a continuous target", "ValueError",
     r"Unknown label type: continuous", lambda c: MixtureClassifier(**TINY_CLF).fit(c["x"], np.linspace(0, 1, 60))),
    ("library", "a spline coupling of one bin (`VectorFlow(4, coupling=\"spline\", spline_bins=1)`)", "ValueError",
     r"spline_bins must be an integer >= 2, got 1",
     lambda c: emflow.VectorFlow(4, coupling="spline", spline_bins=1)),
    ("library", "a spline interval that is not a positive number (`tail_bound=0`)", "ValueError",
     r"tail_bound must be a finite number > 0, got 0",
     lambda c: emflow.VectorFlow(4, coupling="spline", tail_bound=0)),
    ("library", "a data set too small for `fit_to_data`'s validation split (5 examples)", "ValueError",
     r"5 examples are too few to hold out a fraction 0.1",
     lambda c: train.fit_to_data(VECTOR_MODEL, np.zeros((5, 2), np.float32), progress=False)),
    ("classifier", "a flow the classifier does not know (`flow=\"maf\"`)", "ValueError",
     r"flow must be 'vector', 'glow', a VectorFlowSpec or a GlowSpec, got 'maf'",
     lambda c: MixtureClassifier(**{**TINY_CLF, "flow": "maf"}).fit(c["x"], c["y"])),
    ("experiments", "`--components 0`", "SystemExit",
     r"config.components must be >= 1, got 0", lambda c: _experiment(["--components", "0"])),
    ("experiments", "`--em_every 0`", "SystemExit",
     r"config.em_every must be >= 1, got 0", lambda c: _experiment(["--em_every", "0"])),
    ("experiments", "a configuration field that does not exist (`--config.epoch=3`)", "SystemExit",
     r"config has no field 'epoch'; did you mean epochs\?", lambda c: _experiment(["--config.epoch=3"])),
    ("experiments", "a configuration file that sets a field that does not exist", "SystemExit",
     r"config has no field 'hiden'; did you mean hidden\?", lambda c: _experiment(["--config", str(_config_file(
         c["root"], "base.get_config().replace(hiden=8)"))])),
    ("experiments", "a configuration value of the wrong type (`--config.epochs=2.5`)", "SystemExit",
     r"--config.epochs must be int, got '2.5'", lambda c: _experiment(["--config.epochs=2.5"])),
    ("experiments", "`--num_train` larger than the training set", "SystemExit",
     r"--num_train 70000 exceeds the 60000 examples of mnist", lambda c: _experiment(["--num_train", "70000"])),
    ("metrics", "feature arrays of different widths", "ValueError",
     r"same width, got \[4, 5\]", lambda c: metrics.frechet_distance(np.zeros((8, 4)), np.zeros((8, 5)))),
    ("metrics", "fewer than 2 samples", "ValueError",
     r"at least 2 samples per set, got 1", lambda c: metrics.mmd(np.zeros((8, 4)), np.zeros((1, 4)))),
    ("metrics", "NaN features", "ValueError",
     r"features hold NaN or Inf", lambda c: metrics.one_nn_accuracy(np.zeros((8, 4)), np.full((8, 4), np.nan))),
    ("metrics", "class probabilities that do not sum to 1", "ValueError",
     r"every row of probs must be a probability vector", lambda c: metrics.inception_score(np.full((8, 4), 0.3), num_splits=2)),
    ("metrics", "a missing feature-network checkpoint", "MissingFeatureNetError",
     r"python -m experiments.train_feature_net --dataset mnist", lambda c: feature_net.load("mnist", c["root"])),
    ("notebooks", "`EMFLOW_NOTEBOOK_MODE` set to an unknown value", "ValueError",
     r"is not a notebook mode; expected one of", lambda c: notebook.mode({notebook.MODE_VARIABLE: "tiny"})),
]

ERRORS = {"ValueError": ValueError, "TypeError": TypeError, "FileExistsError": FileExistsError,
          "FileNotFoundError": FileNotFoundError, "ConfigMismatchError": ConfigMismatchError,
          "IncompatibleCheckpointError": serialization.IncompatibleCheckpointError,
          "DataFormatError": data_lib.DataFormatError, "NotFittedError": NotFittedError, "SystemExit": SystemExit,
          "MissingFeatureNetError": feature_net.MissingFeatureNetError, "HookError": train.HookError,
          "CorruptCheckpointError": CorruptCheckpointError, "DownloadError": download.DownloadError}


@pytest.mark.parametrize("where,bad,error,pattern,call", ROWS, ids=[f"{r[0]}: {r[1]}" for r in ROWS])
def test_each_bad_input_gets_its_error(ctx, where, bad, error, pattern, call):
    with pytest.raises(ERRORS[error]) as info:
        call(ctx)
    assert type(info.value).__name__ == error, type(info.value)
    import re

    assert re.search(pattern, str(info.value)), f"{bad}: message {str(info.value)!r} does not match {pattern!r}"


def test_the_mismatched_resume_left_the_run_as_it_was(ctx):
    model, params = emflow.load(ctx["run"])
    assert model == VECTOR_MODEL and len(list((ctx["run"] / "checkpoints").iterdir())) == 1


def test_zero_size_batches_give_empty_results():
    """An empty batch is not refused: log_prob and component_log_prob give (0,) and (0, K); sample(n=0) gives
    (0, *event_shape), component_samples (K, 0, *event_shape). For both models."""
    for model in (VECTOR_MODEL, emflow.LatMM(emflow.VectorFlow(2, num_steps=1, hidden=4), 2)):
        params = model.init(jax.random.PRNGKey(0), jnp.asarray(_toy(8)))
        empty = jnp.zeros((0, 2))
        assert model.log_prob(params, empty).shape == (0,)
        assert model.component_log_prob(params, empty).shape == (0, 2)
        assert model.responsibilities(params, empty).shape == (0, 2)
        assert model.sample(params, jax.random.PRNGKey(1), 0).shape == (0, 2)
        assert model.component_samples(params, jax.random.PRNGKey(1), 0).shape == (2, 0, 2)
        assert model.sample(params, jax.random.PRNGKey(1), np.int64(3)).shape == (3, 2)  # numpy ints are counts too
    with pytest.raises(TypeError, match="n must be an integer >= 0, got True"):
        VECTOR_MODEL.sample(_vector_params(), jax.random.PRNGKey(0), True)
    np.testing.assert_array_equal(  # a numpy index picks the same generator as a Python int
        VECTOR_MODEL.generator(_vector_params(), np.int32(1))["steps"]["actnorm"]["bias"],
        VECTOR_MODEL.generator(_vector_params(), 1)["steps"]["actnorm"]["bias"])


def markdown_table() -> str:
    lines = ["| where | bad input | error |", "| --- | --- | --- |"]
    lines += [f"| {where} | {bad} | `{error}` |" for where, bad, error, _, _ in ROWS]
    return "\n".join(lines)


def test_the_docs_list_every_row():
    page = (ROOT / "docs" / "guides" / "faults_and_bad_inputs.md").read_text()
    assert markdown_table() in page, "the bad-input table of docs/guides/faults_and_bad_inputs.md is stale: python tests/test_bad_inputs.py"


if __name__ == "__main__":
    print(markdown_table())
