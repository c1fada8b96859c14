"""What each mixture component does, on labelled data (the paper's Fig. 7b claim, measured).

From the joint ``log pi_k + log p_k(x)`` of every test example, ``(N, K)``, and
the examples' class labels ``(N,)``:

- ``posterior_share[k]``: the mean exact responsibility of component k, its share
  of the posterior mass (compare with ``pi_k``: EM's fixed point has them equal);
- ``wins[k][c]``: test examples of class c whose most responsible component is k;
- ``class_share[k][c]``: the same as fractions of component k's wins;
- ``purity``: the fraction of examples whose class is the majority class of their
  winning component (clustering purity; 1/C for a component that ignores classes).

    report = component_report(joint, labels, num_classes=10)
"""
from __future__ import annotations

import numpy as np


def purity(assignment: np.ndarray, labels: np.ndarray) -> float:
    """Clustering purity: ``sum_k max_c |{i: assignment_i = k, label_i = c}| / N``."""
    assignment, labels = np.asarray(assignment), np.asarray(labels)
    if assignment.shape != labels.shape or assignment.ndim != 1:
        raise ValueError(f"purity: assignment and labels must be (N,) arrays of one length, "
                         f"got {assignment.shape} and {labels.shape}")
    total = 0
    for k in np.unique(assignment):
        total += np.bincount(labels[assignment == k]).max()
    return float(total / len(labels))


def component_report(joint: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> dict:
    """Posterior shares, win counts by class, class shares and purity, from ``joint: (N, K)`` and ``labels: (N,)``.

    Returns JSON-able lists (``wins`` and ``class_share`` are ``K x C``).
    """
    joint = np.asarray(joint, np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if joint.ndim != 2 or labels.shape != (joint.shape[0],):
        raise ValueError(f"component_report: expected joint (N, K) and labels (N,), got {joint.shape} and {labels.shape}")
    if labels.min() < 0:
        raise ValueError(f"component_report: labels must be class indices >= 0, got min {labels.min()}")
    n, k = joint.shape
    c = int(num_classes or labels.max() + 1)
    log_px = np.logaddexp.reduce(joint, axis=1, keepdims=True)
    gamma = np.exp(joint - log_px)
    winner = np.argmax(joint, axis=1)
    wins = np.zeros((k, c), np.int64)
    np.add.at(wins, (winner, labels), 1)
    totals = wins.sum(axis=1, keepdims=True)
    share = np.where(totals > 0, wins / np.maximum(totals, 1), 0.0)
    return {
        "posterior_share": [float(v) for v in gamma.mean(axis=0)],
        "wins": wins.tolist(),
        "class_share": np.round(share, 4).tolist(),
        "purity": purity(winner, labels),
    }
