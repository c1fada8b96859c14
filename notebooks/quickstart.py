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
# # emflow quickstart: a mixture of Glows on MNIST, learned with EM
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/emflow/emflow/blob/main/notebooks/quickstart.ipynb)
#
# A GenMM has K Glow generators that share one N(0, I) latent: p(x) = Σ_k π_k p_k(x).
# This notebook trains one on MNIST with the paper's EM algorithm, then plots the NLL
# curve, samples, and samples of each generator.
#
# **Runtime.** On Colab, choose *Runtime → Change runtime type → TPU* (one TPU v5e chip)
# or a GPU. The sizes follow the backend: paper scale on a TPU or GPU, small on a CPU.
# `EMFLOW_NOTEBOOK_MODE=test` shrinks everything to seconds; CI runs the notebook that way.
#
# **Data.** If `$EMFLOW_DATA_DIR` is set, the data are read from there. Otherwise the
# four MNIST IDX files are downloaded into `emflow_data/` and checked by md5. TensorFlow
# Datasets is not needed, which matters because Colab's TPU runtime has no TensorFlow.

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # emflow from the repository; jax[tpu] only on Colab (jax is preinstalled there)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "emflow @ git+https://github.com/emflow/emflow"])
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-U", "jax[tpu]"])

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np

import emflow
from emflow import notebook, train
from emflow.data import load_dataset

print(notebook.describe_devices())
print(jax.devices())

# %% [markdown]
# ## Sizes and data

# %%
size = notebook.pick(
    full=dict(num_train=60_000, levels=2, steps=16, hidden=256, epochs=20, components=3, batch_size=128),
    small=dict(num_train=10_000, levels=2, steps=4, hidden=64, epochs=2, components=3, batch_size=64),
    test=dict(num_train=256, levels=1, steps=1, hidden=8, epochs=1, components=2, batch_size=64),
)
print(size)
mnist = load_dataset("mnist", notebook.data_dir(("mnist",)))
x_train, x_test = mnist.x_train[: size["num_train"]], mnist.x_test[: max(256, size["num_train"] // 6)]
print(x_train.shape, x_train.dtype, x_test.shape)

# %% [markdown]
# ## The model
#
# A logit map in front of a Glow, K generators, and uniform dequantization of the 8-bit
# pixels. The likelihoods below are bits per dimension of the 8-bit data.

# %%
shape = (28, 28, 1)
flow = emflow.Prefixed(emflow.Logit(shape), emflow.Glow(shape, size["levels"], size["steps"], size["hidden"]))
model = emflow.GenMM(flow, num_components=size["components"])
dequantizer = emflow.Dequantizer(shape)
config = train.TrainConfig(epochs=size["epochs"], batch_size=size["batch_size"], em_every=1, e_step="cached",
                           schedule="cosine", warmup_steps=min(200, size["num_train"] // size["batch_size"]),
                           num_samples=16)

# %% [markdown]
# ## Train with EM
#
# In each EM round, the E-step takes responsibilities under Φ_old, Adam steps on
# −Q(Φ, Φ_old) form the M-step, and π is updated. The workdir keeps checkpoints, so
# `resume=True` continues a stopped run, and `emflow.load(workdir)` gives the model back.

# %%
import shutil

workdir = "runs/quickstart"
shutil.rmtree(workdir, ignore_errors=True)  # this notebook's own run folder: start afresh
result = train.fit(model, config, dequantizer, x_train, x_test, workdir=workdir)

# %%
epochs = [r["epoch"] for r in result.history]
plt.plot(epochs, [r["train_bits_per_dim"] for r in result.history], "o-", label="train")
plt.plot(epochs, [r["test_bits_per_dim"] for r in result.history], "s-", label="test")
plt.xlabel("epoch"), plt.ylabel("bits/dim"), plt.legend(), plt.title("NLL")
plt.show()
print("pi:", np.round(result.history[-1]["pi"], 3), " test bits/dim:", round(result.history[-1]["test_bits_per_dim"], 4))

# %% [markdown]
# ## Samples, and samples of each generator

# %%
model, params = emflow.load(workdir)
samples = dequantizer.quantize(model.sample(params, jax.random.PRNGKey(0), 32, temperature=0.7))
per_generator = dequantizer.quantize(model.component_samples(params, jax.random.PRNGKey(1), 8, 0.7))

fig, axes = plt.subplots(1 + model.num_components, 8, figsize=(8, 1.1 * (1 + model.num_components)))
for c in range(8):
    axes[0, c].imshow(np.asarray(samples[c, ..., 0]), cmap="gray")
    for k in range(model.num_components):
        axes[1 + k, c].imshow(np.asarray(per_generator[k, c, ..., 0]), cmap="gray")
for ax in axes.ravel():
    ax.set_xticks([]), ax.set_yticks([])
axes[0, 0].set_ylabel("mixture", fontsize=7)
for k in range(model.num_components):
    axes[1 + k, 0].set_ylabel(f"gen. {k}, π={np.exp(params['log_pi'][k]):.2f}", fontsize=7)
plt.show()
