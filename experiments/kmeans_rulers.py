"""The k-means ruler of purity: the test images' nearest k-means centroid on pixels (scikit-learn).

A mixture's components should be purer than this; ``table1``, ``partition_spaces`` and the
ablations print it beside their own purity.
"""
from __future__ import annotations

import numpy as np

from emflow import data as data_lib
from emflow.data import download
from emflow.evaluation import diagnostics


def kmeans_purity(dataset: str, data_dir, num_train: int, num_test: int, k: int, seed: int) -> float:
    """Purity of the test images' nearest k-means centroid (pixels; scikit-learn, fitted on the training images)."""
    return kmeans_purities(dataset, data_dir, num_train, num_test, k, [seed])[0]


def kmeans_purities(dataset: str, data_dir, num_train: int, num_test: int, k: int, seeds) -> list[float]:
    """``kmeans_purity`` for each of ``seeds``, the dataset read once."""
    return kmeans_purities_of(data_lib.load_dataset(dataset, download.ensure_dataset(dataset, data_dir)), num_train, num_test, k, seeds)


def kmeans_purities_of(ds, num_train: int, num_test: int, k: int, seeds) -> list[float]:
    """``kmeans_purities`` of a dataset already read (``data.load_dataset``)."""
    from sklearn.cluster import KMeans

    train = ds.x_train[:num_train].reshape(num_train, -1).astype(np.float32) / 255.0
    test = ds.x_test[:num_test or None]
    test_pixels, labels = test.reshape(len(test), -1).astype(np.float32) / 255.0, ds.y_test[:len(test)]
    return [diagnostics.purity(KMeans(k, n_init=3, random_state=seed).fit(train).predict(test_pixels), labels)
            for seed in seeds]
