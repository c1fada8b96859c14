"""The metrics' feature network: trains well above chance in seconds, round-trips through its cache, refuses clearly."""
import numpy as np
import pytest

from emflow import data as data_lib
from emflow.evaluation import feature_net

TINY = feature_net.FeatureNetConfig(widths=(8, 16), feature_width=32, epochs=4, batch_size=64, learning_rate=1e-2,
                                    max_shift=0)


@pytest.fixture(scope="module")
def mnist(data_dir):
    return data_lib.load_dataset("mnist", data_dir)


@pytest.fixture(scope="module")
def tiny_net(mnist):
    return feature_net.train_feature_net(mnist.x_train[:3000], mnist.y_train[:3000], mnist.x_test[:500],
                                         mnist.y_test[:500], TINY, progress=False, log=lambda s: None)


def test_trains_well_above_chance_and_gives_probabilities_and_features(tiny_net, mnist):
    print("tiny feature net test accuracy", tiny_net.record["test_accuracy"])
    assert tiny_net.record["test_accuracy"] > 0.6  # chance is 0.1
    probs, features = tiny_net.apply(mnist.x_test[:37])
    assert probs.shape == (37, 10) and features.shape == (37, 32)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(features >= 0)  # the penultimate layer is a ReLU
    np.testing.assert_allclose(tiny_net.accuracy(mnist.x_test[:500], mnist.y_test[:500]),
                               tiny_net.record["test_accuracy"])


def test_cache_round_trip_and_missing_network_message(tiny_net, mnist, tmp_path):
    with pytest.raises(feature_net.MissingFeatureNetError, match="python -m experiments.train_feature_net "
                                                                 "--dataset mnist"):
        feature_net.load("mnist", tmp_path)
    feature_net.save(tiny_net, feature_net.cache_dir("mnist", tmp_path))
    loaded = feature_net.load("mnist", tmp_path)
    assert loaded.config == tiny_net.config and loaded.record == tiny_net.record
    for a, b in zip(loaded.apply(mnist.x_test[:20]), tiny_net.apply(mnist.x_test[:20])):
        np.testing.assert_array_equal(a, b)


def test_bad_images_are_refused(tiny_net):
    with pytest.raises(ValueError, match=r"expected uint8 images \(n, H, W, 1\)"):
        tiny_net.apply(np.zeros((3, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="batch_size 64 is larger than the training set"):
        feature_net.train_feature_net(np.zeros((10, 28, 28, 1), np.uint8), np.zeros(10, int), None, None, TINY)
