# ---
# jupyter:
#   accelerator: TPU
#   colab:
#     gpuType: V5E1
#     provenance: []
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Embedding a trained mixture in your own JAX code
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/emflow/emflow/blob/main/notebooks/embedding.ipynb)
#
# `emflow.load` turns a training run's folder back into `(model, params)`. From there,
# `model.log_prob` is a pure function to jit, differentiate and vmap. The longer
# walk-through is `docs/guides/embedding.md`.
#
# The notebook loads `runs/quickstart` if the quickstart notebook left one. Otherwise it
# trains a small run first. The sizes follow the backend, as in the quickstart.

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # emflow from the repository; jax[tpu] only on Colab (jax is preinstalled there)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "emflow @ git+https://github.com/emflow/emflow"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-U", "jax[tpu]"])

# %%
import pathlib

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import emflow
from emflow import notebook, train
from emflow.data import load_dataset

print(notebook.describe_devices())
print(jax.devices())
mnist = load_dataset("mnist", notebook.data_dir(("mnist",)))

# %%
workdir = pathlib.Path("runs/quickstart")
if not (workdir / "checkpoints").is_dir():
    workdir = pathlib.Path("runs/embedding")
    n = notebook.pick(full=60_000, small=5_000, test=256)
    flow = emflow.Prefixed(emflow.Logit((28, 28, 1)),
                           emflow.Glow((28, 28, 1), *notebook.pick(full=(2, 8, 128), small=(2, 2, 32), test=(1, 1, 8))))
    config = train.TrainConfig(epochs=notebook.pick(full=5, small=1, test=1), batch_size=64, e_step="cached",
                               num_samples=0, warmup_steps=min(200, n // 64))
    train.fit(emflow.GenMM(flow, 2), config, emflow.Dequantizer((28, 28, 1)), mnist.x_train[:n], None,
              workdir=workdir, resume=(workdir / "checkpoints").is_dir())

model, params = emflow.load(workdir)
deq = emflow.Dequantizer(model.event_shape)
print(f"loaded {workdir}: K = {model.num_components}, pi = {np.round(np.exp(params['log_pi']), 3)}")

# %% [markdown]
# ## `log_prob` in your own `jit`, equal to the eager value

# %%
x = (jnp.asarray(mnist.x_test[:16], jnp.float32) + 0.5) / 256.0   # bin centres in (0, 1)
bits = jax.jit(lambda p, v: deq.bits_per_dim(model.log_prob(p, v)))
print("bits/dim:", np.round(np.asarray(bits(params, x)), 3))
print("jit == eager:", np.allclose(bits(params, x), deq.bits_per_dim(model.log_prob(params, x)), rtol=1e-6))

# %% [markdown]
# ## `grad` with respect to the image, and `vmap` over the batch
#
# ∇ₓ log p(x) for each image, with `vmap(grad)`. Plotted below: where the model wants
# each digit to change.

# %%
log_p_one = lambda v: model.log_prob(params, v[None])[0]
scores = jax.jit(jax.vmap(jax.grad(log_p_one)))(x)
eps, direction = 1e-3, jnp.ones_like(x[0]) / 28.0
numeric = (log_p_one(x[0] + eps * direction) - log_p_one(x[0] - eps * direction)) / (2 * eps)
print(f"directional derivative: autodiff {float(jnp.vdot(scores[0], direction)):.3f}, "
      f"finite differences {float(numeric):.3f}")

fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for c in range(8):
    axes[0, c].imshow(np.asarray(x[c, ..., 0]), cmap="gray")
    s = np.asarray(scores[c, ..., 0])
    axes[1, c].imshow(s, cmap="RdBu", vmin=-np.abs(s).max(), vmax=np.abs(s).max())
for ax in axes.ravel():
    ax.set_xticks([]), ax.set_yticks([])
plt.show()

# %% [markdown]
# ## Per-generator log-densities and responsibilities

# %%
joint = model.component_log_prob(params, x)   # (16, K): log pi_k + log p_k(x)
gamma = model.responsibilities(params, x)      # (16, K), rows sum to 1
print(np.round(np.asarray(gamma[:8]), 3))
