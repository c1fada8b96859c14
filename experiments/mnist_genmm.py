"""GENMM on mnist with EM: `python -m experiments.mnist_genmm --help`."""
from experiments.image_experiment import run

if __name__ == "__main__":
    run("mnist", "genmm")
