"""GDRO on a batch of one class: with the seen classes' prompts it contrasts each image with the
other classes' prompts (no state read or written); batches of two or more classes are unchanged,
bit for bit."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from conftest import hinge, make_batch

from avalanche_clip.losses import GDROLoss

TAU, MARGIN = 0.5, 0.5


def _loss():
    return GDROLoss(num_samples=64, num_classes=5, tau=TAU, margin=MARGIN, dro_lambda=1.0,
                    gamma=0.9, class_gamma=0.9).double()


def _grads(loss_fn, image, text, labels, index, leaves, **options):
    value = loss_fn(image, text, labels, index, **options)
    grads = torch.autograd.grad(value, leaves, allow_unused=True, retain_graph=True)
    return value.detach(), [None if g is None else g.clone() for g in grads]


@pytest.mark.parametrize("classes", [2, 3])
def test_batches_of_several_classes_are_bit_identical_with_or_without_class_prompts(classes):
    image, text, labels, (_, prompts) = make_batch(12, classes, num_classes=5)
    index = torch.arange(12)
    plain, given = _loss(), _loss()
    for step in range(2):  # the second call reads the state the first wrote
        a = _grads(plain, image, text, labels, index, [image, prompts])
        b = _grads(given, image, text, labels, index, [image, prompts],
                   class_prompts=(prompts, torch.arange(5)))
        assert torch.equal(a[0], b[0]), step
        for ga, gb in zip(a[1], b[1], strict=True):
            assert torch.equal(ga, gb), step
    for key, value in plain.state_dict().items():
        assert torch.equal(given.state_dict()[key].nan_to_num(-1), value.nan_to_num(-1)), key


def test_a_one_class_batch_contrasts_with_the_other_seen_prompts_and_keeps_the_state():
    g = torch.Generator().manual_seed(3)
    prompts = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    image = F.normalize(torch.randn(6, 8, generator=g, dtype=torch.float64), dim=1).requires_grad_()
    labels = torch.full((6,), 2)
    seen = torch.tensor([0, 2, 4])  # classes 1 and 3 are not seen: never negatives
    index = torch.arange(6)
    loss = _loss()
    before = copy.deepcopy(loss.state_dict())

    zero, _ = _grads(loss, image, prompts[labels], labels, index, [image, prompts])
    assert float(zero) == 0.0  # without prompts: nothing to contrast, as before

    value, grads = _grads(loss, image, prompts[labels], labels, index, [image, prompts],
                          class_prompts=lambda: (prompts[seen], seen))
    assert float(value) > 0
    # reference: ∇ (1/B) Σ_i τ·log mean_{c∈{0,4}} exp(ℓ(s(i,2) − s(i,c))/τ)
    s = image @ prompts.T
    a = hinge(s[:, [2]] - s[:, [0, 4]], MARGIN)
    reference = (TAU * torch.logsumexp(a / TAU, dim=1) - TAU * torch.log(torch.tensor(2.0))).mean()
    expected = torch.autograd.grad(reference, [image, prompts])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
    assert float(grads[1][[1, 3]].abs().sum()) == 0.0  # unseen classes untouched
    for key, saved in before.items():
        assert torch.equal(loss.state_dict()[key].nan_to_num(-1), saved.nan_to_num(-1)), key


def test_a_one_class_batch_with_no_other_seen_class_stays_zero():
    image, text, labels, (_, prompts) = make_batch(4, 1, num_classes=5)
    value = _loss()(image, text, labels, torch.arange(4), class_prompts=(prompts[:1], torch.tensor([0])))
    assert float(value.detach()) == 0.0 and value.requires_grad
