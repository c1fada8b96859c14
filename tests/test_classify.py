"""MixtureClassifier: per-class mixtures trained as one batched program, on a few real Letter classes."""
import jax
import numpy as np
import pytest

import emflow
from emflow import data, train
from emflow.classify import (FeaturePreprocessor, GlowSpec, MixtureClassifier, NotFittedError, StackTrainer,
                             VectorFlowSpec, class_permutation)

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
    return MixtureClassifier(**{**dict(num_components=2, flow=VectorFlowSpec(num_steps=2, hidden=16), epochs=12, batch_size=64,
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
    model = emflow.GenMM(emflow.VectorFlow(3, num_steps=1, hidden=4), 1)
    trainer = StackTrainer(model, train.TrainConfig(batch_size=4), FeaturePreprocessor.fit(np.eye(3), "none"))
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
    with pytest.raises(ValueError, match="X has 15 features, but MixtureClassifier is expecting 16 features as input"):
        fitted.predict(x_test[:, :15])
    bad = x_test[:10].astype(np.float32)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN or Inf values"):
        fitted.predict_proba(bad)
    with pytest.raises(ValueError, match="1 NaN or Inf values"):
        _small().fit(np.concatenate([x[:50], bad]), np.concatenate([y[:50], y[:10]]))
    with pytest.raises(TypeError, match=r"labels of dtype int64 do not match .*\(dtype <U1"):
        fitted.score(x_test[:10], np.zeros(10, np.int64))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[100, 99\]"):
        _small().fit(x[:100], y[:99])
    with pytest.raises(ValueError, match="flow must be 'vector', 'glow', a VectorFlowSpec or a GlowSpec, got 'maf'"):
        _small(flow="maf").fit(x[:100], y[:100])
    with pytest.raises(ValueError, match="18 features is not such a square"):
        _small(flow="glow")._build_model(18)


def test_glow_on_the_reshaped_features_trains(letter):
    x, y, x_test, y_test, _ = letter
    clf = _small(flow=GlowSpec(num_steps=2, hidden=8), num_components=1, epochs=4).fit(x, y)
    assert clf.model_.flow.flow.image_shape == (4, 4, 1)  # Whitened(Glow)
    assert clf.score(x_test, y_test) > 0.6


def test_a_latmm_classifier_from_the_gaussian_start_trains(letter):
    # It used to ask LatMM for init_strategy="partition", a GenMM name, and fail before training.
    x, y, x_test, y_test, _ = letter
    clf = _small(model="latmm", epochs=4).fit(x, y)
    assert clf.model_.init_strategy == "kmeans" and clf.model_.min_part_fraction == 0.1
    assert clf.score(x_test, y_test) > 0.6   # chance 0.25


def test_satimage_dihedral_permutations_are_the_symmetries_of_the_3x3_neighbourhood():
    perms = data.satimage_dihedral_permutations()
    assert perms.shape == (8, 36) and perms.dtype == np.int32
    np.testing.assert_array_equal(perms[0], np.arange(36))
    assert len({tuple(p) for p in perms}) == 8
    rows = {tuple(p) for p in perms}
    for a in perms:  # a group: closed under composition
        for b in perms:
            assert tuple(a[b]) in rows
    for p in perms:
        np.testing.assert_array_equal(p[16:20], np.arange(16, 20))   # the central pixel (the label's) stays
        np.testing.assert_array_equal(p.reshape(9, 4) % 4, np.tile(np.arange(4), (9, 1)))  # bands stay together
    # A quarter turn of the pixel grid [[0,1,2],[3,4,5],[6,7,8]] (numpy's rot90: counter-clockwise).
    np.testing.assert_array_equal(perms[2].reshape(9, 4)[:, 0] // 4, [2, 5, 8, 1, 4, 7, 0, 3, 6])


def test_symmetrised_likelihood_is_invariant_and_a_mixture_over_the_permutations(letter):
    x, y, x_test, _, _ = letter
    # A 4-element group on Letter's 16 features (no meaning for Letter, only for the algebra):
    # swapping features 0<->1 and 2<->3 independently.
    ident = np.arange(16)
    a, b = ident.copy(), ident.copy()
    a[[0, 1]] = [1, 0]
    b[[2, 3]] = [3, 2]
    group = np.stack([ident, a, b, a[b]])
    clf = _small(num_components=1, epochs=2, feature_symmetries=group).fit(x, y)
    ll = clf.log_likelihood(x_test[:50])
    for perm in group:
        np.testing.assert_allclose(clf.log_likelihood(x_test[:50, perm]), ll, rtol=1e-5, atol=1e-4)
    # Independently: (1/G) sum_g p(x[perm_g]) from the unsymmetrised classifier with the same parameters.
    plain = _small(num_components=1, epochs=2).fit(x[:64], y[:64])
    for name in ("params_", "preprocessor_", "model_", "classes_", "class_counts_"):
        setattr(plain, name, getattr(clf, name))
    plain._log_prob_fn = plain._batch_log_prob()  # recompiled for the transplanted model
    per_g = np.stack([plain.log_likelihood(x_test[:50, perm]) for perm in group])
    expected = np.log(np.mean(np.exp(per_g - per_g.max(0)), axis=0)) + per_g.max(0)
    np.testing.assert_allclose(ll, expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match=r"rows \[1\] are not permutations of 0..15"):
        _small(feature_symmetries=np.stack([ident, np.zeros(16, int)])).fit(x, y)
    with pytest.raises(ValueError, match=r"shape \(G, 16\), got int64 of shape \(8, 36\)"):
        _small(feature_symmetries=data.satimage_dihedral_permutations().astype(np.int64)).fit(x, y)
    with pytest.raises(ValueError, match="unknown feature_symmetries 'cube'"):
        _small(feature_symmetries="cube").fit(x, y)


def test_parameter_average_follows_its_recurrence_and_leaves_training_alone(letter, fitted):
    pre = FeaturePreprocessor.fit(np.eye(3), "none")
    trainer = StackTrainer(emflow.GenMM(emflow.VectorFlow(3, num_steps=1, hidden=4), 1), train.TrainConfig(), pre,
                           ema_decay=0.9)
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(40, 3))
    average, expected = {"w": np.zeros(3)}, np.zeros(3)
    for t, p in enumerate(steps):
        average = trainer._update_average(average, {"w": p}, t)
        d = min(0.9, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * p
    np.testing.assert_allclose(np.asarray(average["w"]), expected, rtol=1e-5, atol=1e-6)  # float32
    # Training itself is unchanged by the average: same seed, same EM priors, different flow parameters
    # (without early stopping, which would choose each class's epoch by the averaged parameters).
    x, y, x_test, y_test, _ = letter
    averaged = _small(ema_decay=0.95, early_stopping=False).fit(x, y)
    plain = _small(early_stopping=False).fit(x, y)
    # Equal up to float32 rounding carried through training: the two programs differ (one also averages) and
    # the suite's fast-compile emitters (conftest.FAST_COMPILE) fuse them differently (4 ulp measured); under
    # XLA's default emitters they are bit-identical.
    np.testing.assert_allclose(np.asarray(averaged.params_["log_pi"]), np.asarray(plain.params_["log_pi"]), rtol=1e-5)
    a, b = jax.tree.leaves(averaged.params_["flows"]), jax.tree.leaves(plain.params_["flows"])
    assert any(not np.allclose(u, v) for u, v in zip(a, b))
    assert averaged.score(x_test, y_test) > 0.93


def test_the_compiled_batched_init_of_26_classes_x_4_components_has_no_lapack_call():
    """The init that once deadlocked jaxlib's LAPACK thread pool: one program, no custom calls, finite states."""
    import jax.numpy as jnp

    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, size=(26 * 8, 16)).astype(np.float32)
    codes = np.repeat(np.arange(26), 8)
    clf = MixtureClassifier(num_components=4, flow=VectorFlowSpec(num_steps=6, hidden=8))
    trainer = StackTrainer(clf._build_model(16), clf._train_config(), FeaturePreprocessor.fit(x, "dequantize", 1.0))
    padded = jnp.asarray(np.stack([x[codes == c] for c in range(26)]))
    keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(0), c) for c in range(26)])
    counts = jnp.full((26,), 8, jnp.int32)
    hlo = jax.jit(jax.vmap(trainer.init_class)).lower(keys, padded, counts).as_text()
    assert "custom_call" not in hlo
    state = trainer.init(keys, padded, counts)
    leaves = jax.tree.leaves(state.params)
    assert all(leaf.shape[0] == 26 for leaf in leaves) and all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in leaves)


