"""The reference code's LatMM: the paper's GenMM sizes with 10 latent Gaussians and batch 256."""
from experiments.configs import paper_genmm


def get_config():
    return paper_genmm.get_config().replace(components=10, batch_size=256)
