"""The divergence guard stops training on a non-finite loss before its backward pass."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from avalanche.core import SupervisedPlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
from strategy_fixtures import cil_benchmark, make_setup  # noqa: E402

from avalanche_clip.strategies import build_strategy  # noqa: E402
from avalanche_clip.training.plugins.finite_guard import DivergedTrainingError, FiniteGuardPlugin  # noqa: E402


class PoisonOutput(SupervisedPlugin):
    """Makes the third training mini-batch's output NaN (as a blown-up forward pass would)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def after_forward(self, strategy, **kwargs):
        self.calls += 1
        if self.calls == 3:
            strategy.mb_output = strategy.mb_output * float("nan")


def test_a_nan_loss_stops_training_before_its_backward_pass():
    benchmark = cil_benchmark()
    setup = make_setup(benchmark, mem_size=0, plugins=[FiniteGuardPlugin(), PoisonOutput()])
    strategy = build_strategy("ce", setup)
    before = {k: v.clone() for k, v in strategy.model.state_dict().items()}
    with pytest.raises(DivergedTrainingError, match=r"experience 0, epoch 0, iteration 2: the loss is nan"):
        strategy.train(benchmark.train_stream[0], eval_streams=[])
    after = strategy.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # two steps were taken
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
