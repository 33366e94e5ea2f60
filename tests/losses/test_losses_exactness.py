"""Full batch, γ = γ_c = 1: the estimator's gradient is the exact objective's gradient."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from avalanche_clip.losses import GCLLoss, GDROLoss

TOL = {"rtol": 1e-9, "atol": 1e-11}


@pytest.mark.parametrize("negatives", ["instance", "class"])
@pytest.mark.parametrize("per_row", [False, True], ids=["class-prompts", "raw-rows"])
@pytest.mark.parametrize("tau", [0.05, 0.5])
def test_gcl_gradient_is_exact(ref, negatives, per_row, tau):
    image, text, labels, leaves = ref.make_batch(14, 4, per_row=per_row, seed=3)
    n = len(labels)
    gcl = GCLLoss(num_samples=n, tau=tau, gamma=1.0, negatives=negatives).double()
    got = ref.grads(gcl(image, text, labels, torch.arange(n)), leaves)
    want = ref.grads(ref.exact_gcl(image, text, labels, tau, negatives), leaves)
    for g, w in zip(got, want, strict=True):
        assert w.abs().max() > 1e-3  # the check has something to compare
        torch.testing.assert_close(g, w, **TOL)
    # The monitored estimate is the exact objective value here.
    torch.testing.assert_close(gcl.objective(), ref.exact_gcl(image, text, labels, tau,
                                                              negatives).detach(), **TOL)


def test_gcl_negatives_settings_differ(ref):
    """Guards the test above: the two settings are different objectives on this data."""
    image, text, labels, leaves = ref.make_batch(14, 4, seed=3)
    a = ref.grads(ref.exact_gcl(image, text, labels, 0.05, "instance"), leaves)[0]
    b = ref.grads(ref.exact_gcl(image, text, labels, 0.05, "class"), leaves)[0]
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("lam", [0.05, 1.0, 20.0])
@pytest.mark.parametrize("margin", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("per_row", [False, True], ids=["class-prompts", "raw-rows"])
def test_gdro_gradient_is_exact(ref, lam, margin, per_row):
    # num_classes > classes present: unseen classes must not enter K.
    image, text, labels, leaves = ref.make_batch(16, 4, per_row=per_row, seed=5, num_classes=7)
    n, tau = len(labels), 0.3
    gdro = GDROLoss(num_samples=n, num_classes=7, tau=tau, margin=margin, dro_lambda=lam,
                    gamma=1.0, class_gamma=1.0).double()
    got = ref.grads(gdro(image, text, labels, torch.arange(n)), leaves)
    exact = ref.exact_gdro(image, text, labels, tau, margin, lam)
    want = ref.grads(exact, leaves)
    for g, w in zip(got, want, strict=True):
        assert w.abs().max() > 1e-3
        torch.testing.assert_close(g, w, **TOL)
    torch.testing.assert_close(gdro.objective(), exact.detach(), **TOL)
    losses = ref.exact_class_losses(image, text, labels, tau, margin)
    z = gdro.class_loss
    for k in range(7):
        if k in losses:
            torch.testing.assert_close(z[k], losses[k].detach(), **TOL)
        else:
            assert torch.isnan(z[k])


@pytest.mark.parametrize("lam", [1e8, 1e-8])
def test_gdro_lambda_extremes(ref, lam):
    """λ → ∞: the class-balanced mean of L_k; λ → 0: the worst class only."""
    image, text, labels, leaves = ref.make_batch(15, 3, seed=11, num_classes=5)
    n, tau, margin = len(labels), 0.2, 0.5
    gdro = GDROLoss(num_samples=n, num_classes=5, tau=tau, margin=margin, dro_lambda=lam,
                    gamma=1.0, class_gamma=1.0).double()
    got = ref.grads(gdro(image, text, labels, torch.arange(n)), leaves)
    losses = ref.exact_class_losses(image, text, labels, tau, margin)
    values = torch.stack(list(losses.values())).detach()
    assert values.max() - values.min() > 1e-2  # classes differ, so the extremes differ
    q = gdro.class_weights()
    assert torch.isnan(q[3:]).all()
    if lam > 1:
        torch.testing.assert_close(q[:3], torch.ones(3, dtype=q.dtype), rtol=0, atol=1e-6)
        target = sum(losses.values()) / len(losses)
    else:
        worst = int(values.argmax())
        expected = torch.zeros(3, dtype=q.dtype)
        expected[worst] = 3.0
        torch.testing.assert_close(q[:3], expected, rtol=0, atol=1e-12)
        target = losses[worst]
    for g, w in zip(got, ref.grads(target, leaves), strict=True):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-8)


def test_no_avalanche_import():
    code = ("import sys, avalanche_clip.losses; "
            "bad = [m for m in sys.modules if m == 'avalanche' or m.startswith('avalanche.')]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)
