"""Train / eval flags replayed from a plan equal those the calls leave, whatever changes the
module tree or its trainable choice between calls (models.train_flags)."""

from __future__ import annotations

import copy
import pickle
import random

import pytest
import torch
from torch import nn

from avalanche_clip.models import CLIPClassifier, create_clip
from avalanche_clip.models.train_flags import TrainFlagPlans
from avalanche_clip.models.trainable import freeze_frozen_modules, set_trainable


def _reference(root: nn.Module, mode: bool) -> None:
    """What CLIPClassifier.train does to the flags: every module, then frozen parts to eval."""
    nn.Module.train(root, mode)
    if mode:
        freeze_frozen_modules(root)


def _leaf(rng: random.Random) -> nn.Module:
    return rng.choice([lambda: nn.Linear(2, 2), lambda: nn.BatchNorm1d(2), nn.Dropout, nn.ReLU])()


def _random_tree(rng: random.Random, depth: int = 3) -> nn.Module:
    children = [(_random_tree(rng, depth - 1) if depth and rng.random() < 0.5 else _leaf(rng))
                for _ in range(rng.randint(1, 3))]
    module = nn.Sequential(*children)
    if rng.random() < 0.3:
        module.own = nn.Parameter(torch.zeros(1))
    return module


def _modules(root: nn.Module) -> list[nn.Module]:
    return list(root.modules())


def _mutate(rng: random.Random, root: nn.Module) -> str:
    """One change of the kind a plan must notice (several bypass torch's registration hooks)."""
    modules = _modules(root)
    sequentials = [m for m in modules if isinstance(m, nn.Sequential)]
    params = list(root.parameters())
    kind = rng.choice(["freeze", "insert", "delete", "share", "none-param", "nothing"])
    if kind == "freeze" and params:
        p = rng.choice(params)
        p.requires_grad_(not p.requires_grad)
    elif kind == "insert":
        rng.choice(sequentials).insert(0, _leaf(rng))  # writes _modules directly: no hook
    elif kind == "delete":
        target = rng.choice(sequentials)
        if len(target) > 1:
            del target[0]
    elif kind == "share":  # a module reachable from a second parent (never its own ancestor)
        target = rng.choice(sequentials)
        candidates = [m for m in modules[1:] if target not in list(m.modules())]
        if candidates:
            target.append(rng.choice(candidates))
    elif kind == "none-param":
        owner = rng.choice(modules)
        if owner._parameters:
            owner._parameters[next(iter(owner._parameters))] = None
    return kind


@pytest.mark.parametrize("seed", range(30))
def test_replayed_flags_equal_the_calls_through_random_changes(seed):
    rng = random.Random(seed)
    root = _random_tree(rng)
    plans = TrainFlagPlans()
    for _ in range(40):
        kind = _mutate(random.Random(rng.random()), root)
        twin = copy.deepcopy(root)  # the same tree, set by the calls
        for a, b in zip(_modules(root), _modules(twin), strict=True):  # random flags before
            a.training = b.training = rng.random() < 0.5
        mode = rng.random() < 0.6
        plans.set(root, mode, lambda mode=mode: _reference(root, mode))
        _reference(twin, mode)
        assert [m.training for m in _modules(root)] == [m.training for m in _modules(twin)], kind


def test_a_frozen_part_is_refrozen_from_the_plan_and_unfrozen_by_a_change():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm1d(2), nn.Dropout()))
    model[1][0].requires_grad_(False)
    plans = TrainFlagPlans()
    calls = []

    def call(mode: bool) -> None:
        calls.append(mode)
        _reference(model, mode)

    plans.set(model, True, lambda: call(True))
    plans.set(model, False, lambda: call(False))
    plans.set(model, True, lambda: call(True))  # replayed: no call
    assert calls == [True, False]
    assert [m.training for m in model.modules()] == [True, True, False, False, False]
    model[1][0].requires_grad_(True)
    plans.set(model, True, lambda: call(True))  # the trainable choice changed: called again
    assert calls == [True, False, True]
    assert all(m.training for m in model.modules())


