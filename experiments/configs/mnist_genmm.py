"""MNIST GenMM, the main job: the base with the generators' first level shared, a closing pi update,
and the split priors' log-std floored at -7 (one test image drove a seed-2 model's to -10.4)."""
from experiments.configs import base


def get_config():
    return base.get_config().replace(shared_first_level=True, final_prior_update=True, split_log_std_floor=-7.0)
