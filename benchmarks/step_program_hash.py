"""A hash of the compiled EM training step: two commits whose hashes agree run the same program.

    python -m benchmarks.step_program_hash       # in each worktree; compare the two lines

The step is ``train.train_step`` of a GenMM (K = 4, unrolled) over a Glow 2 x 2 x 32 on 28x28 images,
batch 64. Printed: a sha256 prefix of its StableHLO, with source locations stripped (they name files and
lines, which a move of code changes). Equal hashes mean that XLA is handed the same program, which it
compiles to the same executable for the same jaxlib and flags: equal step times, whatever a timing
run's noise says. (XLA's optimized HLO text is not compared: its instruction numbering depends on what
else the process compiled before.)
"""
import hashlib
import re

import jax
import jax.numpy as jnp
import numpy as np

import emflow
from emflow import train


def main() -> str:
    flow = emflow.Glow((28, 28, 1), num_levels=2, num_steps=2, hidden_channels=32)
    model = emflow.GenMM(flow, 4, component_axis="unrolled")
    x = jnp.asarray(np.random.default_rng(0).uniform(size=(64, 28, 28, 1)), jnp.float32)
    config = train.TrainConfig()
    opt = train.make_optimizer(config)
    params = model.init(jax.random.PRNGKey(0), x)
    state = train.init_state(model, opt, params)
    step = jax.jit(lambda s, xb: train.train_step(model, opt, s, xb))
    lowered = step.lower(state, x)
    text = lowered.as_text()
    digest = lambda t: hashlib.sha256(re.sub(r"(metadata=\{[^}]*\}|loc\([^)]*\)|#loc[0-9]* = .*)", "", t).encode()).hexdigest()[:16]
    print(f"stablehlo {digest(text)}")
    return digest(text)


if __name__ == "__main__":
    main()
