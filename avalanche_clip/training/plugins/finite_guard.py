"""Stop a run whose training diverged, instead of recording a model with NaN weights.

With a learning rate far too large (``lr=1e6``) the loss and then the weights become inf / NaN;
evaluation still runs (NaN logits predict some class), so without a check such a run would be
recorded as a normal result. :class:`FiniteGuardPlugin` checks the loss of every training
mini-batch before its backward pass and every trainable weight after each epoch (a NaN weight
makes the next loss NaN, so the per-batch check catches it one step later; the per-epoch check
catches the last step of an epoch), and raises :class:`DivergedTrainingError` saying where.
Records are written after an experience has been trained and evaluated, so no record of the
diverged experience exists; those of earlier experiences stay.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin

from avalanche_clip.common.errors import AvalancheClipError


class DivergedTrainingError(AvalancheClipError):
    """The loss or a trainable weight is not finite: the run stopped, nothing was recorded."""


class FiniteGuardPlugin(SupervisedPlugin, supports_distributed=True):  # the same on every process
    """Raises :class:`DivergedTrainingError` on a non-finite loss or trainable weight."""

    def __init__(self) -> None:
        super().__init__()
        self._trainable: list[tuple[str, torch.Tensor]] | None = None

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        loss = strategy.loss
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss.detach()).all()):
            raise DivergedTrainingError(
                f"training diverged at {_where(strategy)}: the loss is {loss.detach().float().sum().item()}"
                f"{_advice(strategy)}"
            )

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        # The trainable weights, listed once an experience: walking the model's ~200 parameters
        # after every epoch cost more than checking the few that train.
        self._trainable = _trainable_weights(strategy.model)

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self._trainable = None  # the next experience may train other weights

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        # None: an epoch outside an experience's training (a plugin's own loop)
        trainable = self._trainable if self._trainable is not None else _trainable_weights(strategy.model)
        # A float64 sum of float32 (or narrower) weights cannot overflow, so it is finite exactly
        # when every weight is: one reduction a tensor, without isfinite's [numel] bool temporary.
        bad = [name for name, p in trainable if not _all_finite(p.detach())]
        if bad:
            shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            raise DivergedTrainingError(
                f"training diverged at {_where(strategy)}: trainable weights {shown} are not finite"
                f"{_advice(strategy)}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {}  # stateless; present so checkpoints know it and say nothing

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _trainable_weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``(name, parameter)`` of every parameter of ``model`` that trains."""
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def _all_finite(tensor: torch.Tensor) -> bool:
    """Whether every element of ``tensor`` is finite: for float32 and narrower dtypes through
    their float64 sum (at most numel · 3.4e38, far below float64's 1.8e308, so the sum is
    non-finite exactly when an element is NaN or ±inf); else elementwise."""
    if tensor.dtype in (torch.float32, torch.float16, torch.bfloat16) and tensor.numel() < 2 ** 40:
        return bool(torch.isfinite(tensor.sum(dtype=torch.float64)))
    return bool(torch.isfinite(tensor).all())


def _where(strategy: Any) -> str:
    experience = getattr(getattr(strategy, "experience", None), "current_experience", "?")
    clock = strategy.clock
    return (f"experience {experience}, epoch {clock.train_exp_epochs}, "
            f"iteration {clock.train_epoch_iterations}")


def _advice(strategy: Any) -> str:
    rates = sorted({group["lr"] for group in strategy.optimizer.param_groups})
    shown = ", ".join(f"{r:g}" for r in rates)
    return (f" with learning rate {shown}; lower lr (or check the data) and run again. No record "
            "was written for this experience")


__all__ = ["DivergedTrainingError", "FiniteGuardPlugin"]