def test_the_gaussian_start_is_each_class_s_fitted_gaussian(letter):
    """At init (K = 1, standardized features), each class's density is the maximum-likelihood Gaussian of its
    examples (reg 1e-6, negligible): against scipy's multivariate normal."""
    import jax.numpy as jnp
    import scipy.stats

    from emflow.classify import class_log_prob, pad_by_class

    x, y, x_test, _, _ = letter
    codes = np.unique(y, return_inverse=True)[1]
    keep = np.concatenate([np.flatnonzero(codes == c)[:500] for c in range(4)])   # equal classes: no wrap-around
    x, codes = x[keep].astype(np.float64), codes[keep]
    clf = MixtureClassifier(num_components=1, flow=VectorFlowSpec(num_steps=2, hidden=8), gaussian_reg=1e-6, preprocessing="standardize")
    pre = FeaturePreprocessor.fit(x, "standardize")
    trainer = StackTrainer(clf._build_model(16), train.TrainConfig(init_batch_size=500), pre)
    padded, counts = pad_by_class(x.astype(np.float32), codes, 4)
    keys = jnp.stack([jax.random.PRNGKey(c) for c in range(4)])
    params = trainer.init(keys, jnp.asarray(padded), jnp.asarray(counts)).params
    per_class = class_log_prob(trainer.model, pre, None, 0)
    got = np.asarray(jax.vmap(per_class, in_axes=(0, None, None))(params, jnp.asarray(x_test[:50]), None)) \
        + pre.log_det                                                                  # (4, 50), raw features
    for c in range(4):
        xc = x[codes == c]
        gaussian = scipy.stats.multivariate_normal(xc.mean(0), np.cov(xc.T, bias=True))
        np.testing.assert_allclose(got[c], gaussian.logpdf(x_test[:50]), rtol=2e-4, atol=5e-3)


