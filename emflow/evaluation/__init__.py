"""Evaluating trained mixtures: sample-quality metrics (IS, FID, MMD, 1-NN) and their feature net,
simple density baselines, per-component diagnostics, latent interpolation and plots."""
