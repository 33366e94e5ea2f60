"""Avalanche's plugins compose with GCL / GDRO / CE and do what they do with Naive: EWC (importances
from the training loss, a quadratic penalty), LwF (a positive distillation penalty with gradient
on the seen classes' logits), SI, the LR scheduler and early stopping."""

from __future__ import annotations

import math

import pytest
import torch
from avalanche.benchmarks.scenarios.validation_scenario import benchmark_with_validation_stream
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import (
    EarlyStoppingPlugin,
    EvaluationPlugin,
    EWCPlugin,
    LRSchedulerPlugin,
    LwFPlugin,
)
from avalanche.training.plugins.synaptic_intelligence import (
    SynapticIntelligencePlugin as AvalancheSI,
)
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier
from test_batch_criterion import reference_gcl
from torch import nn

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, GDROStrategy
from avalanche_clip.training.plugins import SeenClassesPlugin, SynapticIntelligencePlugin

KINDS = ("naive", "ce", "gcl", "gdro")
OURS = {"ce": CLIPCrossEntropyStrategy, "gcl": GCLStrategy, "gdro": GDROStrategy}


def make(kind: str, plugins=(), *, per_class: int = 8, evaluator=None, **kwargs):
    """A strategy of ``kind`` on a fresh tiny-clip classifier (Naive: Avalanche's own class with
    our seen-class plugin, so it predicts among the same classes)."""
    model = tiny_classifier(digits(per_class)[2])
    common = dict(model=model, optimizer=optimizer(model), train_mb_size=8, plugins=list(plugins),
                  evaluator=evaluator or EvaluationPlugin(loss_metrics(epoch=True)), **kwargs)
    if kind == "naive":
        common["plugins"].append(SeenClassesPlugin(model.num_classes))
        return Naive(criterion=nn.CrossEntropyLoss(), **common)
    return OURS[kind](seed=0, **common)


