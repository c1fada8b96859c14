"""Presets for the image experiments (``--preset``); any flag given explicitly overrides them.

- ``paper``: the reference code's sizes (``paper-notes.md``): Glow 3 levels x 4
  steps x 512 hidden channels on 32x32 inputs (the paper's resize + Gaussian
  dequantization protocol), GenMM batch 64, LatMM batch 256, 400 epochs, t_EM 5,
  10,000 training images (Table I / Fig. 3).
- ``cpu``: about 15 minutes on this project's 2-core CPU (GenMM K = 3 on MNIST: 14.6 min; LatMM on Fashion-MNIST: 15.9 min with 8 epochs; 17.2 min with 7 on a slower day; 13.1 min with 6, 2026-12-04): a Glow
  2 levels x 4 steps x 64 channels behind a logit map (alpha 1e-6) on the original
  28x28 images with uniform dequantization, all 60,000 training images, 3 epochs
  (LatMM: 8; 6 on Fashion-MNIST, ``JOB_PRESETS``), t_EM 1 with a cached E-step, Adam 1e-3 with 200 warm-up steps and a cosine
  decay to 1e-4, the k-means partition init with one warm-start round; GenMM's generators
  with a learned diagonal Gaussian on their top-level latent (``--top_prior learned``,
  2026-12-05; LatMM's latent Gaussians are that already). See the README for what was tried.

``JOB_PRESETS`` adds to a preset for one job ``(dataset, model)``: on MNIST the ``cpu``
preset's GenMM shares its generators' first level (``--shared_first_level``) and ends with
one more E-step that sets pi to the final generators' mean responsibilities
(``--final_prior_update``) and floors its split priors' log-std at -7 (``--split_log_std_floor``: one
test image drove a seed-2 model's to -10.4 and its test NLL from 1.42 to 1.88 bits/dim; README); Fashion-MNIST GenMM starts from its init batch's partition
(``--partition_size 0``: from k-means of 10,000 images one of its three generators fell to
pi = 0.085 on seed 0, against 0.177 from the 512 images; README); Fashion-MNIST LatMM trains
6 epochs instead of 8, for time. The
first two were measured on MNIST only (on Fashion-MNIST a shared first
level cost 0.22 bits/dim), so the other jobs do without. A flag given explicitly overrides
them (``--no-shared_first_level``); so does a run that cannot have a shared first level
(``--trunk_steps``, ``--levels 1`` or a mesh): the preset's value is dropped there, and the
run says so.
"""
from __future__ import annotations

PRESETS: dict[str, dict] = {
    "paper": dict(
        levels=3, steps=4, hidden=512, scheme="paper", epochs=400, em_every=5, num_train=10000,
        batch_size={"genmm": 64, "latmm": 256}, latmm_components=10, linear="plain", warmup_steps=1000,
        learning_rate=1e-3, schedule="noam", logit_alpha=0.0, shared_rounds=0, warm_start_rounds=0, init="shared", e_step="per_batch",
        top_prior="standard",
    ),
    "cpu": dict(
        levels=2, steps=4, hidden=64, scheme="uniform", epochs={"genmm": 3, "latmm": 8}, em_every=1, num_train=0,
        batch_size={"genmm": 64, "latmm": 64}, latmm_components=3, linear="lu", warmup_steps=200,
        learning_rate=1e-3, schedule="cosine", logit_alpha=1e-6, shared_rounds=0, warm_start_rounds=1, init="default",
        e_step="cached", top_prior={"genmm": "learned", "latmm": "standard"},
    ),
}

JOB_PRESETS: dict[str, dict[tuple[str, str], dict]] = {
    "cpu": {("mnist", "genmm"): dict(shared_first_level=True, final_prior_update=True, split_log_std_floor=-7.0),
            ("mnist", "hybrid"): dict(shared_first_level=True, final_prior_update=True, split_log_std_floor=-7.0),
            ("fashion_mnist", "genmm"): dict(partition_size=0),
            ("fashion_mnist", "latmm"): dict(epochs=6)},
}

# The paper's Table I: lowest NLL (nats per pixel of the 32x32 input) of GenMM, 10,000 training images.
PAPER_TABLE1 = {
    "mnist": {1: 1.8929, 3: 1.8797, 5: 1.8719, 7: 1.8579},
    "fashion_mnist": {1: 2.3571, 3: 2.3429, 5: 2.3353, 7: 2.3323},
}
