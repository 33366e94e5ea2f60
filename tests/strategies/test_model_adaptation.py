"""``CLIPStrategyBase.model_adaptation``: Avalanche's (adapt every DynamicModule, then move the
model), skipped only where it would do nothing, and Avalanche's own call otherwise."""

from __future__ import annotations

import pytest
import torch
from avalanche.models import IncrementalClassifier
from avalanche.training.templates.observation_type import batch_observation
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier

from avalanche_clip.strategies import GCLStrategy


@pytest.fixture()
def strategy_and_calls(monkeypatch):
    calls = []
    original = batch_observation.avalanche_model_adaptation

    def counted(model, experience, *args, **kwargs):
        calls.append(experience)
        return original(model, experience, *args, **kwargs)

    monkeypatch.setattr(batch_observation, "avalanche_model_adaptation", counted)
    model = tiny_classifier(digits(8)[2])
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8, mem_size=4)
    strategy.experience = avalanche_benchmark("class_incremental_benchmark", per_class=8).train_stream[1]
    return strategy, calls


def test_a_model_with_nothing_to_adapt_or_move_is_returned_as_it_is(strategy_and_calls):
    strategy, calls = strategy_and_calls
    before = {name: t for name, t in strategy.model.state_dict(keep_vars=True).items()}
    assert strategy.model_adaptation() is strategy.model
    assert calls == []  # Avalanche's walk would have adapted nothing
    after = strategy.model.state_dict(keep_vars=True)
    assert all(after[name] is tensor for name, tensor in before.items())  # nothing moved or replaced


def test_a_dynamic_module_is_adapted_by_avalanche(strategy_and_calls):
    strategy, calls = strategy_and_calls
    head = IncrementalClassifier(in_features=4, initial_out_features=1)
    strategy.model.extra_head = head  # a DynamicModule anywhere in the tree
    assert strategy.model_adaptation() is strategy.model
    assert calls == [strategy.experience]
    classes = max(int(c) for c in strategy.experience.classes_in_this_experience) + 1
    assert head.classifier.out_features == classes  # grown to the experience's classes


def test_an_explicit_model_is_the_one_adapted(strategy_and_calls):
    strategy, calls = strategy_and_calls
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    assert strategy.model_adaptation(other) is other  # nn.Module.to returns the module
    assert calls == []
