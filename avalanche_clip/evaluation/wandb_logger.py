"""Avalanche's ``WandBLogger`` working with the wandb releases installed today.

Avalanche 0.6's logger calls two wandb functions that newer wandb releases (0.2x and later)
no longer have: ``wandb.util.generate_id`` when no run id is given (give one: ``params={"id":
...}``), and ``wandb.viz.CustomChart`` on every metric it logs, which fails at the first value.
:class:`WandBScalarLogger` logs numbers (every metric the library's evaluator produces:
accuracy, loss, forgetting) straight to ``wandb.log`` at Avalanche's step, and hands any other
value (images, histograms) to Avalanche's code where the installed wandb still has ``viz``.
"""

from __future__ import annotations

from typing import Any

from avalanche.evaluation.metric_results import AlternativeValues
from avalanche.logging import WandBLogger


class WandBScalarLogger(WandBLogger):
    """``WandBLogger`` (same arguments) that logs scalar metrics without ``wandb.viz``."""

    def log_single_metric(self, name: str, value: Any, x_plot: int) -> None:
        if isinstance(value, AlternativeValues):
            value = value.best_supported_value(float, int) or value
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            self.step = x_plot
            self.wandb.log({name: value}, step=self.step)
        elif hasattr(self.wandb, "viz"):
            super().log_single_metric(name, value, x_plot)


__all__ = ["WandBScalarLogger"]
