"""The accuracy of iCaRL's nearest-mean-of-exemplars classifier, recorded beside the prompt head's.

iCaRL is scored with the classifier every method is scored with (:mod:`avalanche_clip.strategies.icarl`);
the nearest-mean classifier it was designed with is counted on the same evaluation's features,
so its records say what that classifier would have scored.
"""

from __future__ import annotations

from typing import Any

import torch
from avalanche.evaluation.metrics import Accuracy


class NearestMeanScore:
    """Accuracy of iCaRL's nearest-mean-of-exemplars classifier over one evaluation.

    For a test sample with features ``a`` (``[F]``, normalised) and the class means ``μ_c`` of
    Avalanche's ``_ICaRLPlugin.compute_class_means`` (the normalised mean of the exemplars'
    normalised features and of their horizontally flipped images'), the prediction is
    ``argmin_{c seen} ‖a − μ_c‖`` (Avalanche's ``NCMClassifier`` scores ``−‖a − μ_c‖``, ``[B, K]``);
    classes not trained yet (mean 0) are left out, as the prompt head leaves them out. Avalanche's
    ``Accuracy`` counts them per test experience and over the stream (sample-weighted), as the
    evaluator counts ``accuracy_per_experience`` and ``stream_accuracy``.
    """

    def __init__(self) -> None:
        self.per_experience: dict[int, Accuracy] = {}
        self.stream = Accuracy()

    def reset(self) -> None:
        self.per_experience = {}
        self.stream.reset()

    def add(self, experience: int, scores: torch.Tensor, targets: torch.Tensor, seen: list[int]) -> None:
        """Count one mini-batch: ``scores`` ``[B, K]`` (higher: nearer), ``targets`` ``[B]``."""
        allowed = torch.zeros(scores.shape[1], dtype=torch.bool, device=scores.device)
        allowed[[c for c in seen if c < scores.shape[1]]] = True
        masked = scores.masked_fill(~allowed, float("-inf"))
        self.per_experience.setdefault(int(experience), Accuracy()).update(masked, targets)
        self.stream.update(masked, targets)

    def fields(self) -> dict[str, Any]:
        """``ncm_stream_accuracy`` and ``ncm_accuracy_per_experience`` (by test experience id);
        empty when nothing was scored."""
        if not self.per_experience:
            return {}
        return {
            "ncm_stream_accuracy": float(self.stream.result()),
            "ncm_accuracy_per_experience": [float(self.per_experience[e].result())
                                            for e in sorted(self.per_experience)],
        }
