"""Presets for the image experiments (``--preset``); any flag given explicitly overrides them.

- ``paper``: the reference code's sizes (``paper-notes.md``): Glow 3 levels x 4
  steps x 512 hidden channels on 32x32 inputs (the paper's resize + Gaussian
  dequantization protocol), GenMM batch 64, LatMM batch 256, 400 epochs, t_EM 5,
  10,000 training images (Table I / Fig. 3).
- ``cpu``: 6.6 minutes on a 2-core CPU for GenMM K = 3 (25 epochs) with a real, falling NLL
  (4.41 -> 2.79 nats/dim on MNIST):
  a small Glow on the original 28x28 images with uniform dequantization, and a
  100-step learning-rate warm-up (1000 would outlast such a short run).
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "paper": dict(
        levels=3, steps=4, hidden=512, scheme="paper", epochs=400, em_every=5, num_train=10000,
        batch_size={"genmm": 64, "latmm": 256}, latmm_components=10, linear="plain", warmup_steps=1000,
        learning_rate=1e-3, schedule="noam", logit_alpha=0.0, warm_start_rounds=0, init="shared",
    ),
    "cpu": dict(
        levels=2, steps=2, hidden=32, scheme="uniform", epochs=25, em_every=2, num_train=10000,
        batch_size={"genmm": 64, "latmm": 64}, latmm_components=3, linear="lu", warmup_steps=100,
        learning_rate=1e-3, schedule="noam", logit_alpha=1e-6, warm_start_rounds=1, init="default",
    ),
}

# The paper's Table I: lowest NLL (nats per pixel of the 32x32 input) of GenMM, 10,000 training images.
PAPER_TABLE1 = {
    "mnist": {1: 1.8929, 3: 1.8797, 5: 1.8719, 7: 1.8579},
    "fashion_mnist": {1: 2.3571, 3: 2.3429, 5: 2.3353, 7: 2.3323},
}
