"""``check_batch_ids`` (one read of a batch's ids) decides as the two tensor checks do."""

from __future__ import annotations

import pytest
import torch

from avalanche_clip.losses._moving_average import check_batch_ids, check_ids, check_unique


def _reference(ids: torch.Tensor, size: int | None) -> str | int | None:
    """What the tensor checks say: the error message, or the largest id (None when empty)."""
    try:
        check_ids(ids, size, "sample id")
        check_unique(ids)
    except (ValueError, TypeError) as err:
        return f"{type(err).__name__}: {err}"
    return int(ids.max()) if ids.numel() else None


def _fast(ids: torch.Tensor, size: int | None) -> str | int | None:
    try:
        return check_batch_ids(ids, size)
    except (ValueError, TypeError) as err:
        return f"{type(err).__name__}: {err}"


@pytest.mark.parametrize("values, size", [
    ([3, 0, 7, 5], 8),
    ([3, 0, 7, 5], None),
    ([3, 0, 8, 5], 8),          # one past the end
    ([3, -1, 2], None),         # negative, growable
    ([4, 2, 4, 9, 2], 10),      # two duplicated ids: the smallest is named
    ([4, 2, 4, 12], 10),        # out of range and duplicated: the range is checked first
    ([], 5),
    ([6], 7),
])
def test_check_batch_ids_agrees_with_the_tensor_checks(values, size):
    ids = torch.tensor(values, dtype=torch.long)
    assert _fast(ids, size) == _reference(ids, size)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_check_batch_ids_refuses_non_integer_ids(dtype):
    ids = torch.zeros(3, dtype=dtype)
    with pytest.raises(TypeError, match=f"sample ids must be an integer tensor, got dtype {dtype}"):
        check_batch_ids(ids, 4)


def test_random_batches_agree():
    generator = torch.Generator().manual_seed(0)
    for _ in range(300):
        ids = torch.randint(-2, 40, (int(torch.randint(0, 12, (1,), generator=generator)),), generator=generator)
        size = None if bool(torch.rand(1, generator=generator) < 0.3) else 37
        assert _fast(ids, size) == _reference(ids, size)
