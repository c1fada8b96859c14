"""MNIST LatMM: the base with 8 epochs; the latent Gaussians are the top prior (N(0, I) under them)."""
from experiments.configs import base


def get_config():
    return base.get_config().replace(epochs=8, top_prior="standard")
