"""The reference code's GenMM (paper-notes.md): Glow 3 levels x 4 steps x 512 hidden channels on
32x32 inputs (the paper's resize and Gaussian dequantization), batch 64, 400 epochs, t_EM 5,
responsibilities on every batch, 10,000 training images, the paper's shared init, Noam schedule
with 1,000 warm-up steps, N(0, I) top prior (Table I, Fig. 3)."""
from experiments.configs import base


def get_config():
    return base.get_config().replace(
        levels=3, steps=4, hidden=512, scheme="paper", epochs=400, em_every=5, num_train=10000, linear="plain",
        warmup_steps=1000, schedule="noam", logit_alpha=0.0, warm_start_rounds=0, init="shared",
        e_step="per_batch", top_prior="standard")
