"""The cpu setting: about 15 minutes per job on a 2-core CPU (docs/reproducing/main_jobs.md).

A Glow of 2 levels x 4 steps x 64 hidden channels behind a logit map (alpha 1e-6) on the
original 28x28 images with uniform dequantization; all 60,000 training images; GenMM K = 3
for 3 epochs at batch 64, t_EM 1 with one E-step per round (cached); Adam 1e-3 with 200
warm-up steps and a cosine decay to 1e-4; the k-means partition start (of 10,000 images'
blurred directions, best of 4 starts) with one warm-start round; the generators' top-level
latent a learned diagonal Gaussian.
"""
from experiments.config import ImageConfig


def get_config() -> ImageConfig:
    return ImageConfig()
