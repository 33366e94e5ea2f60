"""Avalanche's EWC, keeping only the parameters that train.

Avalanche's ``EWCPlugin`` stores an importance and an anchor for every parameter of the model and
sums the penalty over all of them at every step. A frozen parameter has zero importance (it gets
no gradient) and never moves from its anchor, so its terms are exactly zero, but with a frozen
CLIP trunk and text transformer (27.7 M parameters for the ConSE model, 1.8 M of them training)
summing them made an EWC step ~8× slower than a cross-entropy step on the CIFAR-10 proxy.
:class:`TrainableEWCPlugin` drops those entries once an experience's importances are computed;
the penalty ``λ Σ_t Σ_k F_{t,k} (θ_k − θ*_{t,k})²`` is the same number.

Avalanche's ``before_backward`` also walks ``model.named_parameters()`` once per past experience
at every step (~0.6 ms a walk on the default's 202 parameters: ~0.27 s of a 5-experience run's
225 steps) to find the few that have an anchor. The plugin lists those terms once an
experience, in the same order, and again whenever a parameter or submodule is registered on any
module (:mod:`avalanche_clip.common.registrations`: a replaced or grown parameter), and sums them
with Avalanche's operations: the same penalty, bit for bit (``tests/plugins/test_ewc.py``). A
parameter deleted in the middle of an experience is not seen (nothing here deletes one).
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.training.plugins import EWCPlugin

from avalanche_clip.common.registrations import registration_generation


class TrainableEWCPlugin(EWCPlugin):
    """``EWCPlugin`` (same arguments) whose stored importances and anchors cover only the
    parameters with ``requires_grad`` (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (experience counter, model, registration count) the listed terms were made for, and the
        # terms: (live parameter, anchor, importance) in Avalanche's order (past experience, name)
        self._terms_for: tuple[int, int, int] | None = None
        self._terms: list[tuple[torch.Tensor, Any, Any]] = []

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().before_training_exp(strategy, **kwargs)
        self._terms_for = None  # anchors and importances change between experiences (and on resume)

    def before_backward(self, strategy: Any, **kwargs: Any) -> None:
        """Avalanche's penalty (its operations, in its order) over the terms listed once."""
        exp_counter = strategy.clock.train_exp_counter
        if exp_counter == 0:
            return
        # a parameter or submodule replaced since the listing (a head that grows) lists them again
        listed_for = (exp_counter, id(strategy.model), registration_generation())
        if self._terms_for != listed_for:
            self._terms = self._list_terms(strategy.model, exp_counter)
            self._terms_for = listed_for
        penalty = torch.tensor(0).float().to(strategy.device)
        for cur_param, saved_param, imp in self._terms:
            new_shape = cur_param.shape
            penalty += (imp.expand(new_shape) * (cur_param - saved_param.expand(new_shape)).pow(2)).sum()
        strategy.loss += self.ewc_lambda * penalty

    def _list_terms(self, model: Any, exp_counter: int) -> list[tuple[torch.Tensor, Any, Any]]:
        if self.mode == "separate":
            experiences = range(exp_counter)
        elif self.mode == "online":
            experiences = range(exp_counter - 1, exp_counter)
        else:
            raise ValueError("Wrong EWC mode.")
        named = list(model.named_parameters())
        return [(param, self.saved_params[t][name], self.importances[t][name])
                for t in experiences for name, param in named if name in self.saved_params[t]]

    def compute_importances(self, model: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # before they are stored or merged (mode="online" merges them with the previous ones)
        importances = super().compute_importances(model, *args, **kwargs)
        trained = _trained(model)
        return {k: v for k, v in importances.items() if k in trained}

    def after_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        super().after_training_exp(strategy, **kwargs)
        self._terms_for = None
        trained = _trained(strategy.model)
        for experience, params in self.saved_params.items():
            self.saved_params[experience] = {k: v for k, v in params.items() if k in trained}


def _trained(model: Any) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}
