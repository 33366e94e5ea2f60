"""The per-run cuts of issue 25 change no number: train / eval flags restored as Avalanche
restores them, ``CLIPClassifier.to`` to where it is already a no-op, checkpoint snapshots that
training cannot modify, and checkpoint writer failures that still reach the run."""

from __future__ import annotations

import random
import threading

import pytest
import torch
from torch import nn

from avalanche_clip.models import CLIPClassifier, create_clip
from avalanche_clip.training.checkpoint_writer import BackgroundWriter, snapshot
from avalanche_clip.training.train_modes import restore_train_modes


class _Custom(nn.Module):
    """A module whose ``train`` has a side effect: it counts the calls with each flag."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
        self.calls: list[bool] = []

    def train(self, mode: bool = True) -> _Custom:
        self.calls.append(mode)
        return super().train(mode)


def _model() -> nn.Module:
    shared = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model = nn.Sequential(
        nn.Sequential(nn.Linear(2, 2), shared, nn.Sequential(nn.Dropout(), nn.Linear(2, 2))),
        _Custom(),
        nn.Sequential(shared, nn.Dropout()),  # the same module under a second parent, later
    )
    return model


def _avalanche_restore(model: nn.Module, modes: dict[str, bool]) -> None:
    """Avalanche's ``BaseTemplate._load_train_state`` loop."""
    for name, layer in model.named_modules():
        try:
            layer.train(mode=modes[name])
        except KeyError:
            layer.train()


@pytest.mark.parametrize("seed", range(20))
def test_restored_flags_equal_avalanches_with_shared_and_custom_modules(seed):
    rng = random.Random(seed)
    expected, fast = _model(), _model()
    names = [name for name, _ in expected.named_modules()]
    modes = {name: rng.random() < 0.5 for name in names if rng.random() < 0.9}  # some missing
    for model in (expected, fast):
        for _, layer in model.named_modules():
            layer.training = rng.random() < 0.5
    fast.load_state_dict(expected.state_dict())
    for (_, a), (_, b) in zip(expected.named_modules(), fast.named_modules(), strict=True):
        b.training = a.training
    _avalanche_restore(expected, modes)
    restore_train_modes(fast, modes)
    flags = [layer.training for _, layer in expected.named_modules()]
    assert [layer.training for _, layer in fast.named_modules()] == flags
    assert fast[1].calls[-1] == modes.get("1", True)  # the custom train ran with its own flag


def _random_shared_model(rng: random.Random) -> nn.Module:
    """Nested Sequentials of leaves and _Custom modules, several modules reachable from 2-3
    parents at random places (earlier or later than their first parent)."""
    def tree(depth: int) -> nn.Module:
        return nn.Sequential(*[
            tree(depth - 1) if depth and rng.random() < 0.5
            else rng.choice([lambda: nn.Linear(2, 2), nn.Dropout, _Custom])()
            for _ in range(rng.randint(1, 3))
        ])

    model = tree(4)
    for _ in range(rng.randint(1, 4)):
        modules = list(model.modules())
        target = rng.choice([m for m in modules if isinstance(m, nn.Sequential)])
        candidates = [m for m in modules[1:] if target not in list(m.modules())]
        if candidates:
            target.insert(rng.randint(0, len(target)), rng.choice(candidates))
    return model


@pytest.mark.parametrize("seed", range(40))
def test_restored_flags_equal_avalanches_on_random_shared_structures(seed):
    rng = random.Random(seed)
    expected = _random_shared_model(random.Random(seed))
    fast = _random_shared_model(random.Random(seed))
    modes = {name: rng.random() < 0.5 for name, _ in expected.named_modules() if rng.random() < 0.9}
    for (_, a), (_, b) in zip(expected.named_modules(), fast.named_modules(), strict=True):
        a.training = b.training = rng.random() < 0.5
    _avalanche_restore(expected, modes)
    restore_train_modes(fast, modes)
    assert [m.training for _, m in fast.named_modules()] == [m.training for _, m in expected.named_modules()]
    # a module with its own train is called (its side effects happen), its last call with the
    # flag it ends with
    customs = [m for _, m in fast.named_modules() if isinstance(m, _Custom)]
    assert all(m.calls and m.calls[-1] == m.training for m in customs)


def test_classifier_to_where_it_is_keeps_every_tensor_and_moves_otherwise():
    clip, _, _, tokenizer = create_clip("tiny-clip")
    classifier = CLIPClassifier(clip, tokenizer, ["cat", "dog"])
    before = {name: (t.data_ptr(), t._version) for name, t in classifier.state_dict().items()}
    assert classifier.to("cpu") is classifier and classifier.to(torch.device("cpu")) is classifier
    after = {name: (t.data_ptr(), t._version) for name, t in classifier.state_dict().items()}
    assert after == before
    classifier.to(torch.float64)  # a dtype change is not skipped
    assert all(p.dtype == torch.float64 for p in classifier.parameters())


