"""GDRO under uniform sampling: with inclusion weights, the expected per-class share of the
gradient is softmax(z/λ) over the classes that can be drawn, even when old classes are rare in
batches; averaging over the classes present in each batch (the old estimator) is not."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from avalanche_clip.losses import GDROLoss
from avalanche_clip.training.batching import ReplayBatchSampler

# D_t ∪ M: 9 samples of the new class 0, 2 of memory class 1, 1 of memory class 2; batch 4.
TARGETS = [0] * 9 + [1] * 2 + [2]
BATCH = 4
Z = torch.tensor([0.2, 0.9, 1.4], dtype=torch.float64)  # old classes are harder
LAMBDA = 0.5


def _loss(inclusion: bool) -> GDROLoss:
    loss = GDROLoss(num_samples=len(TARGETS), num_classes=3, dro_lambda=LAMBDA).double().eval()
    loss.class_loss.copy_(Z)
    if inclusion:
        sampler = ReplayBatchSampler(9, 3, batch_size=BATCH, schedule=[1])
        loss.set_class_inclusion(sampler.inclusion_probabilities(TARGETS, 3))
    return loss


def _expected_class_share(loss: GDROLoss) -> torch.Tensor:
    """E over every equally likely batch of the per-class sum of the estimator's row weights
    (each row's gradient is its weight times the gradient of its own pair terms), normalised."""
    total = torch.zeros(3, dtype=torch.float64)
    subsets = list(itertools.combinations(range(len(TARGETS)), BATCH))
    for subset in subsets:
        labels = torch.tensor([TARGETS[i] for i in subset])
        # per-sample estimates equal to their class's z: the moving average of z stays at Z
        est = Z[labels]
        weights = loss._row_weights(labels, torch.ones(BATCH, dtype=torch.bool), est)
        total.index_add_(0, labels, weights)
    return total / len(subsets)


def test_inclusion_weights_give_each_class_its_dro_share_when_old_classes_are_rare():
    expected = torch.softmax(Z / LAMBDA, dim=0)
    share = _expected_class_share(_loss(inclusion=True))
    torch.testing.assert_close(share / share.sum(), expected, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(share.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_averaging_over_present_classes_underweights_the_rare_old_classes():
    expected = torch.softmax(Z / LAMBDA, dim=0)
    share = _expected_class_share(_loss(inclusion=False))
    share = share / share.sum()
    # class 2 (one sample, in a third of the batches) gets less than its DRO weight (0.48 vs 0.69)
    assert share[2] < 0.8 * expected[2]
    assert share[0] > expected[0]


def test_the_loss_with_inclusion_weights_is_unbiased_in_its_gradient():
    """End to end through forward/backward: the mean gradient over all batches equals the
    gradient of Σ_k softmax(z/λ)_k · (mean over class k of the per-sample surrogate)."""
    torch.manual_seed(0)
    dim = 5
    image = torch.nn.functional.normalize(torch.randn(len(TARGETS), dim, dtype=torch.float64), dim=1)
    prompts = torch.nn.functional.normalize(torch.randn(3, dim, dtype=torch.float64), dim=1)
    labels = torch.tensor(TARGETS)
    subsets = list(itertools.combinations(range(len(TARGETS)), BATCH))
    mean_grad = torch.zeros_like(image)
    for subset in subsets:
        loss = _loss(inclusion=True)
        index = torch.tensor(subset)
        feats = image.clone().requires_grad_()
        value = loss(feats[index], prompts[labels[index]], labels[index], index)
        value.backward()
        mean_grad += feats.grad / len(subsets)
    assert torch.isfinite(mean_grad).all() and mean_grad.abs().sum() > 0
    # Rare classes get gradient in proportion to their DRO weight: compare class-2's share of
    # the gradient norm with and without the correction.
    uncorrected = torch.zeros_like(image)
    for subset in subsets:
        loss = _loss(inclusion=False)
        index = torch.tensor(subset)
        feats = image.clone().requires_grad_()
        loss(feats[index], prompts[labels[index]], labels[index], index).backward()
        uncorrected += feats.grad / len(subsets)
    rare = labels == 2
    assert mean_grad[rare].norm() > 1.5 * uncorrected[rare].norm()


def test_a_class_absent_from_the_training_set_leaves_the_softmax():
    loss = GDROLoss(num_samples=10, num_classes=3, dro_lambda=1.0).double().eval()
    loss.class_loss.copy_(torch.tensor([0.0, 5.0, 0.0], dtype=torch.float64))  # class 1: hard
    loss.set_class_inclusion(torch.tensor([1.0, 0.0, 1.0]))  # but no sample of it is left
    labels = torch.tensor([0, 2])
    weights = loss._row_weights(labels, torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(weights, torch.tensor([0.5, 0.5], dtype=torch.float64))
    assert loss.class_loss[1] == 5.0  # kept for later


def test_bad_inclusion_probabilities_are_refused():
    loss = GDROLoss(num_samples=10, num_classes=3)
    with pytest.raises(ValueError, match=r"shape \[3\]"):
        loss.set_class_inclusion(torch.ones(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss.set_class_inclusion(torch.tensor([0.5, 1.5, 0.2]))
    loss.set_class_inclusion(torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="class 1 is in the batch but its inclusion probability is 0"):
        loss(torch.nn.functional.normalize(torch.randn(2, 4), dim=1),
             torch.nn.functional.normalize(torch.randn(2, 4), dim=1), torch.tensor([0, 1]),
             torch.tensor([0, 1]))
    loss.set_class_inclusion(None)
    assert math.isnan(float(loss.class_inclusion[0]))
    assert "class_inclusion" not in loss.state_dict()  # a setting of the experience, not state
