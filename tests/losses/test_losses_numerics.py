"""Stability at small τ, autocast, and degenerate batches."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from avalanche_clip.losses import GCLLoss, GDROLoss

N = 64
FP32_EXP_LIMIT = math.log(torch.finfo(torch.float32).max)  # ≈ 88.7


def _losses(dtype=torch.float64):
    return [GCLLoss(N, tau=0.005, gamma=0.9, negatives="instance").to(dtype),
            GCLLoss(N, tau=0.005, gamma=0.9, negatives="class").to(dtype),
            GDROLoss(N, 6, tau=0.005, margin=1.0, dro_lambda=0.1, gamma=0.9,
                     class_gamma=0.9).to(dtype)]


def _steps(seed: int = 0):
    """Three batches over overlapping ids, float64 leaves; the last ids revisit the first."""
    g = torch.Generator().manual_seed(seed)
    prompts = F.normalize(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    out = []
    for ids in (torch.arange(0, 16), torch.arange(8, 24), torch.arange(0, 16)):
        image = F.normalize(torch.randn(16, 4, generator=g, dtype=torch.float64), dim=1)
        labels = torch.randint(6, (16,), generator=g)
        out.append((image, prompts, labels, ids))
    return out


@pytest.mark.parametrize("which", [0, 1, 2], ids=["gcl-instance", "gcl-class", "gdro"])
def test_small_tau_float32_is_finite_and_accurate(which):
    """τ = 0.005, m = 1: exp(h/τ) overflows float32, yet loss and gradients stay finite and
    agree with the same computation in float64."""
    f32, f64 = _losses(torch.float32)[which], _losses(torch.float64)[which]
    for image, prompts, labels, ids in _steps():
        results = []
        for fn, dtype in ((f32, torch.float32), (f64, torch.float64)):
            img = image.to(dtype, copy=True).requires_grad_()
            pr = prompts.to(dtype, copy=True).requires_grad_()
            loss = fn(img, pr[labels], labels, ids)
            loss.backward()
            results.append((loss, img.grad, pr.grad))
        (l32, gi32, gp32), (l64, gi64, gp64) = results
        assert l32.dtype == torch.float32
        for t in (l32, gi32, gp32):
            assert torch.isfinite(t).all()
        torch.testing.assert_close(l32.double(), l64, rtol=1e-3, atol=1e-4)
        torch.testing.assert_close(gi32.double(), gi64, rtol=1e-3, atol=1e-3)
        torch.testing.assert_close(gp32.double(), gp64, rtol=1e-3, atol=1e-3)
    # The state really is beyond float32's exp range: a linear-domain u would be inf.
    assert float(f32.log_u.nan_to_num(0).max()) > FP32_EXP_LIMIT


@pytest.mark.parametrize("which", [0, 1, 2], ids=["gcl-instance", "gcl-class", "gdro"])
def test_autocast_bf16_keeps_float32_math(which):
    image, prompts, labels, ids = _steps()[0]
    image, prompts = image.float(), prompts.float()
    plain, cast = _losses(torch.float32)[which], _losses(torch.float32)[which]

    img_a = image.clone().requires_grad_()
    want = plain(img_a, prompts[labels], labels, ids)
    want.backward()

    # fp32 inputs inside a CPU bf16 autocast region: the matmul must not drop to bf16.
    img_b = image.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = cast(img_b, prompts[labels], labels, ids)
    got.backward()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(img_b.grad, img_a.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cast.log_u, plain.log_u, equal_nan=True, rtol=1e-6, atol=1e-6)

    # bf16 features (as a bf16 model would emit): computed in float32, finite.
    img_c = image.clone().requires_grad_()
    fresh = _losses(torch.float32)[which]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fresh(img_c.bfloat16(), prompts[labels].bfloat16(), labels, ids)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(img_c.grad).all()
    assert img_c.grad.abs().max() > 0


def _assert_zero_and_untouched(loss_fn, image, text, labels, ids):
    before = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    loss = loss_fn(image, text, labels, ids)
    assert loss.requires_grad and loss.item() == 0.0
    loss.backward()
    assert image.grad is not None and torch.equal(image.grad, torch.zeros_like(image))
    for k, v in loss_fn.state_dict().items():
        torch.testing.assert_close(v, before[k], equal_nan=True, rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: GCLLoss(N, negatives="class"),
                                  lambda: GDROLoss(N, 3)], ids=["gcl-class", "gdro"])
def test_one_class_batch_contributes_nothing(make):
    loss_fn = make()
    # Seed some state first, so "untouched" is about real values, not only NaN.
    image = F.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    prompts = F.normalize(torch.randn(3, 4), dim=1)
    loss_fn(image, prompts[labels], labels, torch.arange(6))
    image = F.normalize(torch.randn(4, 4), dim=1).requires_grad_()
    labels = torch.full((4,), 1)
    _assert_zero_and_untouched(loss_fn, image, prompts[labels], labels, torch.tensor([0, 1, 7, 9]))


@pytest.mark.parametrize("make", [lambda: GCLLoss(N), lambda: GCLLoss(N, negatives="class"),
                                  lambda: GDROLoss(N, 3)],
                         ids=["gcl-instance", "gcl-class", "gdro"])
def test_one_sample_batch_contributes_nothing(make):
    image = F.normalize(torch.randn(1, 4), dim=1).requires_grad_()
    text = F.normalize(torch.randn(1, 4), dim=1)
    _assert_zero_and_untouched(make(), image, text, torch.tensor([2]), torch.tensor([5]))


def test_empty_batch_is_zero():
    image = torch.zeros(0, 4, requires_grad=True)
    for loss_fn in (GCLLoss(N), GDROLoss(N, 3)):
        loss = loss_fn(image, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long),
                       torch.zeros(0, dtype=torch.long))
        loss.backward()
        assert loss.item() == 0.0
