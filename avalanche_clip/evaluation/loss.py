"""Loss metrics that leave out samples whose class the classifier cannot predict yet.

Under seen-class masking (``eval_classes="seen"``) a test sample of a class not trained yet has
no defined cross-entropy: its logit is −∞. Our strategies' evaluation loss is the cross-entropy
over the *visible* samples of a mini-batch (those whose target logit is finite), and NaN for a
mini-batch with none. Avalanche's ``loss_metrics`` weights ``strategy.loss`` by the whole
mini-batch (``len(mb_y)``), so it shows NaN for an experience with no seen class (and for any
stream that contains one) and over-weights partly visible mini-batches.

:func:`loss_metrics` here is a drop-in replacement (same arguments, same metric names
``Loss_MB``, ``Loss_Epoch``, ``RunningLoss_Epoch``, ``Loss_Exp``, ``Loss_Stream``, so loggers,
LR schedulers and early stopping read them as usual) that weights each mini-batch's loss by its
number of visible samples::

    Loss = Σ_b loss_b · v_b / Σ_b v_b,     v_b = #{i in batch b : logits[i, y_i] ≠ −∞}

so an experience with no seen class is left out of the stream's (and epoch's) loss instead of
pulling it down, and its own ``Loss_Exp`` is NaN — undefined, not 0 (Avalanche's CSV and text
loggers would print 0 for a value that is not there). In training every sample is visible, so
the training metrics equal Avalanche's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from avalanche.evaluation import GenericPluginMetric, Metric
from avalanche.evaluation.metrics.mean import Mean

from avalanche_clip.losses.masked import visible_rows


def visible_samples(output: Any, targets: torch.Tensor) -> int:
    """Rows of ``output`` (``[B, K]`` logits) whose target logit is not −∞, i.e. whose class is
    visible (all rows when the output is not a logit matrix). A NaN logit counts: a diverged
    model's NaN loss must show."""
    if not torch.is_tensor(output) or output.dim() != 2 or len(output) != len(targets):
        return len(targets)
    return int(visible_rows(output, targets.long().to(output.device)).sum())


class VisibleLoss(Metric[float]):
    """Running mean of a loss weighted by the visible samples (NaN when there were none)."""

    def __init__(self) -> None:
        self._mean = Mean()

    @torch.no_grad()
    def update(self, loss: torch.Tensor | float, visible: int) -> None:
        if visible > 0:
            self._mean.update(float(torch.as_tensor(loss).float().mean()), weight=visible)

    def result(self) -> float:
        return math.nan if self._mean.weight == 0 else self._mean.result()

    def reset(self) -> None:
        self._mean.reset()


class VisibleLossPluginMetric(GenericPluginMetric[float, VisibleLoss]):
    """A loss plugin metric over visible samples (see the module docstring)."""

    def __init__(self, name: str, reset_at: str, emit_at: str, mode: str) -> None:
        self._name = name
        super().__init__(VisibleLoss(), reset_at=reset_at, emit_at=emit_at, mode=mode)

    def reset(self) -> None:
        self._metric.reset()

    def result(self) -> float:
        return self._metric.result()

    def update(self, strategy: Any) -> None:
        self._metric.update(strategy.loss, visible_samples(strategy.mb_output, strategy.mb_y))

    def __str__(self) -> str:
        return self._name


def loss_metrics(*, minibatch: bool = False, epoch: bool = False, epoch_running: bool = False,
                 experience: bool = False, stream: bool = False) -> list[VisibleLossPluginMetric]:
    """Avalanche's ``loss_metrics`` over visible samples (module docstring)."""
    chosen = [
        (minibatch, "Loss_MB", "iteration", "iteration", "train"),
        (epoch, "Loss_Epoch", "epoch", "epoch", "train"),
        (epoch_running, "RunningLoss_Epoch", "epoch", "iteration", "train"),
        (experience, "Loss_Exp", "experience", "experience", "eval"),
        (stream, "Loss_Stream", "stream", "stream", "eval"),
    ]
    return [VisibleLossPluginMetric(name, reset_at, emit_at, mode)
            for wanted, name, reset_at, emit_at, mode in chosen if wanted]


__all__ = ["VisibleLoss", "VisibleLossPluginMetric", "loss_metrics", "visible_samples"]
