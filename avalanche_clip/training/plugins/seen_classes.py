"""Track the classes trained so far and restrict predictions to them.

Every method in a comparison must predict among the same classes. Our classifiers mask unseen
classes themselves (``mark_seen``); for models that cannot (iCaRL's nearest-class-mean
classifier), the plugin masks ``mb_output`` at evaluation instead.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin


def experience_classes(experience: Any) -> list[int]:
    """Classes present in an experience's data (Avalanche's timeline when it has one)."""
    classes = getattr(experience, "classes_in_this_experience", None)
    if classes is None:
        classes = set(int(t) for t in experience.dataset.targets)
    return sorted(int(c) for c in classes)


class SeenClassesPlugin(SupervisedPlugin, supports_distributed=True):  # the same on every process
    """Marks each training experience's classes as seen.

    Args:
        num_classes: size of the global class-id space.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.seen = torch.zeros(num_classes, dtype=torch.bool)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        self.mark(strategy.model, strategy.experience)

    def mark(self, model: Any, experience: Any) -> None:
        """Mark ``experience``'s classes as seen (on ``model`` too, when it masks classes itself)."""
        classes = experience_classes(experience)
        heads = getattr(model, "task_heads", None)
        if heads is not None:  # labels of a task-incremental benchmark: the classes they name
            classes = heads.named_classes(getattr(experience, "task_labels", [0]), classes)
        self.seen[classes] = True
        mark = getattr(model, "mark_seen", None)
        if mark is not None:
            mark(classes)

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        if hasattr(strategy.model, "mark_seen") or not bool(self.seen.any()):
            return
        output = strategy.mb_output
        width = output.shape[1]
        unseen = ~self.seen[:width].to(output.device)
        strategy.mb_output = output.masked_fill(unseen, float("-inf"))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"seen": self.seen.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.seen.copy_(state["seen"])
