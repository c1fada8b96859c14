"""The paper's section III-B hybrid on MNIST (K generators sharing M latent Gaussians) with EM:
`python -m experiments.mnist_hybrid --help`."""
from experiments import exit_on_refused_xla_flags
from experiments.image_experiment import run

if __name__ == "__main__":
    exit_on_refused_xla_flags()
    run("mnist", "hybrid")
