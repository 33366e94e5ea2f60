"""Shared machinery of GCL and GDRO: per-sample moving averages kept in log space.

Both losses estimate, for every sample id ``i``, two inner means over negatives

    g₁(i) = mean_{j∈N_i} exp(h¹_ij/τ),    g₂(i) = mean_{j∈N_i} exp(h²_ij/τ)

(image anchor and prompt anchor) with moving averages ``u_i ≈ g₁(i)``, ``v_i ≈ g₂(i)``:

    first visit:  u_i ← ĝ₁(i)
    later visits: u_i ← (1−γ)·u_i + γ·ĝ₁(i)       (γ is the weight on the new estimate)

where ``ĝ`` is the mean over the in-batch negatives ``B_i``. Under ``train_logits="seen"`` the
image-anchor mean also runs over ``E`` extra columns, the prompts of the seen classes absent from
the batch: ``ĝ₁(i) = (Σ_{j∈B_i} exp(h¹_ij/τ) + Σ_{k∈E} exp(h¹_ik/τ))/(|B_i| + |E|)``; the
prompt-anchor mean ``ĝ₂`` keeps ``B_i`` (an absent class has no image in the batch). The state is stored as ``log u``,
``log v`` (buffers of shape ``[N]``, NaN = never seen) and updated with ``logaddexp``, so nothing
overflows even at τ = 0.005 where ``exp(h/τ)`` exceeds the float32 range. Without a fixed ``N``
(``num_samples=None``) the buffers start empty and grow (NaN-padded, at least doubling) when a
training batch brings a larger id; an id beyond them reads as never seen. The gradient of
``τ·log g₁(i)`` is estimated by

    (1/|B_i|) Σ_{j∈B_i} exp(h¹_ij/τ − log u_i) ∇h¹_ij

with ``u_i`` taken *after* this step's update; then ``exp(h/τ − log u_i) ≤ |B_i|/γ``, so the
per-pair weights ``W_ij = exp(h_ij/τ − log u_i)/|B_i|`` are bounded by ``1/γ`` (with extra
columns, ``|B_i|`` reads ``|B_i| + |E|`` in ``g₁``'s estimator and weights).
"""

from __future__ import annotations

import contextlib
import math
import operator
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from avalanche_clip.losses._negative_rows import NegativeRows

__all__ = ["PairwiseMovingAverage", "check_batch_ids", "check_ids", "check_positive_int", "check_real",
           "check_unique", "full_precision", "log_moving_average"]


def check_positive_int(value: int, name: str) -> int:
    """Return ``value`` as an int if it is an integer ≥ 1, else raise a ``ValueError`` naming it."""
    try:
        # operator.index accepts int-like values (numpy integers), not 2.0 or "3".
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return number


