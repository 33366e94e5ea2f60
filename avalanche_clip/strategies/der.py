"""DER: Dark Experience Replay (Buzzega et al., NeurIPS 2020), as Avalanche implements it.

"DER" here is Avalanche's ``avalanche.training.DER`` — Dark Experience Replay, not the
Dynamically Expandable Representation method that shares the acronym. Avalanche's class draws a
memory batch of its own, from a buffer of its own, and copies the training loop; to compare it
fairly we host the same loss on our base strategy, so DER gets the shared memory, batch
composition and step budget of every other replay method. Per mini-batch, with ``N`` the rows of
new samples and ``R`` the rows of memory samples (whose logits ``ẑ_i`` were stored when they
entered memory)::

    L = CE(f(x_N), y_N) + α · MSE(f(x_R), ẑ_R) + β · CE(f(x_R), y_R)

each term a mean over its rows (``β > 0`` is DER++; Avalanche's defaults are α = 0.1, β = 0.5),
exactly Avalanche's ``DER.training_epoch``; a parity test checks the value against it. Logits are
stored, as in Avalanche, from the model in eval mode right after the experience that brought the
sample in, on the un-augmented sample. With the seen-class masked heads of our protocol, the
stored logits cover the classes seen at that time (−∞ elsewhere) and the MSE is the mean over
those finite entries (with a full linear head it is Avalanche's mean over all ``K``).

Under the protocol's ``train_logits: batch`` both CE terms range over the classes of the whole
batch (new and memory rows: :meth:`~avalanche_clip.strategies.base.CLIPStrategyBase.classification_logits`);
the MSE is not a classification loss but the distillation of the stored logits of every class
seen when the sample entered memory, so it reads the unmasked logits (masking them would
distil −∞ against finite targets, or drop the old classes DER is there to keep).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from avalanche_clip.common.values import check_options
from avalanche_clip.losses.masked import masked_cross_entropy
from avalanche_clip.strategies.base import CLIPStrategyBase
from avalanche_clip.strategies.defaults import METHOD_DEFAULTS
from avalanche_clip.strategies.option_rules import DER_RULES

DER = METHOD_DEFAULTS["der"]  # derived defaults (strategies.defaults)


class DERStrategy(CLIPStrategyBase):
    """Dark Experience Replay (DER++ with ``beta > 0``) on the shared memory (module docstring).

    Args:
        model, optimizer: the classifier and its optimizer.
        alpha: weight ``α`` of the logit-distillation MSE on memory samples (>= 0).
        beta: weight ``β`` of the cross-entropy on memory samples (>= 0).
        **kwargs: :class:`CLIPStrategyBase` arguments (``mem_size`` >= 1 for any replay).
    """

    def __init__(self, *, model: nn.Module | None = None, optimizer: Any = None,
                 criterion: nn.Module | None = None, alpha: float = DER["alpha"], beta: float = DER["beta"],
                 **kwargs: Any) -> None:
        alpha, beta = check_options(DER_RULES, alpha=alpha, beta=beta)
        super().__init__(model=model, optimizer=optimizer, criterion=criterion, **kwargs)
        self.alpha, self.beta = alpha, beta
        self.stored_ids = torch.zeros(0, dtype=torch.long)  # [R], sorted
        self.stored_logits = torch.zeros(0, self.model.num_classes)  # [R, K], −∞ = unseen then

    # -- the loss ------------------------------------------------------------------------------
    def training_loss(self) -> torch.Tensor:
        if self.mb_index is None:
            raise RuntimeError("DERStrategy needs each sample's global index: build the stream "
                               "with build_scenario(..., with_index=True)")
        ids = self.mb_index.cpu()
        position = torch.searchsorted(self.stored_ids, ids).clamp_max(max(len(self.stored_ids) - 1, 0))
        replayed = (self.stored_ids[position] == ids) if len(self.stored_ids) else torch.zeros_like(ids, dtype=torch.bool)
        classified = self.classification_logits(self.mb_output)  # the CE terms' negatives
        if not bool(replayed.any()):
            return masked_cross_entropy(classified, self.mb_y)
        replayed = replayed.to(self.device)
        output = self.mb_output
        loss = output.new_zeros(()).float()
        if bool((~replayed).any()):
            loss = loss + masked_cross_entropy(classified[~replayed], self.mb_y[~replayed])
        target = self.stored_logits[position[replayed.cpu()]].to(self.device)
        finite = torch.isfinite(target)
        if bool(finite.any()):
            loss = loss + self.alpha * F.mse_loss(output[replayed][finite].float(), target[finite].float())
        loss = loss + self.beta * masked_cross_entropy(classified[replayed], self.mb_y[replayed])
        return loss

    # -- the logit memory ----------------------------------------------------------------------
    def _after_training_exp(self, **kwargs: Any) -> None:
        super()._after_training_exp(**kwargs)  # the replay plugin updates the memory here
        self._store_logits()

    @torch.no_grad()
    def _store_logits(self) -> None:
        """Keep the stored logits of ids still in memory; compute them for ids just admitted."""
        in_memory = self.replay.buffer_ids()
        keep = torch.isin(self.stored_ids, in_memory)
        ids, logits = self.stored_ids[keep], self.stored_logits[keep]
        new = in_memory[~torch.isin(in_memory, ids)]
        if len(new):
            data = self.replay.memory.dataset(new.tolist()).eval()
            loader = torch.utils.data.DataLoader(data, batch_size=self.eval_mb_size or self.train_mb_size,
                                                 shuffle=False, collate_fn=data.collate_fn)
            was_training = self.model.training
            self.model.eval()
            outputs = [self.model(batch[0].to(self.device)).float().cpu() for batch in loader]
            self.model.train(was_training)
            ids = torch.cat([ids, new])
            logits = torch.cat([logits, torch.cat(outputs)])
        order = torch.argsort(ids)
        self.stored_ids, self.stored_logits = ids[order], logits[order]

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The logit memory, for checkpoints."""
        return {"ids": self.stored_ids.clone(), "logits": self.stored_logits.clone()}

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        self.stored_ids = state["ids"].clone()
        self.stored_logits = state["logits"].clone()
