"""``num_samples=None``: the per-id state grows as ids arrive, with the same math as a
preallocated loss (same values, gradients and states on the ids both hold)."""

from __future__ import annotations

import math

import pytest
import torch

from avalanche_clip.losses import GCLLoss, GDROLoss

LOSSES = {
    "gcl": lambda n: GCLLoss(n, tau=0.1, gamma=0.5).double(),
    "gdro": lambda n: GDROLoss(n, 4, tau=0.3, margin=0.5, dro_lambda=0.5, gamma=0.5,
                               class_gamma=0.7).double(),
}


def _steps(ref, loss, id_batches):
    """Loss values and image gradients over a sequence of batches (ids given per batch)."""
    out = []
    for step, ids in enumerate(id_batches):
        image, text, labels, _ = ref.make_batch(len(ids), 4, seed=step, num_classes=4)
        value = loss(image, text, labels, torch.tensor(ids))
        (grad,) = torch.autograd.grad(value, image)
        out.append((value.detach(), grad))
    return out


@pytest.mark.parametrize("name", LOSSES)
def test_a_growing_loss_equals_a_preallocated_one(ref, name):
    # ids revisited across batches, arriving out of order, the largest late
    batches = [[3, 0, 7, 1, 5, 2], [7, 3, 11, 9, 0, 8], [40, 3, 9, 1, 11, 2], [5, 40, 0, 8, 7, 6]]
    fixed, growing = LOSSES[name](50), LOSSES[name](None)
    for (a, ga), (b, gb) in zip(_steps(ref, fixed, batches), _steps(ref, growing, batches), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(ga, gb, rtol=0, atol=0)
    assert growing.capacity >= 41 and fixed.capacity == 50
    for key in ("log_u", "log_v"):
        held = getattr(growing, key)
        torch.testing.assert_close(held, getattr(fixed, key)[: held.numel()], rtol=0, atol=0,
                                   equal_nan=True)
        assert torch.isnan(getattr(fixed, key)[held.numel():]).all()
    if name == "gdro":
        torch.testing.assert_close(growing.class_loss, fixed.class_loss, rtol=0, atol=0, equal_nan=True)


def test_growth_doubles_and_ids_beyond_read_as_unseen(ref):
    loss = GCLLoss(None, tau=0.1)
    assert loss.capacity == 0 and torch.isnan(loss.objective())
    image, text, labels, _ = ref.make_batch(4, 2)
    loss(image, text, labels, torch.tensor([0, 1, 2, 3]))
    assert loss.capacity == 4
    loss(image, text, labels, torch.tensor([4, 5, 6, 7]))
    assert loss.capacity == 8  # max(needed 8, 2 × 4)
    loss(image, text, labels, torch.tensor([0, 1, 2, 30]))
    assert loss.capacity == 31
    assert torch.isnan(loss.sample_objective([100, 500])).all()  # never seen, nothing grown
    assert torch.isfinite(loss.sample_objective([0, 30])).all()
    loss.forget([30, 1000])  # an id beyond the buffers is unseen already: no error
    assert torch.isnan(loss.sample_objective([30])).all() and loss.capacity == 31
    with pytest.raises(ValueError, match=r"sample id -1 is outside \[0, inf\)"):
        loss(image, text, labels, torch.tensor([0, 1, 2, -1]))


def test_evaluation_reads_unseen_ids_without_growing(ref):
    loss = GCLLoss(None, tau=0.1)
    image, text, labels, _ = ref.make_batch(4, 2)
    loss(image, text, labels, torch.tensor([0, 1, 2, 3]))
    state = {k: v.clone() for k, v in loss.state_dict().items()}
    loss.eval()
    value = loss(image, text, labels, torch.tensor([0, 1, 2, 90]))
    assert math.isfinite(float(value.detach())) and loss.capacity == 4
    for key, saved in state.items():
        torch.testing.assert_close(loss.state_dict()[key], saved, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("name", LOSSES)
def test_a_grown_state_loads_into_a_fresh_growing_loss(ref, name):
    trained = LOSSES[name](None)
    _steps(ref, trained, [[0, 1, 2, 3, 4, 5], [12, 3, 9, 1, 6, 2]])
    fresh = LOSSES[name](None)
    fresh.load_state_dict(trained.state_dict())
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, rtol=0, atol=0, equal_nan=True)
    after = [[7, 12, 0, 13, 2, 5]]
    for (a, ga), (b, gb) in zip(_steps(ref, trained, after), _steps(ref, fresh, after), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(ga, gb, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="size mismatch"):
        LOSSES[name](5).load_state_dict(trained.state_dict())  # a preallocated N stays N


def test_gdro_still_requires_num_classes():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1, got None"):
        GDROLoss()
