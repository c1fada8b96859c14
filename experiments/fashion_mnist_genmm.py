"""GENMM on fashion_mnist with EM: `python -m experiments.fashion_mnist_genmm --help`."""
from experiments.image_experiment import run

if __name__ == "__main__":
    run("fashion_mnist", "genmm")
