"""LATMM on fashion_mnist with EM: `python -m experiments.fashion_mnist_latmm --help`."""
from experiments import exit_on_refused_xla_flags
from experiments.image_experiment import run

if __name__ == "__main__":
    exit_on_refused_xla_flags()
    run("fashion_mnist", "latmm")
