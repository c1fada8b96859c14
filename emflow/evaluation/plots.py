"""Figures a person would rather look at than numbers: NLL curves and sample grids."""
from __future__ import annotations

import math
import pathlib
from typing import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(images: np.ndarray, path: str | pathlib.Path, columns: int | None = None) -> None:
    """Save uint8 images ``(n, H, W, C)`` (C = 1 or 3) as one tiled PNG."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise ValueError(f"image_grid: images must have shape (n, H, W, C) with n >= 1 and C = 1 or 3, got "
                         f"{images.shape}")
    n, h, w, c = images.shape
    columns = columns or int(math.ceil(math.sqrt(n)))
    rows = int(math.ceil(n / columns))
    grid = np.zeros((rows * (h + 1) + 1, columns * (w + 1) + 1, c), np.uint8)
    for i in range(n):
        r, q = divmod(i, columns)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + q * (w + 1): 1 + q * (w + 1) + w] = images[i]
    plt = _pyplot()
    plt.imsave(str(path), grid[..., 0] if c == 1 else grid, cmap="gray" if c == 1 else None, vmin=0, vmax=255)


def nll_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | pathlib.Path,
    ylabel: str = "NLL (nats/dim)",
    title: str | None = None,
) -> None:
    """Plot ``{label: (epochs, values)}`` on one axis (the paper's Fig. 3 layout) and save a PNG."""
    if not curves or any(len(c) != 2 or len(c[0]) != len(c[1]) for c in curves.values()):
        raise ValueError(f"nll_curves: curves must map at least one label to (epochs, values) of one length, "
                         f"got {dict((k, tuple(len(a) for a in v)) for k, v in curves.items())}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for label, (epochs, values) in curves.items():
        ax.plot(epochs, values, marker="o", markersize=3, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)


def component_classes(class_share: Sequence[Sequence[float]], wins_per_component: Sequence[int],
                      path: str | pathlib.Path, title: str | None = None) -> None:
    """Stacked bars: for every component, the class composition of the test examples it wins."""
    share = np.asarray(class_share, np.float64)
    if share.ndim != 2 or len(wins_per_component) != share.shape[0]:
        raise ValueError(f"component_classes: expected class_share (K, C) and wins_per_component (K,), got shapes "
                         f"{share.shape} and ({len(wins_per_component)},)")
    plt = _pyplot()
    k, c = share.shape
    fig, ax = plt.subplots(figsize=(max(4, 0.6 * k + 2), 3.6), dpi=120)
    bottom = np.zeros(k)
    colours = plt.get_cmap("tab10" if c <= 10 else "tab20")
    for j in range(c):
        ax.bar(np.arange(k), share[:, j], bottom=bottom, color=colours(j % colours.N), label=str(j))
        bottom += share[:, j]
    ax.set_xticks(np.arange(k), [f"{i}\n({n})" for i, n in enumerate(wins_per_component)])
    ax.set_xlabel("component (test examples won)")
    ax.set_ylabel("class share")
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    ax.legend(title="class", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(str(path))
    plt.close(fig)