def trainable(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


class Probe(SupervisedPlugin):
    """Calls ``fn(strategy)`` before each backward of experience ``experience``."""

    def __init__(self, fn, experience: int = 1):
        super().__init__()
        self.fn, self.experience, self.seen = fn, experience, []

    def before_backward(self, strategy, **kwargs):
        if strategy.clock.train_exp_counter == self.experience:
            self.seen.append(self.fn(strategy))


@pytest.mark.parametrize("kind", KINDS)
def test_ewc_importances_are_nonzero_and_its_penalty_is_quadratic_in_the_distance(kind):
    ewc = EWCPlugin(ewc_lambda=3.0)
    strategy = make(kind, [ewc])
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    strategy.train(benchmark.train_stream[0])
    importances, anchors = ewc.importances[0], ewc.saved_params[0]
    names = [n for n, _ in trainable(strategy.model)]
    assert all(float(importances[n].data.sum()) > 0 for n in names)
    frozen = [n for n, p in strategy.model.named_parameters() if not p.requires_grad]
    assert all(float(importances[n].data.abs().sum()) == 0 for n in frozen)

    strategy.clock.train_exp_counter = 1  # the penalty applies from the second experience
    direction = {n: torch.randn_like(p) for n, p in trainable(strategy.model)}
    penalties = []
    for step in (1.0, 2.0):
        with torch.no_grad():
            for n, p in trainable(strategy.model):
                p.copy_(anchors[n].data + 1e-2 * step * direction[n])
        strategy.loss = torch.zeros(())
        ewc.before_backward(strategy)
        penalties.append(float(strategy.loss.detach()))
        expected = 3.0 * sum(float((importances[n].data * (1e-2 * step * direction[n]) ** 2).sum()) for n in names)
        assert penalties[-1] == pytest.approx(expected, rel=1e-4)
    assert penalties[0] > 0 and penalties[1] == pytest.approx(4 * penalties[0], rel=1e-4)


def test_ewc_importances_of_gcl_are_squared_gradients_of_the_gcl_objective():
    ewc = EWCPlugin(ewc_lambda=1.0)
    strategy = make("gcl", [ewc], tau=0.1)
    experience = avalanche_benchmark("class_incremental_benchmark", per_class=8).train_stream[0]
    strategy.train(experience)
    model, params = strategy.model.eval(), trainable(strategy.model)
    data = experience.dataset
    expected = {n: torch.zeros_like(p) for n, p in params}
    batches = [list(range(i, min(i + 8, len(data)))) for i in range(0, len(data), 8)]
    for batch in batches:  # EWC's loader: the experience in order, train_mb_size at a time
        x = torch.stack([data[i][0] for i in batch])
        y = torch.tensor([int(data[i][1]) for i in batch])
        s = model.encode_images(x) @ model.class_embeddings(y).t()
        grads = torch.autograd.grad(reference_gcl(s, y, 0.1), [p for _, p in params], allow_unused=True)
        for (n, _), g in zip(params, grads, strict=True):
            if g is not None:
                expected[n] += g ** 2
    for n, _ in params:
        torch.testing.assert_close(ewc.importances[0][n].data, expected[n] / len(batches),
                                   rtol=1e-3, atol=1e-10)


def _lwf_penalty(plugin):
    def probe(strategy):
        penalty = plugin.lwf(strategy.mb_x, strategy.mb_output, strategy.model)
        params = [p for _, p in trainable(strategy.model)]
        grads = torch.autograd.grad(penalty, params, retain_graph=True, allow_unused=True)
        norm = sum(float(g.norm()) for g in grads if g is not None)
        old_classes = {0, 1}
        return float(penalty.detach()), penalty.requires_grad, norm, set(strategy.mb_y.tolist()) & old_classes
    return probe


@pytest.mark.parametrize("kind", KINDS)
def test_lwf_penalty_is_positive_with_a_gradient_when_batches_miss_the_old_classes(kind):
    lwf = LwFPlugin(alpha=1.0, temperature=2.0)
    probe = Probe(_lwf_penalty(lwf))
    seen = {"train_logits": "seen"} if kind in ("gcl", "gdro") else {}  # their batch logits omit old classes
    strategy = make(kind, [lwf, probe], train_epochs=2,
                    evaluator=EvaluationPlugin(loss_metrics(minibatch=True, epoch=True)), **seen)
    benchmark = avalanche_benchmark("nc_benchmark", per_class=8)  # LwF reads task labels
    strategy.train(benchmark.train_stream[0])
    strategy.train(benchmark.train_stream[1])
    (first, *later) = probe.seen
    assert abs(first[0]) < 1e-6 and first[1]  # the first step starts from the previous model
    assert len(later) == 3
    for value, has_grad, grad_norm, _ in later:
        assert value > 0 and has_grad and grad_norm > 0
    assert not any(old for *_, old in probe.seen)  # no memory: batches miss old classes 0, 1
    logged = strategy.evaluator.get_last_metrics()
    losses = [v for k, v in logged.items() if k.startswith(("Loss_MB", "Loss_Epoch"))]
    assert losses and all(math.isfinite(v) for v in losses)


def test_lwf_refuses_batch_logits():
    model = tiny_classifier(digits(8)[2])
    with pytest.raises(ValueError, match="train_logits='batch' leaves at -inf"):
        GCLStrategy(model=model, optimizer=optimizer(model), train_logits="batch", plugins=[LwFPlugin()])


def _si_run(kind, plugin_class):
    si = plugin_class(si_lambda=10.0)

    def penalty(strategy):
        anchor, omega = si.ewc_data
        expected = sum(float((omega[n].data * (p.detach().flatten() - anchor[n].data) ** 2).sum())
                       for n, p in trainable(strategy.model)) * 10.0 / 2
        value = AvalancheSI.compute_ewc_loss(strategy.model, si.ewc_data, si.excluded_parameters,
                                             device=strategy.device, lambd=10.0)
        return float(value.detach()), expected

    probe = Probe(penalty)
    strategy = make(kind, [si, probe], train_epochs=2)
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    strategy.train(benchmark.train_stream[0])
    omega = sum(float(si.ewc_data[1][n].data.abs().sum()) for n, _ in trainable(strategy.model))
    strategy.train(benchmark.train_stream[1])
    return omega, probe.seen


@pytest.mark.parametrize("kind", KINDS)
def test_synaptic_intelligence_importances_and_penalty(kind):
    omega, penalties = _si_run(kind, SynapticIntelligencePlugin)
    assert omega > 0  # the path integral Σ g·Δθ of the first experience
    assert penalties[0][0] == 0.0  # at the anchor before the first step of the experience
    for value, expected in penalties:
        assert value == pytest.approx(expected, rel=1e-4, abs=1e-12)  # λ/2 Σ ω (θ − θ*)²
    assert penalties[-1][0] > 0  # grows as the weights leave the anchor


def test_avalanches_own_synaptic_intelligence_is_a_no_op_on_cpu():
    """Why avalanche_clip.training.plugins has its own SI: Avalanche 0.6 snapshots CPU weights as views."""
    omega, penalties = _si_run("naive", AvalancheSI)
    assert omega == 0.0 and all(value == 0.0 for value, _ in penalties)


@pytest.mark.parametrize("kind", KINDS)
def test_lr_scheduler_steps_and_resets_the_learning_rate(kind):
    model_lrs = []
    probe = Probe(lambda s: s.optimizer.param_groups[0]["lr"], experience=0)
    probe2 = Probe(lambda s: s.optimizer.param_groups[0]["lr"], experience=1)
    strategy = make(kind, [probe, probe2], train_epochs=2)
    scheduler = torch.optim.lr_scheduler.StepLR(strategy.optimizer, step_size=1, gamma=0.5)
    strategy.plugins.insert(0, LRSchedulerPlugin(scheduler, step_granularity="iteration"))
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience)
        model_lrs.append(strategy.optimizer.param_groups[0]["lr"])
    steps = len(probe.seen)
    assert steps == 4  # 2 epochs × ⌈12 / 8⌉ steps
    assert probe.seen == probe2.seen == [1e-3 * 0.5 ** k for k in range(steps)]
    assert model_lrs == [1e-3, 1e-3]  # reset after each experience (reset_lr=True)


@pytest.mark.filterwarnings("ignore:Metric Top1_Acc_Stream used by the EarlyStopping plugin is not computed yet")
@pytest.mark.parametrize("kind", KINDS)
def test_early_stopping_on_a_validation_stream_stops_and_restores_the_best_weights(kind):
    benchmark = benchmark_with_validation_stream(
        avalanche_benchmark("class_incremental_benchmark", per_class=12), validation_size=0.25, seed=0)
    stopper = EarlyStoppingPlugin(patience=1, val_stream_name="valid_stream", margin=100.0)
    steps = Probe(lambda s: 1, experience=0)
    evaluator = EvaluationPlugin(accuracy_metrics(stream=True), loss_metrics(stream=True))
    strategy = make(kind, [stopper, steps], per_class=12, evaluator=evaluator, train_epochs=4, eval_every=1)
    start = {n: p.detach().clone() for n, p in strategy.model.named_parameters()}
    experience = benchmark.train_stream[0]
    strategy.train(experience, eval_streams=[benchmark.valid_stream])
    # no improvement by the margin: one epoch (⌈n/8⌉ steps) out of 4, then the best (first) weights
    assert len(steps.seen) == math.ceil(len(experience.dataset) / 8)
    for name, p in strategy.model.named_parameters():
        torch.testing.assert_close(p, start[name], rtol=0, atol=0, msg=name)