def test_early_stopping_keeps_the_best_epoch_and_the_refit_trains_that_long(letter):
    import jax.numpy as jnp

    from emflow.classify import stratified_holdout

    x, y, x_test, y_test, _ = letter
    kept = _small(refit=False, patience=3, epochs=30).fit(x, y)
    losses = np.asarray(kept.validation_history_)
    assert kept.best_epoch_ == int(np.argmin(losses))          # the init (epoch 0) is a candidate
    assert len(losses) == len(kept.history_) + 1
    assert len(kept.history_) in (kept.best_epoch_ + 3, 30)    # stopped 3 epochs after the best, or ran out
    # The kept parameters are the best epoch's: recompute their held-out loss from scratch.
    codes = np.unique(y, return_inverse=True)[1].astype(np.int32)
    held = stratified_holdout(codes, 0.1, kept.seed)
    assert held.sum() == sum(round(0.1 * n) for n in np.bincount(codes))
    trainer = StackTrainer(kept.model_, kept._train_config(), kept.preprocessor_)
    loss = trainer.held_out_loss(kept.params_, jnp.asarray(x[held], jnp.float32), jnp.asarray(codes[held]),
                                 jnp.asarray(kept.class_log_prior_, jnp.float32))
    np.testing.assert_allclose(float(loss), losses[kept.best_epoch_], rtol=1e-5)
    refitted = _small(patience=3, epochs=30).fit(x, y)
    assert refitted.best_epoch_ == kept.best_epoch_ and len(refitted.history_) == kept.best_epoch_
    assert not np.allclose(jax.tree.leaves(refitted.params_["flows"])[0], jax.tree.leaves(kept.params_["flows"])[0])
    assert refitted.score(x_test, y_test) > 0.93
