"""Avalanche's EWC, keeping only the parameters that train.

Avalanche's ``EWCPlugin`` stores an importance and an anchor for every parameter of the model and
sums the penalty over all of them at every step. A frozen parameter has zero importance (it gets
no gradient) and never moves from its anchor, so its terms are exactly zero, but with a frozen
CLIP trunk and text transformer (27.7 M parameters for the ConSE model, 1.8 M of them training)
summing them made an EWC step ~8× slower than a cross-entropy step on the CIFAR-10 proxy.
:class:`TrainableEWCPlugin` drops those entries once an experience's importances are computed;
the penalty ``λ Σ_t Σ_k F_{t,k} (θ_k − θ*_{t,k})²`` is the same number.
"""

from __future__ import annotations

from typing import Any

from avalanche.training.plugins import EWCPlugin


class TrainableEWCPlugin(EWCPlugin):
    """``EWCPlugin`` (same arguments) whose stored importances and anchors cover only the
    parameters with ``requires_grad`` (see the module docstring)."""

    def compute_importances(self, model: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # before they are stored or merged (mode="online" merges them with the previous ones)
        importances = super().compute_importances(model, *args, **kwargs)
        trained = _trained(model)
        return {k: v for k, v in importances.items() if k in trained}

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().after_training_exp(strategy, **kwargs)
        trained = _trained(strategy.model)
        for experience, params in self.saved_params.items():
            self.saved_params[experience] = {k: v for k, v in params.items() if k in trained}


def _trained(model: Any) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}
