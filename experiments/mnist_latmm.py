"""LATMM on mnist with EM: `python -m experiments.mnist_latmm --help`."""
from experiments.image_experiment import run

if __name__ == "__main__":
    run("mnist", "latmm")
