"""LossStatePlugin marks each step's trained ids when its live mask is read: the mask, the ids it
forgets after an experience and its saved state equal marking them at every step."""

from __future__ import annotations

import random
from types import SimpleNamespace

import torch

from avalanche_clip.losses import GCLLoss
from avalanche_clip.training.plugins import LossStatePlugin


class _Memory:
    """A replay plugin's interface as the loss-state plugin reads it: the ids kept."""

    def __init__(self) -> None:
        self.mem_size = 5
        self.kept = torch.tensor([], dtype=torch.long)

    def buffer_ids(self) -> torch.Tensor:
        return self.kept


def test_live_ids_and_forgetting_equal_marking_every_step():
    rng = random.Random(0)
    loss = GCLLoss(num_samples=None)
    memory = _Memory()
    plugin = LossStatePlugin(loss, replay=memory)
    strategy = SimpleNamespace(device="cpu", mb_global_index=None, mb_index=None)
    expected = torch.zeros(0, dtype=torch.bool)
    for experience in range(4):
        plugin.before_training_exp(strategy)
        for _ in range(rng.randint(1, 6)):
            ids = torch.tensor(rng.sample(range(10 * (experience + 1)), 4))
            strategy.mb_index = ids
            loss._grow(int(ids.max()) + 1)
            loss.log_u[ids] = 1.0
            plugin.after_training_iteration(strategy)
            if len(expected) <= int(ids.max()):
                expected = torch.cat([expected, torch.zeros(int(ids.max()) + 1 - len(expected), dtype=torch.bool)])
            expected[ids] = True
        assert torch.equal(plugin.state_dict()["live"], expected)  # read mid-way: marked
        memory.kept = torch.tensor(sorted(rng.sample(range(10 * (experience + 1)), 5)))
        evicted = expected.clone()
        evicted[memory.kept[memory.kept < len(evicted)]] = False
        plugin.after_training_exp(strategy)
        forgotten = torch.isnan(loss.log_u[: len(evicted)])
        assert torch.equal(forgotten[evicted], torch.ones(int(evicted.sum()), dtype=torch.bool))
        expected = torch.zeros(max(len(expected), int(memory.kept.max()) + 1), dtype=torch.bool)
        expected[memory.kept] = True
        assert torch.equal(plugin.live, expected)


def test_a_loaded_state_drops_unread_steps():
    plugin = LossStatePlugin(GCLLoss(num_samples=8))
    plugin.after_training_iteration(SimpleNamespace(mb_global_index=torch.tensor([1, 2]), mb_index=None))
    plugin.load_state_dict({"live": torch.tensor([True] + [False] * 7)})
    assert plugin.live.nonzero().flatten().tolist() == [0]


def test_a_long_experience_marks_its_ids_as_it_goes():
    plugin = LossStatePlugin(GCLLoss(num_samples=None))
    strategy = SimpleNamespace(mb_global_index=None, mb_index=None)
    rng = random.Random(1)
    expected = torch.zeros(5000, dtype=torch.bool)
    for step in range(700):
        strategy.mb_index = torch.tensor(rng.sample(range(5000), 8))
        expected[strategy.mb_index] = True
        plugin.after_training_iteration(strategy)
        assert len(plugin._pending) < 256, step  # never more than a few hundred steps held
    live = plugin.live
    assert torch.equal(live, expected[: len(live)]) and not expected[len(live):].any()
