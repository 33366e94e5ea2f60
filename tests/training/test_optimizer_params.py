"""``update_optimizer_params`` has the effect of Avalanche's ``update_optimizer`` in every case:
it returns at once only where Avalanche's call would change nothing but the state, and hands
every other case (first call, a replaced, added or removed parameter) to Avalanche."""

from __future__ import annotations

import copy

import pytest
import torch
from avalanche.models.dynamic_optimizers import update_optimizer
from torch import nn

from avalanche_clip.training.optimizer_params import unchanged_parameters, update_optimizer_params


def _trained_pair() -> tuple[nn.Module, torch.optim.Optimizer, dict[str, torch.Tensor]]:
    """A model with a frozen part, its AdamW after one step over all parameters (as Avalanche
    holds them after its first ``make_optimizer``), and the name mapping that call returned."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
    optimized = update_optimizer(optimizer, dict(model.named_parameters()), None)
    model(torch.randn(5, 4)).square().sum().backward()
    optimizer.step()
    return model, optimizer, optimized


def _described(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[list, dict]:
    """The optimizer's groups as parameter names, and its state by name (values as lists)."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [[names.get(id(p), "?") for p in group["params"]] for group in optimizer.param_groups]
    state = {names[id(p)]: {k: v.tolist() if torch.is_tensor(v) else v for k, v in s.items()}
             for p, s in optimizer.state.items()}
    return groups, state


def _both(change, reset_state: bool) -> tuple[tuple, tuple]:
    """Apply ``change`` (model → None) to two identical copies, then Avalanche's call to one and
    ours to the other; each side described with what the call returned."""
    sides = []
    model, optimizer, optimized = _trained_pair()
    for call in (update_optimizer, update_optimizer_params):
        m, opt, named = copy.deepcopy((model, optimizer, optimized))
        change(m)
        returned = call(opt, dict(m.named_parameters()), named, reset_state=reset_state, remove_params=True)
        assert all(returned[n] is p for n, p in m.named_parameters()) and len(returned) == len(list(m.parameters()))
        sides.append(_described(m, opt))
    return sides[0], sides[1]


def _unchanged(model: nn.Module) -> None:
    pass


def _replaced(model: nn.Module) -> None:
    model[2].weight = nn.Parameter(torch.zeros(2, 3))  # a grown head would replace its weight


def _added(model: nn.Module) -> None:
    model.append(nn.Linear(2, 2))


def _removed(model: nn.Module) -> None:
    del model[2]


@pytest.mark.parametrize("reset_state", [False, True])
@pytest.mark.parametrize("change", [_unchanged, _replaced, _added, _removed], ids=lambda f: f.__name__.strip("_"))
def test_every_case_ends_as_avalanches_update_optimizer_ends(change, reset_state):
    avalanche, ours = _both(change, reset_state)
    assert ours == avalanche
    if change is _unchanged:
        groups, state = ours
        assert sorted(groups[0]) == sorted(n for n, _ in _trained_pair()[0].named_parameters())
        assert bool(state) is not reset_state  # the step's moments kept, or reset


def test_only_a_call_with_nothing_to_change_takes_the_short_path():
    model, optimizer, optimized = _trained_pair()
    params = dict(model.named_parameters())
    assert unchanged_parameters(optimizer, params, optimized)
    assert not unchanged_parameters(optimizer, params, None)  # the first call
    replaced = dict(params, **{"2.bias": nn.Parameter(torch.zeros(2))})
    assert not unchanged_parameters(optimizer, replaced, optimized)
    assert not unchanged_parameters(optimizer, replaced, replaced)  # named, but not in the optimizer
    fewer = {n: p for n, p in params.items() if n != "2.bias"}
    assert not unchanged_parameters(optimizer, fewer, fewer)  # the optimizer holds one more
    optimizer.param_groups[0]["params"].append(params["2.bias"])  # held twice
    assert not unchanged_parameters(optimizer, params, optimized)
