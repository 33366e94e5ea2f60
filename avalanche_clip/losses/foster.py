"""FOSTER's losses (Wang et al., ECCV 2022): class weights from effective numbers, logits
alignment, knowledge distillation and balanced knowledge distillation.

Pure functions over logits restricted to the classes that may be predicted (``[B, k]``; the
strategy drops the masked columns first). With ``n_c`` the training samples of class ``c`` in
the experience (new data plus memory) and ``β ∈ [0, 1)``:

- class weights (Cui et al.'s effective number ``(1 − β^n)/(1 − β)``, inverted, mean 1)::

      w_c ∝ (1 − β) / (1 − β^{n_c}),      Σ_c w_c = k

  over the classes with samples (``β = 0`` gives uniform weights). A class without any sample
  (an old class with no memory) leaves the weighting: its weight is 1, neither raised nor
  lowered, and the others are normalised among themselves. Counting it as one sample instead
  would give it the largest weight of all — without memory, old classes ≈ 1.9 against ≈ 0.09
  for the new ones after one experience — a prior for classes the step has no data of.
- logits alignment: ``L_LA = CE(z / w, y)`` — each class's logit divided by its weight, so
  rare (old) classes get larger logits at test time;
- distillation with temperature ``T`` over the old classes::

      L_KD = −(1/B) Σ_i Σ_c softmax(z̄_i/T)_c · log softmax(z_i/T)_c

- balanced distillation (feature compression): the teacher's softened distribution reweighted
  by ``w`` and renormalised, ``q_ic = w_c softmax(z̄_i/T)_c / Σ_l w_l softmax(z̄_i/T)_l``::

      L_BKD = −(1/B) Σ_i Σ_c q_ic · log softmax(z_i/T)_c

No ``T²`` factor, as in the authors' code (PyCIL ``models/foster.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from avalanche_clip.common.values import check_unit_interval

__all__ = ["balanced_distillation", "distillation", "effective_number_weights", "logits_aligned_cross_entropy"]


def effective_number_weights(counts: Tensor, beta: float) -> Tensor:
    """``[k]`` class weights (float64): ``w_c ∝ (1 − β)/(1 − β^{n_c})`` over the ``m`` classes
    with ``n_c > 0``, normalised to sum ``m``; ``w_c = 1`` for a class with no sample.

    Args:
        counts: ``[k]`` samples per class.
        beta: ``β`` in ``[0, 1)``.
    """
    beta = check_unit_interval("beta", beta)
    n = counts.to(torch.float64)
    present = n > 0
    weights = torch.ones_like(n)
    if present.any():
        raw = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), n[present]))
        weights[present] = raw / raw.sum() * int(present.sum())
    return weights


def logits_aligned_cross_entropy(logits: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
    """``CE(z / w, y)`` averaged over the batch; ``logits`` ``[B, k]``, ``targets`` ``[B]`` in
    ``[0, k)``, ``weights`` ``[k]``."""
    return F.cross_entropy(logits.float() / weights.to(logits.device, torch.float32), targets)


def distillation(student: Tensor, teacher: Tensor, temperature: float) -> Tensor:
    """``L_KD``: cross-entropy from ``softmax(teacher/T)`` to ``softmax(student/T)``, summed over
    classes and averaged over the batch (``[B, k]`` each; the teacher gets no gradient)."""
    log_student = torch.log_softmax(student.float() / temperature, dim=1)
    target = torch.softmax(teacher.detach().float() / temperature, dim=1)
    return -(target * log_student).sum(1).mean()


def balanced_distillation(student: Tensor, teacher: Tensor, temperature: float,
                          weights: Tensor) -> Tensor:
    """``L_BKD``: :func:`distillation` with the teacher's distribution reweighted by ``w`` ``[k]``
    and renormalised per row."""
    log_student = torch.log_softmax(student.float() / temperature, dim=1)
    target = torch.softmax(teacher.detach().float() / temperature, dim=1)
    target = target * weights.to(target.device, torch.float32)
    target = target / target.sum(1, keepdim=True)
    return -(target * log_student).sum(1).mean()
