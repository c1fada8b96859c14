"""experiments.config: the jobs' configuration files, command-line overrides and the errors for what does not exist."""
import dataclasses
import json
import pathlib
import re

import pytest

from experiments import config as config_lib
from experiments import image_experiment

REFERENCE = json.loads((pathlib.Path(__file__).parent / "data" / "job_configs_94e2ea9.json").read_text())["jobs"]


@pytest.mark.parametrize("job", sorted(REFERENCE))
def test_every_job_file_resolves_to_the_settings_the_presets_gave(job):
    name, *argv = job.split()
    dataset, model = name.rsplit("_", 1)
    assert dataclasses.asdict(image_experiment.parse(dataset, model, argv).config) == REFERENCE[job]


def test_config_file_and_field_overrides_in_order_file_then_config_flags_then_named_flags(tmp_path):
    path = tmp_path / "small.py"
    path.write_text("from experiments.configs import mnist_latmm\n\n"
                    "def get_config():\n    return mnist_latmm.get_config().replace(epochs=2, hidden=8)\n")
    args = image_experiment.parse("mnist", "latmm", ["--config", str(path), "--config.hidden=16", "--config.seed", "4",
                                                     "--config.split_log_std_floor=-5", "--seed", "5"])
    assert (args.epochs, args.hidden, args.seed, args.split_log_std_floor) == (2, 16, 5, -5.0)
    assert args.config == config_lib.ImageConfig(epochs=2, hidden=16, seed=5, split_log_std_floor=-5.0,
                                                 top_prior="standard")
    assert image_experiment.parse("mnist", "genmm", ["--config.split_log_std_floor=none"]).split_log_std_floor is None
    flipped = image_experiment.parse("mnist", "genmm", ["--config.shared_first_level=false", "--config.baselines=0"])
    assert not flipped.shared_first_level and not flipped.baselines and not flipped.shared_first_level_from_preset


@pytest.mark.parametrize("argv, message", [
    (["--config.epoch=3"], "no field 'epoch'; did you mean epochs"),
    (["--config.epochs=abc"], "--config.epochs must be int, got 'abc'"),
    (["--config.epochs=2.5"], "--config.epochs must be int, got '2.5'"),
    (["--config.shared_first_level=maybe"], "--config.shared_first_level must be bool, got 'maybe'"),
    (["--config.components=0"], "config.components must be >= 1, got 0"),
    (["--config.schedule=linear"], "config.schedule must be one of ('noam', 'cosine'), got 'linear'"),
    (["--config.learning_rate=-1e-3"], "config.learning_rate be > 0"),
    (["--config.epochs"], "--config.epochs needs a value"),
    (["--config", "no/such/file.py"], "config file 'no/such/file.py' does not exist"),
    (["--config", "x.py", "--preset", "paper"], "give --config or --preset, not both"),
])
def test_a_configuration_that_cannot_be_used_is_refused_by_name(argv, message):
    with pytest.raises(SystemExit, match="configuration: .*" + re.escape(message)):
        image_experiment.parse("mnist", "genmm", argv)


def test_a_config_file_that_names_a_missing_field_or_returns_something_else_is_refused(tmp_path):
    typo = tmp_path / "typo.py"
    typo.write_text("from experiments.configs import base\n\ndef get_config():\n"
                    "    return base.get_config().replace(hiden=8)\n")
    with pytest.raises(SystemExit, match="no field 'hiden'; did you mean hidden"):
        image_experiment.parse("mnist", "genmm", ["--config", str(typo)])
    wrong = tmp_path / "wrong.py"
    wrong.write_text("def get_config():\n    return {'epochs': 1}\n")
    with pytest.raises(SystemExit, match="must return an ImageConfig, got dict"):
        image_experiment.parse("mnist", "genmm", ["--config", str(wrong)])
    with pytest.raises(config_lib.ConfigError, match=r"config.hidden must be int, got '8' \(str\)"):
        config_lib.ImageConfig(hidden="8")
    with pytest.raises(config_lib.ConfigError, match="config.baselines must be bool, got 1"):
        config_lib.ImageConfig(baselines=1)
