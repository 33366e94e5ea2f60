"""GCL: the global contrastive loss between images and their label prompts (bimodal SogCLR)."""

from __future__ import annotations

import torch
from torch import Tensor

from avalanche_clip.losses._moving_average import PairwiseMovingAverage, full_precision
from avalanche_clip.losses._negative_rows import (
    InstanceRowsCache,
    NegativeRows,
    all_extra_negatives,
)

__all__ = ["GCLLoss"]

_NEGATIVES = ("instance", "class")


class GCLLoss(PairwiseMovingAverage):
    r"""Global contrastive loss with per-sample moving-average estimators.

    Objective over the training set ``S`` (task data plus replay memory)::

        F_GCL = (1/|S|) Σ_i [ τ·log g₁(i) + τ·log g₂(i) ]
        g₁(i) = mean_{j∈N_i} exp((s(i, y_j) − s(i, y_i))/τ)    image anchor vs other prompts
        g₂(i) = mean_{j∈N_i} exp((s(j, y_i) − s(i, y_i))/τ)    prompt anchor vs other images

    with ``s(i, k) = a_i·b_k`` (normalised image / prompt embeddings) and negatives
    ``N_i = S \ {i}`` (``negatives="instance"``, LibAUC ``GCLoss_v2``, FLYP) or
    ``N_i = {j : y_j ≠ y_i}`` (``negatives="class"``).

    On a batch, ``S_ij = image_i·text_j`` (row ``j`` of ``text_features`` is sample ``j``'s
    label prompt), ``h¹_ij = S_ij − S_ii``, ``h²_ij = S_ji − S_ii``, ``B_i = N_i ∩ batch``.
    The per-id states ``u_i ≈ g₁(i)``, ``v_i ≈ g₂(i)`` are moving averages (first visit: the
    batch mean; later ``(1−γ)·old + γ·new``), kept as ``log_u``, ``log_v``. The returned
    value is the surrogate

        loss = (1/|B'|) Σ_{i∈B'} Σ_{j∈B_i} [ W¹_ij·h¹_ij + W²_ij·h²_ij ],
        W¹_ij = exp(h¹_ij/τ)/(|B_i|·u_i)  (detached, u_i after this step's update)

    over the rows ``B'`` with at least one negative; its gradient is the SogCLR estimator of
    ``∇F_GCL`` (exact for the full data set as one batch with ``γ = 1``). Its value is not
    the objective: monitor :meth:`sample_objective` / :meth:`objective` instead.

    Negatives over the seen classes (``train_logits="seen"``): ``extra_negatives`` holds the
    prompts ``b_k`` of the seen classes absent from the batch, ``k ∈ E = C_seen \ y(B)``, one
    column each. The image anchor contrasts with them too::

        g₁(i) = mean over N_i ∪ E of exp((s(i,·) − s(i,y_i))/τ),
        ĝ₁(i) = [Σ_{j∈B_i} exp(h¹_ij/τ) + Σ_{k∈E} exp(h¹_ik/τ)] / (|B_i| + |E|),
        h¹_ik = s(i, k) − S_ii,   W¹_ik = exp(h¹_ik/τ)/((|B_i| + |E|)·u_i)

    and ``u_i`` tracks this ``ĝ₁``. ``E`` holds other classes only, so both ``negatives``
    settings take all of it (``"instance"``: ``B_i ∪ E``; ``"class"``: other-class samples
    ``∪ E``). ``g₂`` is unchanged: an absent class has no image in the batch. A row whose
    ``B_i`` is empty but ``E`` is not (``"class"`` on a one-class batch) has a ``g₁`` term only:
    ``u_i`` is updated, ``v_i`` is not, and the row counts in ``B'``. ``E = ∅`` (or None) is the
    in-batch loss above, bit for bit.

    Args:
        num_samples: ``N``, size of the full training set (ids are in ``[0, N)``); None: the
            per-id state grows as ids arrive (any id >= 0).
        tau: temperature ``τ > 0``.
        gamma: moving-average weight on the new estimate, in ``(0, 1]`` (1 = plain batch loss).
        negatives: ``"instance"`` or ``"class"`` (see above).

    Shapes:
        ``image_features``, ``text_features``: ``[B, D]`` (L2-normalised);
        ``labels``, ``index``: ``[B]`` integer; ``extra_negatives``: ``[E, D]`` (L2-normalised)
        or None. Returns a scalar in
        ``promote_types(input dtype, float32)``; under autocast the similarities and
        exponentials are still computed in that dtype.

    In eval mode (``self.training is False``) the loss is computed exactly as in training,
    with the estimates this batch *would* produce, but no buffer is written.

    Example:
        >>> gcl = GCLLoss(num_samples=1000, tau=0.05, gamma=0.9)
        >>> img = torch.nn.functional.normalize(torch.randn(8, 16), dim=1).requires_grad_()
        >>> prompts = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
        >>> y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        >>> loss = gcl(img, prompts[y], y, torch.arange(8))
        >>> loss.backward()
    """

    def __init__(self, num_samples: int | None = None, tau: float = 0.05, gamma: float = 0.9,
                 negatives: str = "instance") -> None:
        super().__init__(num_samples, tau, gamma)
        if negatives not in _NEGATIVES:
            raise ValueError(f"negatives must be one of {_NEGATIVES}, got {negatives!r}")
        self.negatives = negatives
        self._instance_rows = InstanceRowsCache()

    def forward(self, image_features: Tensor, text_features: Tensor, labels: Tensor,
                index: Tensor, extra_negatives: Tensor | None = None) -> Tensor:
        """Surrogate loss of one batch (see the class docstring); updates state if training.

        ``extra_negatives``: ``[E, D]`` prompts of the seen classes absent from the batch, extra
        image-anchor negatives (``train_logits="seen"``); None or ``E = 0``: the in-batch loss.
        """
        image, text, labels, index = self._prepare(image_features, text_features, labels, index)
        extra = self._extra_negatives(extra_negatives, image)
        # Similarities and exponentials in full precision even under autocast.
        with full_precision(image.device.type):
            sim = image @ text.T  # [B, B], sim[i, j] = s(i, y_j)
            pos = sim.diagonal()[:, None]
            h2 = sim.T - pos  # prompt of i vs images of the others
            b = sim.shape[0]
            if extra is None:
                h1 = sim - pos  # image i vs prompts of the others
            else:  # ... and vs the absent seen classes' prompts, all of them negatives
                h1 = torch.cat([sim, image @ extra.T], dim=1) - pos  # [B, B+E]
            n_extra = 0 if extra is None else extra.shape[0]
            if self.negatives == "instance":  # the same for every batch of this size
                rows = self._instance_rows.get(b, n_extra, sim.device, sim.dtype)
            else:
                neg = labels[:, None] != labels[None, :]
                rows = NegativeRows(neg, all_extra_negatives(neg, n_extra), sim.dtype)
            r1, r2, _ = self._row_terms(h1, h2, rows, index, estimate=False)
            n_valid = rows.n_valid
            if n_valid == 0:
                # Nothing to contrast; a zero that is still attached to the graph.
                return 0.0 * (image.sum() + text.sum())
            return (r1 + r2).sum() / n_valid

    @torch.no_grad()
    def objective(self) -> Tensor:
        """Estimate of ``F_GCL`` over the ids seen so far (mean of :meth:`sample_objective`).

        Returns a scalar tensor; NaN if no id has been seen.
        """
        return torch.nanmean(self.sample_objective())

    def batch_local(self, batch_size: int) -> GCLLoss:
        """A fresh GCL loss with these ``τ`` and negatives over ids ``0..batch_size−1`` with
        ``γ = 1``: its estimates are one batch's own, and no stored state is read or written."""
        return GCLLoss(num_samples=batch_size, tau=self.tau, gamma=1.0, negatives=self.negatives)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, negatives={self.negatives!r}"
