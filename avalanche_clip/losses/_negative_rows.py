"""Which entries of a batch's score rows are negatives, and what the losses derive from that.

GCL and GDRO estimate, per row ``i`` of a ``[B, B+E]`` score matrix, means over the row's
negatives ``B_i``. From the negative masks they need the counts ``|B_i|``, their logs, which rows
have a negative at all, and the masks' complements (the entries set to −∞). :class:`NegativeRows`
computes these once from the masks.

They depend on the labels only for ``negatives="class"``. With ``negatives="instance"``
(GCL's default: every other sample, and every extra prompt column) they depend only on ``B``,
``E``, the device and the dtype, so :class:`InstanceRowsCache` keeps them across steps: ~15
small tensor operations fewer a step (~60 µs on one CPU thread, ~10 % of GCL's forward on the
default's batch of 32), the same tensors as computed anew. The cached tensors are shared
between steps: nothing may write to them.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
from torch import Tensor

__all__ = ["InstanceRowsCache", "NegativeRows", "all_extra_negatives"]


class NegativeRows:
    """Per-row facts of negative masks ``neg`` (``[B, B]``, prompt anchor) and ``neg1``
    (``[B, B+E]``, image anchor; None: ``neg``, ``E = 0``), for scores in ``dtype``.

    Attributes:
        neg1, neg: the masks; not_neg1, not_neg: their complements.
        count1, count2: ``[B]`` negatives per row (image / prompt anchor).
        log_count1, log_count2: ``[B]`` ``log max(count, 1)`` in ``dtype``.
        valid1, valid2: ``[B]`` bool, the row has a negative; all1, all2: every row has one.
        valid: ``valid1 | valid2``; n_valid: its count (a Python int, computed when first read).
    """

    def __init__(self, neg: Tensor, neg1: Tensor | None, dtype: torch.dtype) -> None:
        self.count2 = neg.sum(dim=1)
        self.count1 = self.count2 if neg1 is None else neg1.sum(dim=1)
        self.neg = neg
        self.neg1 = neg if neg1 is None else neg1
        self.valid1, self.valid2 = self.count1 > 0, self.count2 > 0
        self.log_count1 = self.count1.clamp_min(1).to(dtype).log()
        self.log_count2 = (self.log_count1 if self.count1 is self.count2
                           else self.count2.clamp_min(1).to(dtype).log())
        self.not_neg1, self.not_neg = ~self.neg1, ~neg
        self.all1, self.all2 = bool(self.valid1.all()), bool(self.valid2.all())
        self.valid = self.valid1 | self.valid2

    @functools.cached_property
    def n_valid(self) -> int:
        return int(self.valid.sum())


def all_extra_negatives(neg: Tensor, n_extra: int) -> Tensor | None:
    """GCL's image-anchor mask ``neg1``: ``neg`` and ``n_extra`` extra columns, every one a
    negative of every row (they are other classes' prompts); None when there are none."""
    return None if n_extra == 0 else torch.cat([neg, neg.new_ones(neg.shape[0], n_extra)], dim=1)


class InstanceRowsCache:
    """:class:`NegativeRows` of ``negatives="instance"`` by ``(B, E, device, dtype)``: ``neg`` is
    every off-diagonal entry, ``neg1`` that and the ``E`` extra columns. Keeps the ``size`` most
    recently used: with in-batch logits, a stream's batch sizes (the full one, a last smaller
    one); with ``train_logits="seen"``, ``E`` (the seen classes absent from the batch) varies from
    step to step, and with many classes the rows are mostly computed anew (as they were)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._rows: OrderedDict[tuple, NegativeRows] = OrderedDict()

    def get(self, b: int, extra: int, device: torch.device, dtype: torch.dtype) -> NegativeRows:
        key = (b, extra, device, dtype)
        rows = self._rows.get(key)
        if rows is None:
            neg = ~torch.eye(b, dtype=torch.bool, device=device)
            rows = self._rows[key] = NegativeRows(neg, all_extra_negatives(neg, extra), dtype)
            if len(self._rows) > self.size:
                self._rows.popitem(last=False)
        else:
            self._rows.move_to_end(key)
        return rows
