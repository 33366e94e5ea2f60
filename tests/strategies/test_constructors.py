"""Constructors take Avalanche's positional order (model, optimizer[, criterion]) through
Avalanche's own legacy shim, and say clearly what they cannot take."""

from __future__ import annotations

import pytest
import torch
from avalanche.training.templates.base import PositionalArgumentsDeprecatedWarning
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier
from strategy_fixtures import cil_benchmark, make_setup
from torch import nn

from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.strategies import (
    CLIPCrossEntropyStrategy,
    GCLStrategy,
    GDROStrategy,
    build_strategy,
)
from avalanche_clip.strategies.batch_criterion import BatchContrastiveCriterion


@pytest.fixture()
def model():
    return tiny_classifier(digits(8)[2])


@pytest.mark.parametrize("cls", [GCLStrategy, GDROStrategy])
def test_contrastive_strategies_take_model_and_optimizer_positionally(cls, model):
    opt = optimizer(model)
    with pytest.warns(PositionalArgumentsDeprecatedWarning):  # Avalanche's shim, as for Naive
        strategy = cls(model, opt, train_mb_size=8, mem_size=4)
    assert strategy.model is model and strategy.optimizer is opt
    assert isinstance(strategy._criterion, BatchContrastiveCriterion)
    strategy.train(avalanche_benchmark("class_incremental_benchmark", per_class=8).train_stream[0])
    assert strategy.contrastive_loss.capacity > 0


def test_cross_entropy_takes_model_optimizer_and_criterion_positionally(model):
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    with pytest.warns(PositionalArgumentsDeprecatedWarning):
        strategy = CLIPCrossEntropyStrategy(model, optimizer(model), criterion, train_mb_size=8)
    assert strategy._criterion is criterion
    by_keyword = CLIPCrossEntropyStrategy(model=model, optimizer=optimizer(model), criterion=criterion)
    assert by_keyword._criterion is criterion


@pytest.mark.parametrize("cls, loss", [(GCLStrategy, "GCLLoss"), (GDROStrategy, "GDROLoss")])
def test_a_criterion_for_a_contrastive_strategy_is_a_clear_error(cls, loss, model):
    message = f"{cls.__name__} trains with its own loss \\({loss}\\) and takes no criterion"
    with pytest.raises(TypeError, match=message), pytest.warns(PositionalArgumentsDeprecatedWarning):
        cls(model, optimizer(model), nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match=message):
        cls(model=model, optimizer=optimizer(model), criterion=nn.CrossEntropyLoss())


@pytest.mark.parametrize("cls", [GCLStrategy, GDROStrategy, CLIPCrossEntropyStrategy])
def test_a_model_that_is_not_a_clip_classifier_is_a_clear_error(cls):
    linear = nn.Linear(4, 2)
    with pytest.raises(TypeError, match=f"{cls.__name__} needs a CLIPClassifier-like model .* got Linear"):
        cls(model=linear, optimizer=torch.optim.SGD(linear.parameters(), lr=0.1))
    with pytest.raises(TypeError, match="needs a model and an optimizer"):
        cls(model=tiny_classifier(["a", "b"]))


def test_num_samples_still_preallocates(model):
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), num_samples=500)
    assert strategy.contrastive_loss.num_samples == 500 and strategy.contrastive_loss.capacity == 500
    assert len(strategy.loss_state.live) == 500


@pytest.mark.parametrize("name", ["gcl", "gdro", "ce", "icarl"])
def test_a_gpu_that_is_not_here_is_one_clear_error_at_construction(name, model):
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU (cuda:0 without any)
    setup = make_setup(cil_benchmark(with_index=False, per_class=8), mem_size=10, device=missing)
    with pytest.raises(ConfigError, match=f"^device='{missing}' but "):
        build_strategy(name, setup)
    with pytest.raises(ConfigError, match="^device='cuda:x' is not a device"):
        GCLStrategy(model=model, optimizer=optimizer(model), device="cuda:x")