def test_a_snapshot_shares_nothing_with_the_state_it_copies():
    weight = torch.ones(3)
    meta = {"": {"version": 1}}
    state_dict = type(nn.Linear(1, 1).state_dict())(w=weight)
    state_dict._metadata = meta
    state = {"model": state_dict, "ids": [1, 2], "rng": (torch.zeros(2), 3), "name": "gcl"}
    copy = snapshot(state)
    weight.add_(1.0)
    state["ids"].append(3)
    assert torch.equal(copy["model"]["w"], torch.ones(3))
    assert copy["ids"] == [1, 2] and copy["name"] == "gcl" and copy["rng"][1] == 3
    assert type(copy["model"]) is type(state_dict) and copy["model"]._metadata == meta


def test_writes_run_one_at_a_time_in_order_and_failures_reach_the_caller():
    writer = BackgroundWriter()
    done: list[int] = []
    release = threading.Event()

    def slow_first() -> None:
        release.wait(5)
        done.append(0)

    writer.submit(slow_first)
    release.set()
    writer.submit(lambda: done.append(1))  # waits for the first
    writer.wait()
    assert done == [0, 1]

    def fail() -> None:
        raise OSError(28, "No space left on device")

    writer.submit(fail)
    with pytest.raises(OSError, match="No space left"):
        writer.submit(lambda: done.append(2))  # the failure surfaces before the next write
    assert done == [0, 1]
    writer.submit(fail)
    with pytest.raises(OSError):
        writer.close()
    writer.submit(fail)
    writer.close(raise_error=False)  # another exception is on its way: not hidden by this one


def test_a_second_build_is_an_independent_copy_with_the_same_values_and_random_state():
    from avalanche_clip.pipeline.built_models import forget_built_models, fresh_clip

    forget_built_models()
    first = fresh_clip("tiny-clip", None, image_size=None, device="cpu", seed=3)
    after_first = torch.rand(4)
    with torch.no_grad():
        next(first.model.parameters()).add_(1.0)  # a run trains its copy
    second = fresh_clip("tiny-clip", None, image_size=None, device="cpu", seed=3)
    assert torch.equal(torch.rand(4), after_first)  # the generators as the build left them
    torch.manual_seed(3)
    rebuilt = create_clip("tiny-clip", None)
    for (name, a), (_, b) in zip(second.model.state_dict().items(), rebuilt.model.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(first.model.parameters(),
                                                            second.model.parameters(), strict=True))
    other_seed = fresh_clip("tiny-clip", None, image_size=None, device="cpu", seed=4)
    assert not torch.equal(next(other_seed.model.parameters()), next(second.model.parameters()))
    forget_built_models()


def _freeze_reference(module: nn.Module) -> None:
    """freeze_frozen_modules as it was: every module's parameters listed once per ancestor."""
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
        module.eval()
        return
    for child in module.children():
        _freeze_reference(child)


@pytest.mark.parametrize("seed", range(5))
def test_freezing_frozen_modules_in_one_pass_gives_the_same_flags(seed):
    from avalanche_clip.models.trainable import freeze_frozen_modules

    rng = random.Random(seed)
    expected, fast = create_clip("tiny-clip").model, create_clip("tiny-clip").model
    for (_, a), (_, b) in zip(expected.named_parameters(), fast.named_parameters(), strict=True):
        a.requires_grad_(rng.random() < 0.2)
        b.requires_grad_(a.requires_grad)
    expected.train()
    fast.train()
    _freeze_reference(expected)
    freeze_frozen_modules(fast)
    flags = [m.training for m in expected.modules()]
    assert [m.training for m in fast.modules()] == flags and not all(flags) and any(flags)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_shared_optimizer_steps_equal_torchs_per_tensor_loop(optimizer):
    """The shared optimizer takes torch's ``foreach`` path (faster on CPU): the parameters it
    gives equal, bit for bit, those of the per-tensor loop that committed records were made
    with, including a step where one parameter has no gradient."""
    from avalanche_clip.strategies.setup import StrategySetup

    def trained(make):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Linear(40, 30), nn.Linear(30, 7))
        opt = make(module)
        generator = torch.Generator().manual_seed(1)
        for step in range(12):
            for index, param in enumerate(module.parameters()):
                skip = step == 5 and index == 1
                param.grad = None if skip else torch.randn(param.shape, generator=generator)
            opt.step()
        return [p.detach().clone() for p in module.parameters()]

    setup = StrategySetup(classifier=None, benchmark=None, lr=3e-3, weight_decay=0.01,
                          optimizer=optimizer)
    ours = trained(setup.make_optimizer)
    assert all(group["foreach"] for group in setup.make_optimizer(nn.Linear(2, 2)).param_groups)
    if optimizer == "sgd":
        reference = trained(lambda m: torch.optim.SGD(m.parameters(), lr=3e-3, momentum=0.9,
                                                      weight_decay=0.01, foreach=False))
    else:
        reference = trained(lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3,
                                                        weight_decay=0.01, foreach=False))
    assert all(torch.equal(a, b) for a, b in zip(ours, reference, strict=True))
    assert not torch.equal(ours[0], trained(lambda m: torch.optim.SGD(m.parameters(), lr=0.0))[0])
