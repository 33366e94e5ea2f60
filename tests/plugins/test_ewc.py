"""The registered EWC keeps only trainable parameters, and its penalty is Avalanche's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from avalanche.training.plugins import EWCPlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
from strategy_fixtures import cil_benchmark, make_setup  # noqa: E402

from avalanche_clip.strategies import build_strategy  # noqa: E402
from avalanche_clip.training.plugins.ewc import TrainableEWCPlugin  # noqa: E402


class PenaltyProbe(EWCPlugin):
    """Avalanche's EWCPlugin, only recording the penalty it would add (nothing added)."""

    def before_backward(self, strategy, **kwargs):
        loss = strategy.loss
        strategy.loss = torch.zeros(())
        super().before_backward(strategy, **kwargs)
        self.penalty = strategy.loss.detach()
        strategy.loss = loss


def test_trainable_ewc_stores_only_trained_parameters_and_adds_avalanches_penalty():
    benchmark = cil_benchmark()
    strategy = build_strategy("ewc", make_setup(benchmark, mem_size=0), ewc_lambda=50.0)
    plugin = next(p for p in strategy.plugins if isinstance(p, TrainableEWCPlugin))
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience, eval_streams=[])
    trained = {n for n, p in strategy.model.named_parameters() if p.requires_grad}
    assert set(plugin.importances[0]) == set(plugin.saved_params[1]) == trained
    assert len(trained) < len(list(strategy.model.parameters()))  # frozen ones were dropped

    full = PenaltyProbe(ewc_lambda=50.0)  # Avalanche's, holding every parameter
    full.importances = {t: {**{n: _zeros(p) for n, p in strategy.model.named_parameters()}, **imp}
                        for t, imp in plugin.importances.items()}
    full.saved_params = {t: {**{n: _copy(p) for n, p in strategy.model.named_parameters()}, **saved}
                         for t, saved in plugin.saved_params.items()}
    with torch.no_grad():
        for p in strategy.model.parameters():
            if p.requires_grad:
                p.add_(0.01)  # away from the anchors
    strategy.clock.train_exp_counter = 2
    strategy.loss = torch.zeros(())
    plugin.before_backward(strategy)
    full.before_backward(strategy)
    assert float(strategy.loss) > 0
    torch.testing.assert_close(strategy.loss.detach(), full.penalty)


def _zeros(p):
    from avalanche.training.utils import ParamData

    return ParamData("z", p.shape, device=p.device, init_tensor=torch.zeros_like(p.data))


def _copy(p):
    from avalanche.training.utils import ParamData

    return ParamData("c", p.shape, device=p.device, init_tensor=p.data.clone())


def test_online_mode_merges_importances_of_the_trained_parameters():
    benchmark = cil_benchmark()
    strategy = build_strategy("ewc", make_setup(benchmark, mem_size=0), ewc_lambda=5.0,
                              mode="online", decay_factor=0.5)
    for experience in benchmark.train_stream[:3]:
        strategy.train(experience, eval_streams=[])
    plugin = next(p for p in strategy.plugins if isinstance(p, TrainableEWCPlugin))
    trained = {n for n, p in strategy.model.named_parameters() if p.requires_grad}
    assert set(plugin.importances[2]) == trained
    assert all(float(v.data.abs().sum()) > 0 for v in plugin.importances[2].values())


class _Compared(TrainableEWCPlugin):
    """Ours, checking at every step that its penalty equals Avalanche's ``before_backward`` on the
    same state bit for bit, then adding it as usual."""

    penalties: list[float]

    def before_backward(self, strategy, **kwargs):
        loss = strategy.loss
        results = []
        for add_penalty in (EWCPlugin.before_backward, TrainableEWCPlugin.before_backward):
            strategy.loss = torch.zeros(())
            add_penalty(self, strategy)
            results.append(strategy.loss.detach().clone())
        assert torch.equal(results[0], results[1]), (strategy.clock.train_exp_counter, results)
        self.penalties.append(float(results[1]))
        strategy.loss = loss
        super().before_backward(strategy, **kwargs)


@pytest.mark.parametrize("mode", ["separate", "online"])
def test_the_penalty_over_terms_listed_once_is_avalanches_bit_for_bit_at_every_step(mode):
    benchmark = cil_benchmark()
    options = {"decay_factor": 0.5} if mode == "online" else {}
    strategy = build_strategy("ewc", make_setup(benchmark, mem_size=0), ewc_lambda=50.0, mode=mode, **options)
    plugin = next(p for p in strategy.plugins if isinstance(p, TrainableEWCPlugin))
    plugin.__class__, plugin.penalties = _Compared, []
    for experience in benchmark.train_stream[:3]:
        strategy.train(experience, eval_streams=[])
    # every step of experiences 1 and 2 compared (0 has no anchor), and the weights left them
    assert len(plugin.penalties) >= 2 and sum(p > 0 for p in plugin.penalties) >= len(plugin.penalties) // 2


def test_a_parameter_replaced_within_an_experience_is_penalised_as_avalanche_does():
    """A head that grows replaces its weight in the middle of an experience: the terms listed
    before it are listed again, and the penalty is still Avalanche's, bit for bit."""
    benchmark = cil_benchmark()
    strategy = build_strategy("ewc", make_setup(benchmark, mem_size=0), ewc_lambda=50.0)
    plugin = next(p for p in strategy.plugins if isinstance(p, TrainableEWCPlugin))
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience, eval_streams=[])

    def penalties():
        results = []
        for add_penalty in (EWCPlugin.before_backward, TrainableEWCPlugin.before_backward):
            strategy.loss = torch.zeros(())
            add_penalty(plugin, strategy)
            results.append(strategy.loss.detach().clone())
        return results

    first = penalties()  # lists the terms
    name, param = next((n, p) for n, p in strategy.model.named_parameters() if p.requires_grad)
    owner, _, leaf = name.rpartition(".")
    setattr(strategy.model.get_submodule(owner), leaf, torch.nn.Parameter(param.detach() + 0.5))
    second = penalties()
    assert torch.equal(first[0], first[1]) and torch.equal(second[0], second[1])
    assert float(second[1]) > float(first[1])  # the new weight lies farther from its anchor
