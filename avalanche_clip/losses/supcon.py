"""Supervised-contrastive losses of the contrastive continual-learning baselines.

Pure functions of one mini-batch (no state, no Avalanche import), used by Co2L and CaSSLe
(``avalanche_clip.strategies.co2l`` / ``.cassle``). A batch has one or ``k`` views per sample
(a feature cache with augmented views gives ``k = 2``, :mod:`avalanche_clip.features.views`),
stacked view-major: rows ``v·B .. v·B+B−1`` are view ``v`` of the ``B`` samples, labels repeated
in the same order. A row's positives are the other rows of its class, its own twin views among
them (with one view: the other samples of its class in the batch).

With ``z_i`` the L2-normalised projections (``[B, d]``) and ``P_i = {j ≠ i : y_j = y_i}``:

- :func:`supervised_contrastive_loss` (SupCon, Khosla et al. 2020; Co2L's asymmetric version
  when ``anchors`` excludes the memory rows)::

      ℓ_i = −(1/|P_i|) Σ_{j∈P_i} log[ exp(z_i·z_j/τ) / Σ_{k≠i} exp(z_i·z_k/τ) ]

- :func:`relation_distillation_loss` (Co2L's instance-wise relation distillation, IRD)::

      p_ij(κ) = exp(z_i·z_j/κ) / Σ_{k≠i} exp(z_i·z_k/κ)            (j ≠ i)
      L_IRD  = (1/B) Σ_i Σ_{j≠i} −p̄_ij(κ*) · log p_ij(κ)             p̄: the past model's z̄

- :func:`predictive_contrastive_distillation` (CaSSLe's distillation for contrastive methods:
  the predicted features ``p_i = h(z_i)`` must identify the frozen model's ``z̄_i`` among the
  batch's frozen features, and vice versa)::

      D(a, b) = −(1/B) Σ_i log[ exp(a_i·b_i/T) / Σ_j exp(a_i·b_j/T) ]      (a, b normalised)
      L_D     = ½ [ D(p, z̄) + D(z̄, p) ]

  With ``k >= 2`` views (``n = k·B`` rows, row ``r`` a view of sample ``s(r)``), the positives of
  row ``r`` are the *other* views of its sample, and its own view is left out of the sum (the
  authors' two-view ``simclr_distill_loss_func``)::

      D(a, b) = −(1/n) Σ_r (1/(k−1)) Σ_{q≠r, s(q)=s(r)} log[ exp(a_r·b_q/T) / Σ_{j≠r} exp(a_r·b_j/T) ]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "predictive_contrastive_distillation",
    "relation_distillation_loss",
    "supervised_contrastive_loss",
]


def _off_diagonal(n: int, device: torch.device) -> Tensor:
    return ~torch.eye(n, dtype=torch.bool, device=device)


def supervised_contrastive_loss(z: Tensor, labels: Tensor, *, tau: float,
                                anchors: Tensor | None = None,
                                scale: float = 1.0, reduction: str = "batch") -> Tensor:
    """SupCon over the rows of ``z``, optionally with only some rows as anchors.

    Args:
        z: ``[B, d]`` projections (normalised here): one row per sample, or ``k`` views of each
            sample stacked view-major (``B`` counts the views; labels repeated).
        labels: ``[B]`` class ids.
        tau: temperature ``τ``.
        anchors: ``[B]`` bool, the rows whose ``ℓ_i`` count (None: all). Every row is still a
            positive / negative of the anchors: Co2L's asymmetric SupCon passes the current
            experience's rows, so memory samples appear only in the anchors' sums.
        scale: a constant factor (Co2L's code multiplies by ``τ/τ_base``).
        reduction: ``"batch"``: ``scale · Σ_{anchors with a positive} ℓ_i / B`` (Co2L: the
            mean over every row of the batch, rows that are not anchors counting 0);
            ``"anchors"``: ``scale · mean of ℓ_i`` over the anchors with a positive
            (SupCon / CaSSLe). An anchor without positive in the batch is left out.

    Returns:
        a scalar (0, still attached to ``z``, when no anchor has a positive).
    """
    if reduction not in ("batch", "anchors"):
        raise ValueError(f"reduction={reduction!r}; expected 'batch' or 'anchors'")
    z = F.normalize(z, dim=-1)
    n = z.shape[0]
    others = _off_diagonal(n, z.device)
    logits = (z @ z.t()) / tau
    logits = logits.masked_fill(~others, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # log p(j | i), j ≠ i
    positives = (labels[:, None] == labels[None, :]) & others
    counts = positives.sum(1)
    rows = counts > 0
    if anchors is not None:
        rows = rows & anchors.to(device=z.device, dtype=torch.bool)
    if not bool(rows.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positives, 0.0).sum(1)[rows] / counts[rows])
    total = per_anchor.sum() / n if reduction == "batch" else per_anchor.mean()
    return scale * total


def _relation_log_probs(z: Tensor, temperature: float) -> Tensor:
    """``[B, B−1]`` log p_ij over j ≠ i (row i's similarity distribution to the others)."""
    n = z.shape[0]
    others = _off_diagonal(n, z.device)
    logits = ((z @ z.t()) / temperature)[others].view(n, n - 1)
    return torch.log_softmax(logits, dim=1)


def relation_distillation_loss(z: Tensor, z_past: Tensor, *, kappa: float,
                               kappa_past: float) -> Tensor:
    """Co2L's IRD: cross-entropy from the past model's instance-similarity distributions
    (temperature ``κ*``) to the current model's (temperature ``κ``), mean over the ``B`` rows.

    Args:
        z: ``[B, d]`` current projections (with gradient); z_past: ``[B, d]`` the past
            model's projections of the same samples (no gradient). Both normalised here.
    """
    if z.shape[0] < 2:
        return z.sum() * 0.0
    current = _relation_log_probs(F.normalize(z, dim=-1), kappa)
    with torch.no_grad():
        past = _relation_log_probs(F.normalize(z_past.detach(), dim=-1), kappa_past).exp()
    return -(past * current).sum(1).mean()


def _instance_cross_entropy(a: Tensor, b: Tensor, temperature: float) -> Tensor:
    logits = (a @ b.t()) / temperature
    return F.cross_entropy(logits, torch.arange(a.shape[0], device=a.device))


def _twin_cross_entropy(a: Tensor, b: Tensor, temperature: float, views: int) -> Tensor:
    """``D(a, b)`` with ``views >= 2`` view-major views per sample (module docstring)."""
    n = a.shape[0]
    sample = torch.arange(n, device=a.device) % (n // views)
    own = torch.eye(n, dtype=torch.bool, device=a.device)
    logits = ((a @ b.t()) / temperature).masked_fill(own, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    twins = (sample[:, None] == sample[None, :]) & ~own
    return -(log_prob.masked_fill(~twins, 0.0).sum(1) / (views - 1)).mean()


def predictive_contrastive_distillation(predicted: Tensor, frozen: Tensor, *,
                                        temperature: float, views: int = 1) -> Tensor:
    """CaSSLe's contrastive distillation ``½[D(p, z̄) + D(z̄, p)]`` (module docstring).

    Args:
        predicted: ``[n, d]`` the predictor's outputs ``h(z)`` (with gradient).
        frozen: ``[n, d]`` the frozen previous model's projections ``z̄`` of the same rows (no
            gradient).
        views: ``k``, views per sample, rows view-major (``n = k·B``); 1: one row per sample.
    """
    if views < 1 or predicted.shape[0] % views:
        raise ValueError(f"{predicted.shape[0]} rows cannot hold views={views!r} views of each sample")
    p = F.normalize(predicted, dim=-1)
    z = F.normalize(frozen.detach(), dim=-1)
    if views == 1:
        return 0.5 * (_instance_cross_entropy(p, z, temperature) + _instance_cross_entropy(z, p, temperature))
    return 0.5 * (_twin_cross_entropy(p, z, temperature, views) + _twin_cross_entropy(z, p, temperature, views))
