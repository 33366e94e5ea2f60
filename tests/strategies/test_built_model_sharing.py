"""A run's model copy shares the weights its ``trainable`` choice freezes with the kept build
(issue 25): same values as a fresh build, trainable weights its own, frozen weights hashed once a
process, and a build whose frozen weights a run changed in place is built anew."""

from __future__ import annotations

import pytest
import torch

from avalanche_clip.features import fingerprint
from avalanche_clip.models import create_clip, set_trainable
from avalanche_clip.models.trainable import trainable_parameter_names
from avalanche_clip.pipeline.built_models import forget_built_models, fresh_clip


@pytest.fixture(autouse=True)
def _no_kept_builds():
    forget_built_models()
    yield
    forget_built_models()


def _fresh(trainable: str | None = "projections", seed: int = 3):
    return fresh_clip("tiny-clip", None, image_size=None, device="cpu", seed=seed, trainable=trainable).model


def _rebuilt(seed: int = 3) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return create_clip("tiny-clip", None).model.state_dict()


def _frozen(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if not p.requires_grad}


def test_copies_share_only_the_frozen_weights_and_equal_a_fresh_build():
    first = _fresh()
    after_first = torch.rand(4)
    second = _fresh()
    assert torch.equal(torch.rand(4), after_first)  # the generators as the build left them
    reference = _rebuilt()
    for name, value in second.state_dict().items():
        assert torch.equal(value, reference[name]), name
    one, two = dict(first.named_parameters()), dict(second.named_parameters())
    trained = {n for n, p in two.items() if p.requires_grad}
    assert trained and trained == {n for n, p in one.items() if p.requires_grad}
    assert trained == trainable_parameter_names(second, "projections")
    for name in one:
        same_storage = one[name].data_ptr() == two[name].data_ptr()
        assert same_storage == (name not in trained), name  # frozen: shared; trained: copied
        assert one[name] is not two[name]  # each run's own Parameter objects and flags
    with torch.no_grad():  # training one copy leaves the next copy as built
        for p in one.values():
            if p.requires_grad:
                p.add_(1.0)
    third = _fresh()
    for name, value in third.state_dict().items():
        assert torch.equal(value, reference[name]), name


def test_a_copy_without_a_trainable_choice_shares_nothing():
    first, second = _fresh(None), _fresh(None)
    assert all(p.requires_grad for p in second.parameters())
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(first.parameters(), second.parameters(), strict=True))


@pytest.mark.parametrize("change, rebuilt", [("add_", True), ("copy_", True), ("to_double", False)])
def test_a_frozen_weight_changed_in_place_makes_the_next_copy_a_fresh_build(change, rebuilt):
    """``add_`` and ``load_state_dict`` write the shared storage (the build is built anew); a
    dtype move gives the copy's parameters storage of their own (the build is kept)."""
    kept = _fresh()  # its frozen weights are the kept build's storage
    name, _ = next(iter(_frozen(kept).items()))
    first = _fresh()
    frozen = _frozen(first)[name]
    with torch.no_grad():
        if change == "add_":
            frozen.add_(1.0)
        elif change == "copy_":
            first.load_state_dict({name: torch.zeros_like(frozen)}, strict=False)
        else:
            first.double()  # moves every shared tensor's data to a new (float64) storage
    second = _fresh()
    assert (_frozen(second)[name].data_ptr() != _frozen(kept)[name].data_ptr()) == rebuilt
    reference = _rebuilt()
    for key, value in second.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert _frozen(second)[name].dtype == torch.float32


def test_the_frozen_weights_are_hashed_once_a_process(monkeypatch):
    hashed = []
    real = fingerprint._hash_tensors
    monkeypatch.setattr(fingerprint, "_hash_tensors", lambda tensors: hashed.append(1) or real(tensors))
    digests = [fingerprint.tensors_fingerprint(_frozen(_fresh())) for _ in range(3)]
    assert len(set(digests)) == 1 and len(hashed) == 1
    torch.manual_seed(3)
    built = create_clip("tiny-clip", None).model
    set_trainable(built, "projections")
    assert digests[0] == real(_frozen(built))  # the digest of a fresh build's frozen weights