def test_a_submodule_with_its_own_train_is_called_every_time():
    class Counting(nn.Linear):
        def __init__(self) -> None:
            super().__init__(2, 2)
            self.calls = 0

        def train(self, mode: bool = True) -> Counting:
            self.calls += 1
            return super().train(mode)

    model = nn.Sequential(Counting())
    plans = TrainFlagPlans()
    for _ in range(3):
        plans.set(model, True, lambda: _reference(model, True))
    assert model[0].calls == 3


@pytest.fixture(scope="module")
def tiny():
    clip, _, _, tokenizer = create_clip("tiny-clip")
    return clip, tokenizer


def _flags(model: nn.Module) -> list[bool]:
    return [m.training for m in model.modules()]


def _classifier_reference(classifier: CLIPClassifier, mode: bool) -> None:
    """CLIPClassifier.train's flags as it set them before its plans: refreezing its CLIP only."""
    nn.Module.train(classifier, mode)
    if mode:
        freeze_frozen_modules(classifier.clip)


def test_classifier_train_and_eval_equal_the_calls_as_its_choice_changes(tiny):
    clip, tokenizer = tiny
    classifier = CLIPClassifier(copy.deepcopy(clip), tokenizer, ["cat", "dog", "fox"])
    twin = copy.deepcopy(classifier)
    for spec in ["projections", "all", "image", "projections", "text"]:
        for model in (classifier, twin):
            set_trainable(model.clip, spec)
        for mode in (True, False, True, True, False):
            classifier.train(mode)
            _classifier_reference(twin, mode)
            assert _flags(classifier) == _flags(twin), (spec, mode)
        twin.train(True)
    classifier.eval()
    assert not any(_flags(classifier))


def test_a_copy_of_the_classifier_sets_its_own_flags(tiny):
    clip, tokenizer = tiny
    classifier = CLIPClassifier(copy.deepcopy(clip), tokenizer, ["cat", "dog"])
    set_trainable(classifier.clip, "projections")
    classifier.train(True)
    classifier.eval()  # both modes recorded
    for duplicate in (copy.deepcopy(classifier), pickle.loads(pickle.dumps(classifier))):
        classifier.train(True)
        duplicate.eval()
        assert not any(_flags(duplicate)) and any(_flags(classifier))
        duplicate.train(True)
        classifier.eval()
        assert _flags(duplicate) == _flags(classifier.train(True))


def test_a_mode_that_is_not_a_bool_is_refused_as_torch_refuses_it(tiny):
    clip, tokenizer = tiny
    classifier = CLIPClassifier(copy.deepcopy(clip), tokenizer, ["cat", "dog"])
    classifier.train(True)
    classifier.train(True)  # replayed from the plan from now on
    with pytest.raises(ValueError, match="training mode is expected to be boolean"):
        classifier.train(1)


class _Noting(nn.Module):
    """Counts writes of its flag through its own __setattr__."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(2, 2)
        object.__setattr__(self, "writes", 0)

    def __setattr__(self, name, value):  # type: ignore[no-untyped-def]
        if name == "training":
            object.__setattr__(self, "writes", self.writes + 1)
        super().__setattr__(name, value)


def test_trees_whose_modules_act_on_their_flag_are_never_replayed():
    patched = nn.Sequential(nn.Linear(2, 2))
    seen = []
    patched[0].train = lambda mode=True: seen.append(mode) or nn.Module.train(patched[0], mode)
    noting = nn.Sequential(_Noting())
    for model, count in ((patched, lambda: len(seen)), (noting, lambda: noting[0].writes)):
        plans = TrainFlagPlans()
        for _ in range(3):
            plans.set(model, True, lambda model=model: nn.Module.train(model, True))
        assert count() == 3