def check_real(value: float, name: str, low: float, high: float = math.inf,
               low_open: bool = True, high_open: bool = True) -> float:
    """Return ``float(value)`` if it lies in the stated interval, else raise ``ValueError``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan  # reported below like any other out-of-range value
    above = v > low if low_open else v >= low
    below = v < high if high_open else v <= high
    if not (math.isfinite(v) and above and below):
        lo, hi = ("(" if low_open else "["), (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")
    return v


def check_ids(ids: Tensor, size: int | None, what: str) -> None:
    """Raise ``ValueError`` naming the first entry of ``ids`` outside ``[0, size)``.

    Args:
        ids: integer tensor of any shape.
        size: exclusive upper bound (None: no upper bound, ids must only be >= 0).
        what: the noun used in the message ("sample id", "label").
    """
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{what}s must be an integer tensor, got dtype {ids.dtype}")
    bad = ids < 0 if size is None else (ids < 0) | (ids >= size)
    if bool(bad.any()):
        value = int(ids[bad].flatten()[0])
        bound = "[0, inf)" if size is None else f"[0, {size})"
        raise ValueError(f"{what} {value} is outside {bound}")


def check_unique(ids: Tensor) -> None:
    """Raise ``ValueError`` if a sample id occurs twice in one batch (its update is ambiguous)."""
    if ids.numel() < 2:
        return
    s = torch.sort(ids.flatten()).values
    dup = s[1:] == s[:-1]
    if bool(dup.any()):
        value = int(s[1:][dup][0])
        raise ValueError(f"sample id {value} occurs more than once in the batch; "
                         "each id must appear at most once per call")


def check_batch_ids(ids: Tensor, size: int | None) -> int | None:
    """:func:`check_ids` then :func:`check_unique` on a batch's sample ids, read once.

    A loss checks its ids on every step; the two checks as tensor operations cost ~10 small
    operations and two device reads (~65 µs a step on one CPU thread, ~10 % of GCL's forward),
    where one read of the ``B`` ids and Python's ``min``, ``max`` and ``set`` decide the common
    case. Bad ids go through the two checks, which raise with their usual messages.

    Returns the largest id (None for an empty batch), which a growable state needs.
    """
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        check_ids(ids, size, "sample id")  # raises its TypeError
    values = ids.flatten().tolist()
    if not values:
        return None
    low, high = min(values), max(values)
    if low < 0 or (size is not None and high >= size) or len(set(values)) != len(values):
        check_ids(ids, size, "sample id")
        check_unique(ids)
    return high


def full_precision(device_type: str) -> contextlib.AbstractContextManager:
    """A context in which autocast is off on ``device_type``: ``torch.autocast(enabled=False)``
    where autocast is on, else nothing to do (entering and leaving it cost ~5 µs a step)."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type=device_type, enabled=False)
    return contextlib.nullcontext()


def log_moving_average(log_old: Tensor, log_new: Tensor, gamma: float) -> Tensor:
    """``log((1−γ)·e^old + γ·e^new)`` elementwise; where ``log_old`` is NaN, ``log_new``.

    Computed as ``logaddexp(log1p(−γ) + old, log γ + new)``, which never overflows.
    """
    if gamma >= 1.0:
        return log_new.clone()
    mixed = torch.logaddexp(log_old + math.log1p(-gamma), log_new + math.log(gamma))
    return torch.where(torch.isnan(log_old), log_new, mixed)


class PairwiseMovingAverage(nn.Module):
    """Base module holding ``log_u``, ``log_v`` (shape ``[num_samples]``, NaN = unseen).

    Subclasses build the pair matrices ``h¹``, ``h²`` (shape ``[B, B]``) and the negatives of
    each row (:class:`~avalanche_clip.losses._negative_rows.NegativeRows`), then call
    :meth:`_row_terms`. State is written only while ``self.training`` is True.
    With ``num_samples=None`` the per-sample buffers grow as larger ids arrive in training
    (see the module docstring); ``num_samples`` preallocates ``[N]`` and bounds the ids.
    """

    log_u: Tensor
    log_v: Tensor
    #: Buffers indexed by sample id (grown together when ``num_samples`` is None).
    _per_sample_buffers = ("log_u", "log_v")

    def __init__(self, num_samples: int | None, tau: float, gamma: float) -> None:
        super().__init__()
        self.num_samples = None if num_samples is None else check_positive_int(num_samples, "num_samples")
        self.tau = check_real(tau, "tau", 0.0)
        self.gamma = check_real(gamma, "gamma", 0.0, 1.0, high_open=False)
        size = self.num_samples or 0
        self.register_buffer("log_u", torch.full((size,), math.nan))
        self.register_buffer("log_v", torch.full((size,), math.nan))

    @property
    def capacity(self) -> int:
        """Ids the per-sample buffers hold now (``num_samples`` when fixed)."""
        return self.log_u.numel()

    @torch.no_grad()
    def _grow(self, needed: int) -> None:
        """Make the per-sample buffers hold ids ``< needed`` (NaN-padded, at least doubling)."""
        if self.num_samples is not None or needed <= self.capacity:
            return
        size = max(needed, 2 * self.capacity)
        for name in self._per_sample_buffers:
            old = getattr(self, name)
            grown = torch.full((size,), math.nan, dtype=old.dtype, device=old.device)
            grown[: old.numel()] = old
            setattr(self, name, grown)

    def _gather(self, buf: Tensor, index: Tensor) -> Tensor:
        """``buf[index]`` with NaN (never seen) for ids beyond a growable buffer."""
        index = index.to(buf.device)
        if self.num_samples is not None:  # ids already checked against N: no device sync
            return buf[index]
        inside = index < buf.numel()
        if bool(inside.all()):
            return buf[index]
        out = torch.full(index.shape, math.nan, dtype=buf.dtype, device=buf.device)
        out[inside] = buf[index[inside]]
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # A growable loss takes the saved buffers' size (a checkpoint of a grown loss).
        if self.num_samples is None:
            for name in self._per_sample_buffers:
                saved = state_dict.get(prefix + name)
                if saved is not None and saved.shape != getattr(self, name).shape:
                    setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        return super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- state management
    @torch.no_grad()
    def forget(self, ids: Tensor | Iterable[int]) -> None:
        """Mark ``ids`` unseen (NaN), e.g. samples evicted from the replay memory.

        The next visit of such an id initialises its state from the batch estimate.
        Raises ``ValueError`` (before changing anything) if an id is outside ``[0, N)``.
        """
        ids = torch.as_tensor(ids, dtype=torch.long).flatten()
        check_ids(ids, self.num_samples, "sample id")
        ids = ids.to(self.log_u.device)
        ids = ids[ids < self.capacity]  # ids beyond a growable buffer are unseen already
        self.log_u[ids] = math.nan
        self.log_v[ids] = math.nan

    @torch.no_grad()
    def reset(self) -> None:
        """Forget every estimate (all state buffers back to NaN), e.g. at a task start for
        ablations. Non-persistent buffers (settings of the current experience) are kept."""
        for name, buf in self.named_buffers(recurse=False):
            if name not in self._non_persistent_buffers_set:
                buf.fill_(math.nan)

    @torch.no_grad()
    def sample_objective(self, ids: Tensor | Iterable[int] | None = None) -> Tensor:
        """Current per-sample objective estimate ``τ·(log u_i + log v_i)``.

        Args:
            ids: sample ids (any integer shape); ``None`` means all ``N`` ids.
        Returns:
            Tensor shaped like ``ids`` (or ``[capacity]``), NaN for ids never seen.
        """
        if ids is None:
            return self.tau * (self.log_u + self.log_v)
        ids = torch.as_tensor(ids, dtype=torch.long)
        check_ids(ids, self.num_samples, "sample id")
        return self.tau * (self._gather(self.log_u, ids) + self._gather(self.log_v, ids))

    # ----------------------------------------------------------------- shared computation
    def _prepare(self, image: Tensor, text: Tensor, labels: Tensor,
                 index: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Check shapes and ids; return inputs in ``promote_types(input, float32)``."""
        if image.dim() != 2 or text.shape != image.shape:
            raise ValueError("image_features and text_features must both be [B, D] with the "
                             f"same shape, got {tuple(image.shape)} and {tuple(text.shape)}")
        b = image.shape[0]
        for name, t in (("labels", labels), ("index", index)):
            if t.shape != (b,):
                raise ValueError(f"{name} must have shape [{b}], got {tuple(t.shape)}")
        largest = check_batch_ids(index, self.num_samples)
        # a fixed N never grows; the capacity is read first: _grow's no_grad costs ~4 µs a call
        if self.training and self.num_samples is None and largest is not None and largest >= self.capacity:
            self._grow(largest + 1)
        dtype = torch.promote_types(torch.promote_types(image.dtype, text.dtype), torch.float32)
        device = image.device
        return (image.to(dtype), text.to(dtype), labels.to(device=device, dtype=torch.long),
                index.to(device=device, dtype=torch.long))

    @staticmethod
    def _extra_negatives(extra: Tensor | None, image: Tensor) -> Tensor | None:
        """``extra`` (``[E, D]`` prompts) in ``image``'s dtype and device, or None when there is
        none (None or ``E = 0``: the loss is then exactly the in-batch one). Raises ``ValueError``
        unless ``extra`` is 2-D with ``image``'s width ``D``."""
        if extra is None:
            return None
        if extra.dim() != 2 or extra.shape[1] != image.shape[1]:
            raise ValueError(f"extra_negatives must be [E, {image.shape[1]}] prompt embeddings, got "
                             f"shape {tuple(extra.shape)}")
        if extra.shape[0] == 0:
            return None
        return extra.to(device=image.device, dtype=image.dtype)

    def _advance(self, buf: Tensor, index: Tensor, log_new: Tensor, valid: Tensor,
                 all_valid: bool) -> Tensor:
        """Moving-average update of ``buf[index]`` for the ``valid`` rows (``all_valid``:
        whether every row is, as the caller has read once).

        Returns the post-update log values for the batch (compute dtype; old values, possibly
        NaN, on invalid rows). Writes them back only in training mode.
        """
        old = self._gather(buf, index).to(device=log_new.device, dtype=log_new.dtype)
        new = log_moving_average(old, log_new, self.gamma)
        if all_valid:  # the usual batch: no row to keep, no mask to apply (three operations fewer)
            if self.training:
                buf[index.to(buf.device)] = new.to(device=buf.device, dtype=buf.dtype)
            return new
        new = torch.where(valid, new, old)
        if self.training and bool(valid.any()):
            rows = index[valid].to(buf.device)
            buf[rows] = new[valid].to(device=buf.device, dtype=buf.dtype)
        return new

    def _row_terms(self, h1: Tensor, h2: Tensor, rows: NegativeRows, index: Tensor,
                   estimate: bool = True) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-row surrogates whose gradients are the estimators of ``∇τ·log g₁,₂(i)``.

        Args:
            h1: ``[B, B+E]`` live image-anchor scores: the ``B`` in-batch columns, then ``E ≥ 0``
                extra negative columns (prompts of seen classes absent from the batch).
            h2: ``[B, B]`` live prompt-anchor scores.
            rows: the negatives of each row: ``rows.neg`` ``[B, B]`` (``neg[i, j]`` iff
                ``j ∈ B_i``) for ``h2``, ``rows.neg1`` ``[B, B+E]`` for ``h1``, and their counts.
            index: ``[B]`` sample ids.
            estimate: compute the estimate below (False: None, two operations fewer).
        Returns:
            ``r1, r2`` (``[B]``, ``r_i = Σ_j W_ij·h_ij`` with detached ``W``; 0 on rows without a
            negative for that term) and the post-update per-sample estimate
            ``τ·(log u_i + log v_i)`` (``[B]``, detached). A row counts (``rows.valid``) if it
            has a negative in either term; each of ``u``, ``v`` is written only on the rows
            with a negative for it.
        """
        log_count1, log_count2 = rows.log_count1, rows.log_count2
        with torch.no_grad():
            # Masked entries become -inf so that logsumexp and exp ignore them exactly.
            # (In-place ops on fresh [B, B] temporaries: this block is most of the loss's cost.)
            x1 = (h1.detach() / self.tau).masked_fill_(rows.not_neg1, -math.inf)
            x2 = (h2.detach() / self.tau).masked_fill_(rows.not_neg, -math.inf)
            log_u = self._advance(self.log_u, index, torch.logsumexp(x1, 1) - log_count1,
                                  rows.valid1, rows.all1)
            log_v = self._advance(self.log_v, index, torch.logsumexp(x2, 1) - log_count2,
                                  rows.valid2, rows.all2)
            # W_ij = exp(h_ij/τ − log u_i)/|B_i| ≤ 1/γ. Rows without negatives get W = 0 (their
            # log u may be NaN, and 0·h keeps the gradient finite).
            w1 = x1.sub_((log_u + log_count1)[:, None]).exp_()
            w2 = x2.sub_((log_v + log_count2)[:, None]).exp_()
            if not rows.all1:
                w1.masked_fill_(~rows.valid1[:, None], 0.0)
            if not rows.all2:
                w2.masked_fill_(~rows.valid2[:, None], 0.0)
            est = self.tau * (log_u + log_v) if estimate else None
        return (w1 * h1).sum(dim=1), (w2 * h2).sum(dim=1), est

    def extra_repr(self) -> str:
        return f"num_samples={self.num_samples}, tau={self.tau}, gamma={self.gamma}"
