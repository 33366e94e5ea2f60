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


class PoisonWeightAtEpochEnd(SupervisedPlugin):
    """Writes ``value`` into one element of the image projection after the last step of the
    first epoch (before the guard's epoch check, which runs after this plugin's)."""

    def __init__(self, value):
        super().__init__()
        self.value = value

    def after_training_epoch(self, strategy, **kwargs):
        with torch.no_grad():
            strategy.model.clip.visual.proj.view(-1)[7] = self.value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_weight_after_an_epoch_stops_training_naming_it(value):
    benchmark = cil_benchmark()
    setup = make_setup(benchmark, mem_size=0, plugins=[PoisonWeightAtEpochEnd(value), FiniteGuardPlugin()])
    strategy = build_strategy("ce", setup)
    with pytest.raises(DivergedTrainingError, match=r"epoch 0, .*trainable weights clip.visual.proj are not finite"):
        strategy.train(benchmark.train_stream[0], eval_streams=[])


def test_huge_finite_weights_are_not_taken_for_divergence():
    """The float64 sum of weights at float32's largest value is finite, as they are."""
    from avalanche_clip.training.plugins.finite_guard import _all_finite

    big = torch.full((1000, 1000), torch.finfo(torch.float32).max)
    assert _all_finite(big) and _all_finite(-big) and _all_finite(big.half().clamp(-6e4, 6e4))
    mixed = torch.cat([big.flatten(), -big.flatten()])
    assert _all_finite(mixed)
    for bad in (float("nan"), float("inf")):
        poisoned = big.clone()
        poisoned[3, 4] = bad
        assert not _all_finite(poisoned)
    both = torch.tensor([float("inf"), float("-inf")])  # inf + (-inf) is NaN: still caught
    assert not _all_finite(both)
    assert _all_finite(torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert not _all_finite(torch.tensor([1.0, float("nan")], dtype=torch.float64))


def test_an_epoch_outside_an_experience_checks_the_model_as_it_is():
    guard = FiniteGuardPlugin()
    benchmark = cil_benchmark()
    strategy = build_strategy("ce", make_setup(benchmark, mem_size=0))
    guard.after_training_epoch(strategy)  # finite: nothing raised, no experience started
    with torch.no_grad():
        strategy.model.clip.text_projection.fill_(float("nan"))
    with pytest.raises(DivergedTrainingError, match="clip.text_projection"):
        guard.after_training_epoch(strategy)
