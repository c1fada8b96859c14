"""Maximum-likelihood classification with one mixture per class (the paper's section IV-D).

``MixtureClassifier`` (a scikit-learn estimator) fits one GenMM or LatMM per class and
predicts ``argmax_y log p(x; Phi_y) + log P(y)``. Its parts: ``features`` (the fitted
preprocessor, feature symmetries, the per-class log density), ``flow_specs`` (each class's flow as one
setting), ``stack`` (the C class
models trained as one vmapped program), ``semi_supervised`` (one mixture for all classes, learned
from labelled and unlabelled data) and ``gaussian_classifier`` (the Gaussian baseline).
"""
from emflow.classify.estimator import MixtureClassifier, NotFittedError
from emflow.classify.flow_specs import GlowSpec, VectorFlowSpec
from emflow.classify.features import (SYMMETRIES, FeaturePreprocessor, class_log_prob, feature_permutations,
                                      glow_image_shape, orbit)
from emflow.classify.semi_supervised import SemiSupervisedMixtureClassifier
from emflow.classify.stack import StackTrainer, TrainedStack, class_permutation, pad_by_class, stratified_holdout

__all__ = [
    "SYMMETRIES", "FeaturePreprocessor", "GlowSpec", "MixtureClassifier", "VectorFlowSpec", "NotFittedError", "SemiSupervisedMixtureClassifier", "StackTrainer", "TrainedStack",
    "class_log_prob", "class_permutation", "feature_permutations", "glow_image_shape", "orbit", "pad_by_class",
    "stratified_holdout",
]
