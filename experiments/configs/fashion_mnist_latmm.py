"""Fashion-MNIST LatMM: MNIST LatMM's setting with 6 epochs instead of 8, for time."""
from experiments.configs import mnist_latmm


def get_config():
    return mnist_latmm.get_config().replace(epochs=6)
