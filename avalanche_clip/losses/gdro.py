"""GDRO: class-wise squared-hinge contrastive losses reweighted by a KL group-DRO objective."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from avalanche_clip.losses._moving_average import (
    PairwiseMovingAverage,
    check_ids,
    check_positive_int,
    check_real,
    full_precision,
)
from avalanche_clip.losses._negative_rows import NegativeRows

__all__ = ["ClassPrompts", "GDROLoss"]

#: The seen classes' prompts for one-class batches: ``(prompts [C, D], class ids [C])`` or a
#: function returning them.
ClassPrompts = tuple[Tensor, Tensor] | Callable[[], tuple[Tensor, Tensor]]


class GDROLoss(PairwiseMovingAverage):
    r"""Class-level KL group DRO over pAUC-style squared-hinge contrastive class losses.

    With ``ℓ(d) = max(m − d, 0)²`` and ``s(i, k) = a_i·b_k``, the loss of class ``k`` is::

        L_k = mean_{i: y_i = k} [ τ·log g₁ˡ(i) + τ·log g₂ˡ(i) ]
        g₁ˡ(i) = mean_{j: y_j ≠ k} exp(ℓ(s(i,k) − s(i,y_j))/τ)   own prompt vs other-class prompts
        g₂ˡ(i) = mean_{j: y_j ≠ k} exp(ℓ(s(i,k) − s(j,k))/τ)     own image vs other-class images

    and over the ``K`` classes seen so far::

        F_GDRO = max_{p∈Δ} Σ_k p_k L_k − λ·KL(p ‖ 1/K) = λ·log((1/K) Σ_k exp(L_k/λ)),
        ∇F_GDRO = Σ_k softmax(L/λ)_k ∇L_k.

    Estimator on a batch (``S_ij = image_i·text_j``, ``A_ij = ℓ(S_ii − S_ij)``,
    ``T_ij = ℓ(S_ii − S_ji)``, ``B_i = {j : y_j ≠ y_i}``, ``B_k = {i : y_i = k}``, ``C_B`` the
    classes present in the batch with at least one negative):

    1. ``u_i``, ``v_i``: per-id moving averages of ``mean_{j∈B_i} exp(A_ij/τ)``,
       ``mean_{j∈B_i} exp(T_ij/τ)`` (rate ``gamma``, first visit = batch estimate);
    2. ``z_k ← (1−γ_c)·z_k + γ_c·mean_{i∈B_k} τ(log u_i + log v_i)`` (first visit: the mean);
    3. ``q_k = K·softmax(z/λ)_k`` over every class whose ``z`` is set (mean weight 1);
    4. loss ``= (1/|C_B|) Σ_{k∈C_B} q_k (1/|B_k|) Σ_{i∈B_k} Σ_{j∈B_i}
       [exp(A_ij/τ)/(|B_i| u_i)·A_ij + exp(T_ij/τ)/(|B_i| v_i)·T_ij]`` with detached weights.

    Classes are sampled first and samples within a class second, so a memory class with two
    samples in the batch weighs as much as a new class with sixty. With the full data set as
    one batch and ``γ = γ_c = 1`` the gradient is exactly ``∇F_GDRO``.

    Step 4 averages over the classes *present in the batch*, which is unbiased only when every
    seen class is in every batch. Under uniform sampling from ``D_t ∪ M`` a memory class with few
    samples is often absent, and that average under-weights exactly the classes DRO favours.
    :meth:`set_class_inclusion` gives the loss ``π_k``, the probability that class ``k`` is in a
    batch (the strategy computes it from its sampler), and step 4 becomes the Horvitz–Thompson
    estimator over the ``K`` classes with ``π_k > 0`` and ``z_k`` set::

        loss = Σ_{k∈C_B} softmax(z/λ)_k / π_k · (1/|B_k|) Σ_{i∈B_k} Σ_{j∈B_i} [...]

    with the softmax over those ``K`` classes, so ``E[∇loss] = Σ_k softmax(z/λ)_k ∇L̂_k`` whatever
    the batch composition. A class with ``π_k = 0`` (no sample left in ``D_t ∪ M``) leaves the
    softmax, and its ``z_k`` is kept for later.

    A batch of one class has no other-class sample, so no row has a negative and the loss above
    is 0: an experience of one class without memory would learn nothing. Given ``class_prompts``
    (the prompts of the classes seen so far), such a batch instead contrasts each image with the
    prompts of the *other seen classes*, the image-anchor class loss with prompt negatives::

        loss = (1/|B|) Σ_i Σ_{c∈C'} softmax_c(A'_ic/τ)·A'_ic,   A'_ic = ℓ(s(i,y_i) − s(i,c))

    (detached weights: its gradient is that of ``(1/|B|) Σ_i τ·log mean_{c∈C'} exp(A'_ic/τ)``,
    ``C'`` the seen classes but the batch's). It reads and writes no state: ``u``, ``v`` and
    ``z`` estimate the sample-negative objective. Batches of two or more classes never use it.

    Negatives over the seen classes (``train_logits="seen"``): ``extra_negatives`` holds the
    prompts ``b_k`` of the seen classes absent from the batch, ``k ∈ E``, one column each. The
    class-level image anchor contrasts with them too (the prompt anchor ``g₂ˡ`` is unchanged: an
    absent class has no image in the batch)::

        ĝ₁ˡ(i) = [Σ_{j∈B_i} exp(A_ij/τ) + Σ_{k∈E} exp(A_ik/τ)] / (|B_i| + |E|),
        A_ik = ℓ(S_ii − s(i, k)),   weight exp(A_ik/τ)/((|B_i| + |E|)·u_i)

    ``u_i`` tracks this ``ĝ₁ˡ``, and ``z``, ``q`` follow from it as above. A one-class batch (no
    ``B_i``) takes the one-class term with ``C' = E`` (the absent seen classes are exactly the
    other seen classes), so ``extra_negatives`` replaces ``class_prompts`` there. ``E = ∅`` (or
    None) is the in-batch loss above, bit for bit.

    Args:
        num_samples: ``N``, size of the full training set (ids in ``[0, N)``); None: the
            per-id state grows as ids arrive (any id >= 0).
        num_classes: number of classes (labels in ``[0, num_classes)``); required.
        tau: temperature ``τ > 0`` over negatives.
        margin: squared-hinge margin ``m ≥ 0``.
        dro_lambda: DRO temperature ``λ > 0`` over classes (large: class-balanced mean;
            small: worst class).
        gamma: per-sample moving-average weight on the new estimate, in ``(0, 1]``.
        class_gamma: per-class moving-average weight ``γ_c`` on the new estimate, in ``(0, 1]``.

    Buffers: ``log_u``, ``log_v`` (``[num_samples]``, or growing) and ``class_loss`` (``z``,
    ``[num_classes]``), NaN where unseen. Shapes and dtypes as in :class:`GCLLoss`. In eval
    mode the loss is computed exactly as in training, with the estimates this batch *would*
    produce, but no buffer is written.

    Example:
        >>> gdro = GDROLoss(num_samples=1000, num_classes=3)
        >>> img = torch.nn.functional.normalize(torch.randn(8, 16), dim=1).requires_grad_()
        >>> prompts = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
        >>> y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
        >>> gdro(img, prompts[y], y, torch.arange(8)).backward()
    """

    class_loss: Tensor

    def __init__(self, num_samples: int | None = None, num_classes: int | None = None, tau: float = 0.5,
                 margin: float = 0.5, dro_lambda: float = 1.0, gamma: float = 0.9,
                 class_gamma: float = 0.9) -> None:
        super().__init__(num_samples, tau, gamma)
        self.num_classes = check_positive_int(num_classes, "num_classes")
        self.margin = check_real(margin, "margin", 0.0, low_open=False)
        self.dro_lambda = check_real(dro_lambda, "dro_lambda", 0.0)
        self.class_gamma = check_real(class_gamma, "class_gamma", 0.0, 1.0, high_open=False)
        self.register_buffer("class_loss", torch.full((self.num_classes,), math.nan))
        # π_k of the current experience (NaN: unset); set by the strategy, not part of the state.
        self.register_buffer("class_inclusion", torch.full((self.num_classes,), math.nan),
                             persistent=False)

    def batch_local(self, batch_size: int) -> GDROLoss:
        """A fresh GDRO loss with these ``τ``, margin, ``λ`` and classes over ids
        ``0..batch_size−1`` with ``γ = γ_c = 1`` and no inclusion probabilities: its estimates are
        one batch's own (classes averaged over those present), no stored state read or written."""
        return GDROLoss(num_samples=batch_size, num_classes=self.num_classes, tau=self.tau,
                        margin=self.margin, dro_lambda=self.dro_lambda, gamma=1.0, class_gamma=1.0)

    @torch.no_grad()
    def set_class_inclusion(self, probabilities: Tensor | None) -> None:
        """Use the Horvitz–Thompson class weights with ``π = probabilities`` (``[num_classes]``,
        each in ``[0, 1]``, 0 for classes absent from the training set), or, with ``None``,
        average over the classes present in each batch (the class docstring's step 4)."""
        if probabilities is None:
            self.class_inclusion.fill_(math.nan)
            return
        pi = torch.as_tensor(probabilities, dtype=torch.float64).flatten()
        if pi.shape != (self.num_classes,):
            raise ValueError(f"class inclusion probabilities must have shape [{self.num_classes}], "
                             f"got {tuple(pi.shape)}")
        if bool(((pi < 0) | (pi > 1) | torch.isnan(pi)).any()):
            raise ValueError("class inclusion probabilities must lie in [0, 1]")
        self.class_inclusion.copy_(pi.to(self.class_inclusion))

    def forward(self, image_features: Tensor, text_features: Tensor, labels: Tensor,
                index: Tensor, class_prompts: ClassPrompts | None = None,
                extra_negatives: Tensor | None = None) -> Tensor:
        """Surrogate loss of one batch (see the class docstring); updates state if training.

        ``class_prompts``: ``(prompts [C, D], class ids [C])`` of the seen classes, or a function
        returning them (called only for a batch of one class), for one-class batches.
        ``extra_negatives``: ``[E, D]`` prompts of the seen classes absent from the batch, extra
        image-anchor negatives (``train_logits="seen"``); they are also a one-class batch's
        negatives, in place of ``class_prompts``. None: the in-batch loss.
        """
        image_term, prompt_term = self._anchor_terms(image_features, text_features, labels, index,
                                                     class_prompts, extra_negatives)
        return image_term + prompt_term

    def _anchor_terms(self, image_features: Tensor, text_features: Tensor, labels: Tensor,
                      index: Tensor, class_prompts: ClassPrompts | None = None,
                      extra_negatives: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The loss split into its image-anchor (``A``) and prompt-anchor (``T``) parts.

        Both share the class weights ``q`` and normalisation; their sum is :meth:`forward`.
        Kept separate so the prompt-anchor part can be checked against LibAUC's
        ``pAUC_DRO_Loss``. Updates the state like :meth:`forward`.
        """
        check_ids(labels, self.num_classes, "label")
        image, text, labels, index = self._prepare(image_features, text_features, labels, index)
        extra = self._extra_negatives(extra_negatives, image)
        with full_precision(image.device.type):
            sim = image @ text.T  # [B, B], sim[i, j] = s(i, y_j)
            margin_gap = self.margin - sim.diagonal()[:, None]
            a = torch.relu(margin_gap + sim).square()  # ℓ(S_ii − S_ij)
            t = torch.relu(margin_gap + sim.T).square()  # ℓ(S_ii − S_ji)
            neg = labels[:, None] != labels[None, :]
            neg1 = None
            if extra is not None:
                # ℓ(S_ii − s(i, k)) for the absent seen classes k, on the rows that have in-batch
                # negatives (every row, unless the batch holds one class: see _one_class_term).
                a = torch.cat([a, torch.relu(margin_gap + image @ extra.T).square()], dim=1)
                neg1 = torch.cat([neg, neg.any(dim=1, keepdim=True).expand(-1, extra.shape[0])], dim=1)
            rows = NegativeRows(neg, neg1, a.dtype)
            r1, r2, est = self._row_terms(a, t, rows, index)
            valid = rows.valid
            if not bool(valid.any()):
                zero = 0.0 * (image.sum() + text.sum())
                one_class = self._one_class_term(image, sim.diagonal(), labels, class_prompts,
                                                 extra_negatives)
                return (zero if one_class is None else zero + one_class), zero
            weight = self._row_weights(labels, valid, est)
            return (weight * r1).sum(), (weight * r2).sum()

    def _one_class_term(self, image: Tensor, positive: Tensor, labels: Tensor,
                        class_prompts: ClassPrompts | None, extra_negatives: Tensor | None) -> Tensor | None:
        """The prompt-negative loss of a one-class batch (class docstring); None without other
        seen classes (or without ``class_prompts`` and ``extra_negatives``, or an empty batch).
        ``extra_negatives``, when given, are the seen classes absent from the batch: ``C'`` itself."""
        if not len(labels) or (class_prompts is None and extra_negatives is None):
            return None
        if extra_negatives is not None:
            negatives = extra_negatives
        else:
            prompts, classes = class_prompts() if callable(class_prompts) else class_prompts
            others = torch.as_tensor(classes, device=labels.device) != labels[0]
            negatives = prompts.to(image.device)[others.to(image.device)]
        if not len(negatives):
            return None
        negatives = negatives.to(device=image.device, dtype=image.dtype)
        a = torch.relu(self.margin - positive[:, None] + image @ negatives.T).square()  # A'_ic
        with torch.no_grad():
            weight = torch.softmax(a / self.tau, dim=1)
        return (weight * a).sum(dim=1).mean()

    @torch.no_grad()
    def _row_weights(self, labels: Tensor, valid: Tensor, est: Tensor) -> Tensor:
        """Update ``z`` and return per-row weights ``q_{y_i}/(|C_B|·|B_{y_i}|)`` (0 if invalid)."""
        c = self.num_classes
        dtype, device = est.dtype, est.device
        y = labels[valid]
        count = torch.bincount(y, minlength=c).to(dtype)
        class_mean = torch.zeros(c, dtype=dtype, device=device).index_add_(0, y, est[valid])
        present = count > 0
        class_mean = class_mean / count.clamp_min(1)

        z_old = self.class_loss.to(device=device, dtype=dtype)
        if self.class_gamma >= 1.0:
            mixed = class_mean
        else:
            mixed = (1.0 - self.class_gamma) * z_old + self.class_gamma * class_mean
        z = torch.where(present, torch.where(torch.isnan(z_old), class_mean, mixed), z_old)
        if self.training:
            self.class_loss.copy_(z.to(self.class_loss))

        pi = self.class_inclusion.to(device=device, dtype=dtype)
        if bool(torch.isnan(pi).any()):  # average over the classes present in this batch
            q = _class_weights(z, self.dro_lambda)
            per_class = torch.where(present, q / (count.clamp_min(1) * present.sum()), 0.0)
        else:  # Horvitz–Thompson over every class that can be drawn
            if bool((present & (pi <= 0)).any()):
                bad = int(torch.nonzero(present & (pi <= 0))[0])
                raise ValueError(f"class {bad} is in the batch but its inclusion probability is 0")
            available = pi > 0
            share = _class_weights(torch.where(available, z, math.nan), self.dro_lambda)
            share = share / share.nan_to_num(0.0).sum()  # softmax(z/λ) over the drawable classes
            per_class = torch.where(present, share / (pi.clamp_min(1e-300) * count.clamp_min(1)), 0.0)
        return torch.where(valid, per_class[labels], 0.0)

    @torch.no_grad()
    def class_weights(self) -> Tensor:
        """Current class weights ``q_k = K·softmax(z/λ)_k`` over the ``K`` set classes.

        Returns ``[num_classes]``: mean 1 over set classes, NaN for classes never seen.
        """
        return _class_weights(self.class_loss, self.dro_lambda)

    @torch.no_grad()
    def objective(self) -> Tensor:
        """Estimate of ``F_GDRO = λ·log((1/K) Σ_k exp(z_k/λ))`` over the set classes (scalar).

        NaN if no class has been seen.
        """
        z = self.class_loss[~torch.isnan(self.class_loss)]
        if z.numel() == 0:
            return torch.full((), math.nan, dtype=z.dtype, device=z.device)
        top = z.max()
        shifted = torch.logsumexp((z - top) / self.dro_lambda, 0) - math.log(z.numel())
        return top + self.dro_lambda * shifted

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, num_classes={self.num_classes}, margin={self.margin}, "
                f"dro_lambda={self.dro_lambda}, class_gamma={self.class_gamma}")


def _class_weights(z: Tensor, dro_lambda: float) -> Tensor:
    """``K·softmax(z/λ)`` over the non-NaN entries of ``z`` (``[C]``); NaN elsewhere."""
    is_set = ~torch.isnan(z)
    k = int(is_set.sum())
    q = torch.full_like(z, math.nan)
    if k:
        zs = z[is_set]
        # Shift by the max first: (z − max)/λ ≤ 0 cannot overflow even for tiny λ.
        q[is_set] = k * torch.softmax((zs - zs.max()) / dro_lambda, dim=0)
    return q
