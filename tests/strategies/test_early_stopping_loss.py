"""Early stopping on a validation *loss* trains every experience (GCL, GDRO, CE), with Avalanche's
``loss_metrics`` and ours alike.

Avalanche evaluates the validation stream before training (``eval_every >= 0``); that evaluation
must already predict among the classes about to be trained, or the loss of the experience's
validation data is undefined (NaN), never improves, and ``EarlyStoppingPlugin`` restores the
weights the experience started from.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from avalanche.benchmarks.scenarios.validation_scenario import benchmark_with_validation_stream
from avalanche.evaluation.metrics import loss_metrics as avalanche_loss_metrics
from avalanche.training.plugins import EarlyStoppingPlugin, EvaluationPlugin
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, GDROStrategy

STRATEGIES = {"gcl": GCLStrategy, "gdro": GDROStrategy, "ce": CLIPCrossEntropyStrategy}
LOSS_METRICS = {"ours": loss_metrics, "avalanche": avalanche_loss_metrics}
# the losses' own (design/losses.md) values, so that the check of learning below does not move with
# the strategies' constructor defaults (strategies/defaults.py, tuned for the proxies' models)
# CE with the seen classes' logits: without memory, CE over the batch's classes (the protocol's
# default) never sees an old class, so the loss over every seen class that early stopping
# watches need not fall on an experience, and restoring its start is then right
OPTIONS = {"gcl": {"tau": 0.05, "gamma": 0.9}, "gdro": {"tau": 0.5, "margin": 0.5, "gamma": 0.9},
           "ce": {"train_logits": "seen"}}
LOSS = "Loss_Stream/eval_phase/valid_stream"


def _trained(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _validation_loss(strategy, stream, weights=None):
    """Validation loss of the strategy's model (or, with ``weights``, of a copy with those
    trainable parameters: the classes it predicts among stay the current ones)."""
    if weights is not None:
        strategy = copy.copy(strategy)
        strategy.model = copy.deepcopy(strategy.model)
        strategy.model.load_state_dict(weights, strict=False)
    return strategy.eval(stream)[LOSS]


@pytest.mark.filterwarnings("ignore:Metric Loss_Stream used by the EarlyStopping plugin is not computed yet")
@pytest.mark.parametrize(("kind", "metrics"), [("gcl", "ours"), ("gdro", "avalanche"), ("ce", "avalanche")])
def test_early_stopping_on_the_validation_loss_trains_every_experience(kind, metrics):
    benchmark = benchmark_with_validation_stream(
        avalanche_benchmark("class_incremental_benchmark", n_experiences=2, per_class=12),
        validation_size=0.25, shuffle=True, seed=0)
    stopper = EarlyStoppingPlugin(patience=2, val_stream_name="valid_stream",
                                  metric_name="Loss_Stream", mode="min")
    model = tiny_classifier(digits(12)[2], trainable="all")
    evaluator = EvaluationPlugin(LOSS_METRICS[metrics](stream=True))
    strategy = STRATEGIES[kind](model=model, optimizer=optimizer(model, lr=3e-3), train_mb_size=8,
                                train_epochs=3, eval_every=1, seed=0, plugins=[stopper],
                                evaluator=evaluator, **OPTIONS[kind])
    for t in range(2):
        validation = benchmark.valid_stream[t:t + 1]
        start = _trained(model)
        strategy.train(benchmark.train_stream[t], eval_streams=[validation])
        assert math.isfinite(stopper.best_val), t  # the loss before training was defined
        moved = [n for n, p in _trained(model).items() if not torch.equal(p, start[n])]
        assert moved, f"experience {t} ended with the weights it started from"
        assert _validation_loss(strategy, validation) < _validation_loss(strategy, validation, start), t
