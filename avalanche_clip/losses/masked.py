"""Cross-entropy over the visible classes of a logit matrix: masked classes carry −∞ logits.

Our heads mask a class (−∞) that a step may not predict — an unseen class, another task's class —
so a row whose *target* is masked has no finite loss; these functions leave such rows out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def visible_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: the rows whose target class is visible (its logit is not −∞). A NaN logit
    is not a masked class: its row counts, so a diverged model shows a NaN loss."""
    return logits.detach().gather(1, targets[:, None]).squeeze(1) != float("-inf")


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, if_none: float = 0.0,
                         class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over the :func:`visible_rows` of ``logits`` ``[B, K]`` (−∞ on masked
    classes) for ``targets`` ``[B]``: their mean, or with ``class_weights`` ``[K]`` the mean of
    ``w[y_i] · CE_i``; ``if_none`` (still attached to the graph) when no row counts.
    """
    visible = visible_rows(logits, targets)
    if not bool(visible.any()):
        return if_none + 0.0 * logits.nan_to_num(neginf=0.0).sum().float()
    if class_weights is None:
        return F.cross_entropy(logits[visible].float(), targets[visible])
    per_sample = F.cross_entropy(logits[visible].float(), targets[visible], reduction="none")
    return (class_weights[targets[visible]] * per_sample).mean()
