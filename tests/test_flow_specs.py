"""emflow.classify.flow_specs: a classifier's flow as one setting."""
import json

import numpy as np
import pytest
import sklearn.base

import emflow
from emflow.classify import (
    GlowSpec,
    MixtureClassifier,
    SemiSupervisedMixtureClassifier,
    VectorFlowSpec,
    flow_specs,
)


def test_specs_build_the_flows_they_name():
    assert VectorFlowSpec(num_steps=3, hidden=8, coupling="spline").build(5) == emflow.VectorFlow(
        5, num_steps=3, hidden=8, coupling="spline")
    assert GlowSpec().build(16) == emflow.Glow((4, 4, 1), num_levels=1, num_steps=12, hidden_channels=8)
    assert GlowSpec(image_shape=[2, 8, 1]).build(16).image_shape == (2, 8, 1)
    assert flow_specs.flow_spec("vector", "x") == VectorFlowSpec() and flow_specs.flow_spec("glow", "x") == GlowSpec()
    assert VectorFlowSpec(coupling="spline", spline_bins=4, tail_bound=3.0).build(5) == emflow.VectorFlow(
        5, num_steps=6, hidden=64, coupling="spline", spline_bins=4, tail_bound=3.0)
    record = flow_specs.as_dict(VectorFlowSpec(coupling="spline"))
    assert json.loads(json.dumps(record)) == {"kind": "VectorFlowSpec", "num_steps": 6, "hidden": 64,
                                              "coupling": "spline", "spline_bins": 8, "tail_bound": 4.0}


@pytest.mark.parametrize("spec", [VectorFlowSpec(coupling="spline", spline_bins=4), GlowSpec(image_shape=(2, 8, 1)),
                                  "vector"])
def test_from_dict_reads_back_what_as_dict_wrote(spec):
    assert flow_specs.from_dict(json.loads(json.dumps(flow_specs.as_dict(spec)))) == spec


def test_from_dict_fills_fields_left_out_with_defaults():
    assert flow_specs.from_dict({"kind": "VectorFlowSpec", "spline_bins": 4}) == VectorFlowSpec(spline_bins=4)


def test_a_classifier_holding_a_spec_clones_and_fits():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (40, 3)), rng.normal(2, 1, (40, 3))]).astype(np.float32)
    y = np.repeat([0, 1], 40)
    clf = MixtureClassifier(flow=VectorFlowSpec(num_steps=1, hidden=4, coupling="spline"), epochs=3, batch_size=16,
                            warmup_steps=1, early_stopping=False)
    clone = sklearn.base.clone(clf)
    assert clone.get_params()["flow"] == clf.flow
    assert clone.fit(x, y).score(x, y) > 0.9


@pytest.mark.parametrize("make, message", [
    (lambda: MixtureClassifier(flow="maf").fit(np.zeros((8, 2)), [0, 1] * 4),
     r"flow must be 'vector', 'glow', a VectorFlowSpec or a GlowSpec, got 'maf'"),
    (lambda: MixtureClassifier(flow=GlowSpec(image_shape=(4, 4, 1))).fit(np.zeros((8, 9)), [0, 1] * 4),
     r"GlowSpec: image_shape \(4, 4, 1\) holds 16 values, but X has 9 features"),
    (lambda: SemiSupervisedMixtureClassifier(flow="glow").fit(np.zeros((8, 4)), [0, 1, -1, -1] * 2),
     r"flow must be 'vector' or a VectorFlowSpec, got 'glow'"),
    (lambda: VectorFlowSpec(num_steps=0), r"VectorFlowSpec: num_steps must be an integer >= 1, got 0"),
    (lambda: VectorFlowSpec(coupling="cubic"), r"VectorFlowSpec: coupling must be one of"),
    (lambda: GlowSpec(num_levels=1.5), r"GlowSpec: num_levels must be an integer >= 1, got 1.5"),
    (lambda: VectorFlowSpec(coupling="spline", spline_bins=1), r"VectorFlowSpec: spline_bins must be an integer >= 2"),
    (lambda: VectorFlowSpec(tail_bound=0.0), r"VectorFlowSpec: tail_bound must be a finite number > 0, got 0.0"),
    (lambda: flow_specs.from_dict({"kind": "MAFSpec"}), r"from_dict: kind must be one of \['GlowSpec', 'VectorFlowSpec'\]"),
])
def test_a_flow_setting_that_cannot_work_is_refused_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()
