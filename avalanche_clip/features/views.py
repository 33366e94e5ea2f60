"""Augmented views in the cached-feature protocol (``feature_views`` V).

Contrastive methods (Co2L, CaSSLe) are defined on two augmented views of each image; a cache
that encodes each image once, un-augmented, gives them one. With ``feature_views = V > 1`` the
cache also stores V augmented views of every training image, and training draws among them:

- **Building** (once per model, weights, data, split point, train transform and V): view ``v``
  of training image ``i`` is ``frozen(train_transform(image_i))`` with torch's CPU generator
  seeded by ``view_seed(v, i)`` (a hash of ``(v, i)``) for that one item. It therefore does not
  depend on the batch it was encoded in, the loader's workers, the process or the run's seed:
  the views are a property of the data, like the un-augmented features. Stored as
  ``views.pt`` ``[V, N_train, ...]`` in an entry of its own (:func:`views_parts`), so the
  un-augmented entry (``feature_views = 1``, today's) keeps its key and its files.
- **Training items**: :class:`ViewStack` gives image ``i`` as ``[1 + V, ...]``, slot 0 the
  un-augmented features and slots ``1 .. V`` the views. The training transform
  :class:`DrawViews` draws ``π = randperm(V)`` from torch's CPU generator and returns view
  ``π_0`` (one view per item) or the tuple ``(π_0, .., π_{k−1})`` (``k`` views per item, distinct).
  The protocol's loader seeds that generator per item by its place in the global batches
  (:mod:`avalanche_clip.training.seeded_items`), and every method of a seed gets the same
  batches, so at a given (seed, experience, step, position) every method draws the same ``π``:
  the same first view for all, and the two-view methods' second view on top of it.
- **Evaluation** reads slot 0 (:class:`UnaugmentedView`): test data (stored ``[N_test, 1, ...]``)
  and training data in the eval group (iCaRL's class means, herding) stay un-augmented.

With ``k`` views an item's ``x`` is a tuple of ``k`` tensors; the strategies' base keeps the
first in ``mb_x`` (what a one-view method sees) and all ``k`` in ``mb_views``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from avalanche_clip.common.values import check_int

_SEED_MASK = (1 << 63) - 1
VIEWS_FORMAT = 1  # how views are seeded and stored (part of the views entry's key)


def view_seed(view: int, index: int) -> int:
    """The seed of view ``view`` of training image ``index`` (63 bits of a SHA-256)."""
    digest = hashlib.sha256(f"feature-view/{int(view)}/{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & _SEED_MASK


class SeededView(Dataset):
    """``dataset`` (random training transform) with item ``i`` drawn as view ``view``: torch's
    CPU generator is seeded by :func:`view_seed` for that item, then put back as it was."""

    def __init__(self, dataset: Any, view: int) -> None:
        self.dataset, self.view = dataset, int(view)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        saved = torch.get_rng_state()
        try:
            torch.default_generator.manual_seed(view_seed(self.view, index))
            return self.dataset[index]
        finally:
            torch.set_rng_state(saved)


def check_views(views: Any, views_per_item: Any) -> tuple[int, int]:
    """``(V, k)`` as ints; ``ValueError`` unless ``V >= 1`` and ``1 <= k``. ``k`` is capped at
    ``V`` (a two-view method on a one-view cache gets one view)."""
    views = int(check_int("feature_views", views, 1))
    return views, min(int(check_int("views_per_item", views_per_item, 1)), views)


class ViewStack(Dataset):
    """Item ``i``: ``([1 + V, ...], y_i)``, the un-augmented features then the V views.

    Args:
        unaugmented: ``[N, ...]`` the eval-transform features.
        views: ``[V, N, ...]`` the augmented views.
        targets: ``N`` labels.
    """

    def __init__(self, unaugmented: torch.Tensor, views: torch.Tensor, targets: Sequence[int]) -> None:
        if views.dim() != unaugmented.dim() + 1 or views.shape[1:] != unaugmented.shape:
            raise ValueError(f"views {tuple(views.shape)} do not match the features "
                             f"{tuple(unaugmented.shape)}: expected [V, *{tuple(unaugmented.shape)}]")
        self.unaugmented, self.views = unaugmented, views
        self.targets = [int(t) for t in targets]
        if len(self.targets) != len(unaugmented):
            raise ValueError(f"{len(unaugmented)} features but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.cat([self.unaugmented[i].unsqueeze(0), self.views[:, i]]), self.targets[i]


class DrawViews:
    """Training transform of a :class:`ViewStack` item: ``k`` distinct views drawn by
    ``randperm(V)`` from torch's CPU generator (module docstring). ``k = 1``: a tensor;
    ``k > 1``: a tuple of ``k`` tensors."""

    def __init__(self, views: int, views_per_item: int) -> None:
        self.views, self.views_per_item = check_views(views, views_per_item)

    def draw(self) -> list[int]:
        """The stack slots ``1 + π_0, .., 1 + π_{k−1}`` of one item (the batched loader of
        :mod:`avalanche_clip.training.batched_items` draws through this too)."""
        # the whole permutation is drawn whatever k, so the first view is the same for every k
        order = torch.randperm(self.views)
        return [1 + v for v in order[: self.views_per_item].tolist()]

    def __call__(self, stack: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        slots = self.draw()
        if self.views_per_item == 1:
            return stack[slots[0]]
        return tuple(stack[slot] for slot in slots)

    def __repr__(self) -> str:
        return f"DrawViews(views={self.views}, views_per_item={self.views_per_item})"


class UnaugmentedView:
    """Eval transform: slot 0 of an item, the un-augmented features."""

    def __call__(self, stack: torch.Tensor) -> torch.Tensor:
        return stack[0]

    def __repr__(self) -> str:
        return "UnaugmentedView()"


__all__ = ["VIEWS_FORMAT", "DrawViews", "SeededView", "UnaugmentedView", "ViewStack", "check_views",
           "view_seed"]
