"""The protocol's classification negatives, ``train_logits``: the same for every trained method.

- ``"batch"`` (the default): every classification loss ranges over the classes present in the
  batch ``C_B`` (new data ∪ memory rows; under several processes the *global* batch), as GCL's
  objective does: it is defined over the training set ``S`` = new data ∪ memory, estimated
  in-batch, so its negatives are the prompts of the batch's classes. For logits ``z`` ``[B, K]``::

      CE_i = −z_{i,y_i} + log Σ_{k ∈ C_B} exp(z_{i,k})

  and the prompts (head rows) of seen classes absent from the batch get no gradient.
- ``"seen"``: over every class seen so far (the cross-entropy before the key existed).

Distillation terms that compare the current logits of old classes with an old model's (DER's
logit MSE, LwF, FOSTER's KD and BKD, iCaRL's distillation targets) are not classification
negatives: they keep every seen class, whichever value, since masking them would drop the very
classes they are there to keep.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from avalanche_clip.losses.masked import BatchClassCrossEntropy, batch_class_logits
from avalanche_clip.strategies.defaults import TRAIN_LOGITS
from avalanche_clip.training.distributed import gather_rows, world_size


def default_criterion(train_logits: str) -> nn.Module:
    """What plugins call as ``strategy._criterion(out, y)`` when a strategy is given none: the
    cross-entropy with the protocol's negatives (``"seen"``: torch's, over the logits' finite
    classes, as before the key existed; ``"batch"``: over the classes of the plugin's batch)."""
    return BatchClassCrossEntropy() if train_logits == "batch" else nn.CrossEntropyLoss()


def batch_classification_logits(strategy: Any, logits: torch.Tensor,
                                rows: torch.Tensor | None = None) -> torch.Tensor:
    """``strategy``'s step logits ``[B, K]`` with the classes absent from its batch at −∞
    (:func:`~avalanche_clip.losses.masked.batch_class_logits`).

    The batch is the whole step's, new data and memory rows alike: a loss over some rows selects
    them afterwards (DER's CE on the new rows still has the memory's classes as negatives).
    ``rows`` ``[B]`` bool: only the labels of those rows make the batch (ZSCL: its reference rows
    are not training data). Under several processes the labels are gathered from every process (a
    collective: every process calls it alike), so the classes are the global batch's and 2
    processes train as 1. With one head per task a column is the class its label names in the
    row's task (``TaskHeads``).
    """
    labels = strategy.mb_y if rows is None else strategy.mb_y[rows]
    heads = getattr(strategy.model, "task_heads", None)
    columns = None
    if heads is not None:  # mb_task_id read only here: items without task labels have no heads
        columns = heads.rows(strategy.mb_task_id)  # [B, L]
        tasks = strategy.mb_task_id if rows is None else strategy.mb_task_id[rows]
        labels = heads.classes_of(labels, tasks)
    if world_size() > 1:
        labels = gather_rows(labels)
    return batch_class_logits(logits, labels, columns)


__all__ = ["TRAIN_LOGITS", "batch_classification_logits", "default_criterion"]
