"""Joint training: the upper bound, trained on every experience's data at once.

Cross-entropy on the CLIP classifier over all classes, with batches drawn uniformly from the
union of the whole stream. Its budget is the continual methods' total: the sum over experiences
of their steps (``epoch_schedule`` of each experience), times ``budget_scale`` — 1 for the
equal-budget bound (``joint``), more for a bound trained towards convergence
(``joint-converged``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import EagerCLStream
from avalanche.benchmarks.utils.utils import concat_datasets
from torch import nn

from avalanche_clip.common.values import check_options
from avalanche_clip.strategies.cross_entropy import CLIPCrossEntropyStrategy
from avalanche_clip.strategies.option_rules import JOINT_RULES
from avalanche_clip.training.plugins.seen_classes import experience_classes


class CLIPJointStrategy(CLIPCrossEntropyStrategy):
    """Joint training over a whole stream (module docstring).

    Args:
        model, optimizer: the classifier and its optimizer.
        budget_scale: multiple of the continual methods' total steps (> 0).
        **kwargs: :class:`CLIPStrategyBase` arguments (``mem_size`` must be 0).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, budget_scale: float = 1.0,
                 **kwargs: Any) -> None:
        (budget_scale,) = check_options(JOINT_RULES, budget_scale=budget_scale)
        if kwargs.get("mem_size", 0):
            raise ValueError("joint training has no replay memory: mem_size must be 0")
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, **kwargs)
        self.budget_scale = budget_scale

    def continual_budget(self, experiences: list[Any]) -> int:
        """The total steps a continual method takes over ``experiences``."""
        return sum(
            sum(self.budget.schedule(len(e.dataset), self.train_mb_size, self.train_epochs))
            for e in experiences
        )

    def train(self, experiences: Any, eval_streams: Any = None, **kwargs: Any) -> Any:
        """Train once on the concatenation of ``experiences`` (a stream or a list)."""
        experiences = list(experiences) if isinstance(experiences, Iterable) else [experiences]
        merged_data = concat_datasets([e.dataset for e in experiences])
        merged = EagerCLStream("train", [DatasetExperience(dataset=merged_data)])[0]
        classes = sorted({c for e in experiences for c in experience_classes(e)})
        merged.classes_in_this_experience = classes
        total = round(self.budget_scale * self.continual_budget(experiences))
        saved, self.budget.steps_per_experience = self.budget.steps_per_experience, max(total, 1)
        try:
            return super().train(merged, eval_streams=[] if eval_streams is None else eval_streams, **kwargs)
        finally:
            self.budget.steps_per_experience = saved
