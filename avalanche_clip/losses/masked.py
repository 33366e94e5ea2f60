"""Cross-entropy over the visible classes of a logit matrix: masked classes carry −∞ logits.

Our heads mask a class (−∞) that a step may not predict — an unseen class, another task's class —
so a row whose *target* is masked has no finite loss; these functions leave such rows out.
:func:`batch_class_logits` masks the classes absent from a batch, for the protocol's
``train_logits: batch`` (the classification negatives are the batch's classes).
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


def batch_class_logits(logits: torch.Tensor, batch_classes: torch.Tensor,
                       column_classes: torch.Tensor | None = None) -> torch.Tensor:
    """``logits`` ``[B, K]`` with every column whose class is absent from the batch set to −∞.

    The negatives of a cross-entropy are then the classes present in the batch: with
    ``C_B = {batch_classes}`` (``[N]`` class ids, the batch's labels — under several processes the
    global batch's, so the set is the same on every process)::

        CE_i = −z_{i,y_i} + log Σ_{k ∈ C_B} exp(z_{i,k})

    A −∞ column gets zero gradient, so the prompts (or head rows) of absent classes do not move.
    ``column_classes`` ``[B, K]``: the class id of each row's columns when a column is not its
    class id (one head per task: ``TaskHeads.rows``, −1 where the row's task has no such label,
    which stays −∞); None: column ``k`` is class ``k``. Columns already −∞ stay −∞.
    """
    batch_classes = batch_classes.to(logits.device).long()
    if column_classes is None:
        present = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        present[batch_classes] = True
        keep = present[None, :]
    else:
        keep = torch.isin(column_classes.to(logits.device), batch_classes) & (column_classes >= 0)
    return logits.masked_fill(~keep, float("-inf"))


class BatchClassCrossEntropy(torch.nn.Module):
    """``criterion(logits, targets)``: the cross-entropy whose negatives are the classes present
    in ``targets`` (:func:`batch_class_logits` with the batch's own labels), mean over rows.

    What Avalanche plugins (EWC's importances, GEM's reference gradients, ...) call as
    ``strategy._criterion(out, y)`` under ``train_logits: batch``, so they differentiate the loss
    the strategy trains with, one of their own batches at a time. Label ``k`` is column ``k``
    (with one head per task, the labels of one task: EWC reads one experience at a time).
    """

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(batch_class_logits(logits, targets).float(), targets)
