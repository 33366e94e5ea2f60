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
@pytest.mark.parametrize("dtype", [torch.long, torch.int32, torch.int8])
def test_check_batch_ids_agrees_with_the_tensor_checks(values, size, dtype):
    ids = torch.tensor(values, dtype=dtype)
    assert _fast(ids, size) == _reference(ids, size)
    square = torch.tensor(values[:4] + [0] * (4 - len(values[:4])), dtype=dtype).view(2, 2)  # any shape
    assert _fast(square, size) == _reference(square, size)


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


@pytest.mark.parametrize("name", ["gcl", "gdro"])
@pytest.mark.parametrize("negatives", ["instance", "class"])
def test_the_all_valid_shortcut_changes_no_bit(name, negatives, monkeypatch):
    """The moving-average update without its row masks (every row has a negative) against the
    masked update on the same batches: loss, gradients and state equal to the last bit."""
    from avalanche_clip.losses import GCLLoss, GDROLoss
    from avalanche_clip.losses._moving_average import PairwiseMovingAverage

    def make():
        if name == "gcl":
            return GCLLoss(num_samples=40, tau=0.07, gamma=0.8, negatives=negatives)
        return GDROLoss(num_samples=40, num_classes=5, tau=0.5, gamma=0.8)

    def steps(loss):
        generator = torch.Generator().manual_seed(1)
        out = []
        for _ in range(4):
            image = torch.nn.functional.normalize(torch.randn(12, 8, generator=generator), dim=1).requires_grad_()
            prompts = torch.nn.functional.normalize(torch.randn(5, 8, generator=generator), dim=1)
            labels = torch.randint(0, 5, (12,), generator=generator)
            ids = torch.randperm(40, generator=generator)[:12]
            value = loss(image, prompts[labels], labels, ids)
            value.backward()
            out.append((value.detach(), image.grad.clone(), loss.log_u.clone(), loss.log_v.clone()))
        return out

    fast = steps(make())
    real = PairwiseMovingAverage._advance
    shortcuts = []

    def masked(self, buf, index, log_new, valid, all_valid):
        shortcuts.append(all_valid)
        return real(self, buf, index, log_new, valid, False)

    monkeypatch.setattr(PairwiseMovingAverage, "_advance", masked)
    slow = steps(make())
    assert any(shortcuts)  # the shortcut would have been taken
    for a, b in zip(fast, slow, strict=True):
        for x, y in zip(a, b, strict=True):
            assert torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0))
