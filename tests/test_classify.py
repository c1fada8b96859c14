"""MixtureClassifier: per-class mixtures trained as one batched program, on a few real Letter classes."""
import jax
import numpy as np
import pytest

from emflow import data, train
from emflow.classify import FeaturePreprocessor, MixtureClassifier, NotFittedError, StackTrainer, class_permutation

CLASSES = (0, 4, 14, 16)  # A, E, O, Q: O and Q are a classic confusable pair


@pytest.fixture(scope="module")
def letter(data_dir):
    ds = data.load_letter(data_dir)
    train_rows = np.isin(ds.y_train, CLASSES)
    test_rows = np.isin(ds.y_test, CLASSES)
    names = np.array(ds.class_names)
    return (ds.x_train[train_rows], names[ds.y_train[train_rows]],
            ds.x_test[test_rows], names[ds.y_test[test_rows]], ds)


def _small(**kw):
    return MixtureClassifier(**{**dict(num_components=2, flow_steps=2, hidden=16, epochs=12, batch_size=64,
                                       learning_rate=5e-3, warmup_steps=20, em_every=3, seed=1), **kw})


@pytest.fixture(scope="module")
def fitted(letter):
    x, y, _, _, _ = letter
    return _small().fit(x, y)


def test_a_few_letter_classes_are_classified_well(letter, fitted):
    _, _, x_test, y_test, _ = letter
    accuracy = fitted.score(x_test, y_test)
    print(f"4-class Letter accuracy {accuracy:.4f}")
    assert accuracy > 0.93, accuracy  # chance 0.25; nearest centroid 0.826; this run 0.974
    assert fitted.classes_.tolist() == ["A", "E", "O", "Q"]
    assert fitted.predict(x_test[:5]).dtype == fitted.classes_.dtype


def test_predict_proba_rows_sum_to_one_and_agree_with_predict(letter, fitted):
    _, _, x_test, _, _ = letter
    proba = fitted.predict_proba(x_test[:300])
    assert proba.shape == (300, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.all(proba >= 0)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(axis=1)], fitted.predict(x_test[:300]))
    ll = fitted.log_likelihood(x_test[:300])
    assert ll.shape == (300, 4) and np.all(np.isfinite(ll))


def test_batched_training_gives_each_class_its_own_prior_update(fitted):
    pis = np.exp(np.asarray(fitted.params_["log_pi"]))  # (C, K)
    assert pis.shape == (4, 2)
    np.testing.assert_allclose(pis.sum(axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(pis, 0.5)          # EM moved the priors
    assert len({tuple(np.round(p, 6)) for p in pis}) == 4  # each class from its own responsibilities


def test_add_class_trains_only_the_new_class(letter):
    x, y, x_test, y_test, ds = letter
    names = np.array(ds.class_names)
    three = y != "Q"
    clf = _small().fit(x[three], y[three])
    before = jax.tree.map(lambda a: np.array(a, copy=True), clf.params_)
    x_q = ds.x_train[names[ds.y_train] == "Q"]
    clf.add_class(x_q, "Q")
    assert clf.classes_.tolist() == ["A", "E", "O", "Q"]
    for old, new in zip(jax.tree.leaves(before), jax.tree.leaves(clf.params_)):
        assert new.shape == (4,) + old.shape[1:]
        np.testing.assert_array_equal(np.asarray(new[:3]), old)  # bitwise untouched
    assert clf.class_counts_[-1] == len(x_q)
    q = y_test == "Q"
    assert np.mean(clf.predict(x_test[q]) == "Q") > 0.8
    assert clf.score(x_test, y_test) > 0.9
    with pytest.raises(ValueError, match="label 'Q' is already a class"):
        clf.add_class(x_q, "Q")
    with pytest.raises(TypeError, match="labels of dtype int64 do not match"):
        clf.add_class(x_q, 7)


def test_stack_trainer_visits_every_example_of_every_class_each_epoch():
    perm = np.asarray(class_permutation(jax.random.PRNGKey(0), 5, 9))
    assert sorted(perm[:5].tolist()) == [0, 1, 2, 3, 4] and sorted(perm[5:].tolist()) == [5, 6, 7, 8]
    trainer = StackTrainer(None, train.TrainConfig(batch_size=4), FeaturePreprocessor.fit(np.eye(3), "none"))
    assert trainer.steps_per_epoch(9) == 3  # ceil(9 / 4): the 5-example class wraps around


def test_preprocessor_keeps_the_log_det_of_the_original_features():
    x = np.random.default_rng(0).integers(0, 16, size=(500, 3))
    pre = FeaturePreprocessor.fit(x, "dequantize")
    z = np.asarray(pre.eval_transform(x.astype(np.float32)))
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)  # centres: E[x + 1/2]
    assert pre.log_det == pytest.approx(-np.sum(np.log(np.sqrt(x.var(axis=0) + 1 / 12))), rel=1e-6)
    noisy = np.asarray(pre.train_transform(jax.random.PRNGKey(0), x.astype(np.float32)))
    u = noisy * pre.scale + pre.mean - x
    assert u.min() > -1e-4 and u.max() < 1 + 1e-4 and abs(u.mean() - 0.5) < 0.05 and u.std() > 0.2


def test_bad_input_is_refused_with_a_clear_error(letter, fitted):
    x, y, x_test, _, _ = letter
    with pytest.raises(NotFittedError, match="not fitted yet; call fit"):
        MixtureClassifier().predict(x_test)
    with pytest.raises(ValueError, match="X has 15 features, but the classifier was fitted with 16"):
        fitted.predict(x_test[:, :15])
    bad = x_test[:10].astype(np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN or Inf values"):
        fitted.predict_proba(bad)
    with pytest.raises(ValueError, match="1 NaN or Inf values"):
        _small().fit(np.concatenate([x[:50], bad]), np.concatenate([y[:50], y[:10]]))
    with pytest.raises(TypeError, match=r"labels of dtype int64 do not match .*\(dtype <U1"):
        fitted.score(x_test[:10], np.zeros(10, np.int64))
    with pytest.raises(ValueError, match=r"y must have shape \(100,\)"):
        _small().fit(x[:100], y[:99])
    with pytest.raises(ValueError, match="flow must be 'vector' or 'glow', got 'maf'"):
        _small(flow="maf").fit(x[:100], y[:100])
    with pytest.raises(ValueError, match="18 features is not such a square"):
        _small(flow="glow")._build_model(18)


def test_glow_on_the_reshaped_features_trains(letter):
    x, y, x_test, y_test, _ = letter
    clf = _small(flow="glow", num_components=1, flow_steps=2, hidden=8, epochs=4).fit(x, y)
    assert clf.model_.flow.image_shape == (4, 4, 1)
    assert clf.score(x_test, y_test) > 0.6
