"""GCL's instance-negative rows kept across steps equal those computed anew, and the loss with
them equals the loss without them bit for bit (losses._negative_rows)."""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss
from avalanche_clip.losses._negative_rows import InstanceRowsCache, NegativeRows

_FIELDS = ("neg", "neg1", "not_neg", "not_neg1", "count1", "count2", "log_count1", "log_count2",
           "valid1", "valid2", "valid")


def _fresh(b: int, extra: int, dtype: torch.dtype) -> NegativeRows:
    neg = torch.ones(b, b, dtype=torch.bool)
    neg.fill_diagonal_(False)
    neg1 = None if extra == 0 else torch.cat([neg, torch.ones(b, extra, dtype=torch.bool)], dim=1)
    return NegativeRows(neg, neg1, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cached_rows_equal_rows_of_the_masks(dtype):
    cache = InstanceRowsCache()
    for b in range(1, 7):
        for extra in range(4):
            cached, fresh = cache.get(b, extra, torch.device("cpu"), dtype), _fresh(b, extra, dtype)
            for field in _FIELDS:
                a, e = getattr(cached, field), getattr(fresh, field)
                assert a.dtype == e.dtype and torch.equal(a, e), (b, extra, field)
            assert (cached.all1, cached.all2, cached.n_valid) == (fresh.all1, fresh.all2, fresh.n_valid)
            assert cached.n_valid == (b if b > 1 or extra else 0)


def test_the_cache_keeps_the_most_recent_and_returns_the_same_rows():
    cache = InstanceRowsCache(size=2)
    cpu = torch.device("cpu")
    first = cache.get(4, 0, cpu, torch.float32)
    assert cache.get(4, 0, cpu, torch.float32) is first
    cache.get(5, 0, cpu, torch.float32)
    cache.get(4, 0, cpu, torch.float32)  # used again: the oldest is now (5, 0)
    cache.get(6, 0, cpu, torch.float32)
    assert cache.get(4, 0, cpu, torch.float32) is first
    assert cache.get(4, 0, cpu, torch.float64) is not first


class _Uncached:
    """Stands in for the cache: rows computed anew on every call."""

    def get(self, b, extra, device, dtype):  # type: ignore[no-untyped-def]
        return _fresh(b, extra, dtype)


@pytest.mark.parametrize("seed", range(4))
def test_gcl_with_kept_rows_equals_gcl_computing_them_each_step(seed):
    rng = random.Random(seed)
    torch.manual_seed(seed)
    kept, fresh = GCLLoss(num_samples=None, tau=0.07, gamma=0.8), GCLLoss(num_samples=None, tau=0.07, gamma=0.8)
    fresh._instance_rows = _Uncached()
    dim = 8
    for step in range(25):
        b, extra = rng.choice([1, 2, 5, 8]), rng.choice([0, 0, 1, 3])
        image = F.normalize(torch.randn(b, dim), dim=1)
        labels = torch.randint(0, 6, (b,))
        prompts = F.normalize(torch.randn(6, dim), dim=1)
        index = torch.tensor(rng.sample(range(40), b))
        extra_prompts = F.normalize(torch.randn(extra, dim), dim=1) if extra else None
        results = []
        for loss in (kept, fresh):
            x = image.clone().requires_grad_()
            value = loss(x, prompts[labels], labels, index, extra_prompts)
            value.backward()
            results.append((value.detach(), x.grad))
        (v1, g1), (v2, g2) = results
        assert torch.equal(v1, v2) and torch.equal(g1, g2), step
        for name in ("log_u", "log_v"):  # NaN: never seen
            torch.testing.assert_close(getattr(kept, name), getattr(fresh, name), rtol=0, atol=0,
                                       equal_nan=True)
