"""A hook that plots every component's weight pi_k over the epochs (``pi.png``): where a component
dies or takes over shows at a glance. A worked example of a hook added without touching ``fit``.

    fit(..., workdir=w, hooks=[PiPlot(w)])
"""
from __future__ import annotations

import dataclasses
import pathlib

from emflow import checks
from emflow.parallel import distributed
from emflow.evaluation import plots
from emflow.train.hooks import BaseHook, EpochEnd, written


@dataclasses.dataclass
class PiPlot(BaseHook):
    """``<workdir>/pi.png``: pi_k against the epoch, one line per component, redrawn after every epoch."""

    workdir: pathlib.Path

    def __post_init__(self):
        checks.path("PiPlot", self.workdir, "workdir")

    def after_epoch(self, end: EpochEnd) -> bool:
        if distributed.is_primary():
            epochs = [r["epoch"] for r in end.history]
            curves = {f"component {k}": (epochs, [r["pi"][k] for r in end.history])
                      for k in range(len(end.record["pi"]))}
            with written(pathlib.Path(self.workdir), end.epoch):
                plots.nll_curves(curves, pathlib.Path(self.workdir) / "pi.png", ylabel="pi", title="mixture weights")
        return False
