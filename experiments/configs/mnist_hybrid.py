"""MNIST hybrid (K generators sharing M latent Gaussians): MNIST GenMM's setting; the shared latent
Gaussians are the generators' learned top prior."""
from experiments.configs import mnist_genmm


def get_config():
    return mnist_genmm.get_config().replace(top_prior="standard")
