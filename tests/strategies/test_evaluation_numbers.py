"""Evaluation numbers that mean what their names say: no loss of 0 for experiences with no seen
class, training accuracy over the seen classes for every strategy, forward transfer under each
eval_classes setting."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, forward_transfer_metrics
from avalanche.evaluation.metrics.loss import loss_metrics as avalanche_loss_metrics
from avalanche.training.plugins import EvaluationPlugin
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.evaluation import loss_metrics
from avalanche_clip.pipeline.run_loop import make_evaluator
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, build_strategy

STREAM = "Loss_Stream/eval_phase/test_stream"


def _visible_cross_entropy(model, experiences):
    """Σ CE over samples whose class is visible, and their count (an independent count)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for experience in experiences:
            data = experience.dataset.eval()
            for x, y, *_ in torch.utils.data.DataLoader(data, batch_size=64):
                logits = model.eval()(x)
                visible = torch.isfinite(logits.gather(1, y[:, None]).squeeze(1))
                if visible.any():
                    total += float(F.cross_entropy(logits[visible], y[visible], reduction="sum"))
                    count += int(visible.sum())
    return total, count


def test_experiences_with_no_seen_class_are_left_out_of_the_loss():
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    model = tiny_classifier(digits(8)[2])
    evaluator = EvaluationPlugin(loss_metrics(experience=True, stream=True))
    theirs = EvaluationPlugin(avalanche_loss_metrics(experience=True, stream=True))
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8, evaluator=evaluator)
    strategy.train(benchmark.train_stream[0])
    strategy.train(benchmark.train_stream[1])

    metrics = strategy.eval(benchmark.test_stream)  # experiences 2-4: no class seen yet
    total, count = _visible_cross_entropy(strategy.model, benchmark.test_stream)
    assert metrics[STREAM] == pytest.approx(total / count, rel=1e-5)
    seen_total, seen_count = _visible_cross_entropy(strategy.model, benchmark.test_stream[:2])
    assert (seen_total, seen_count) == (total, count)  # only seen experiences count at all
    per_experience = [metrics[f"Loss_Exp/eval_phase/test_stream/Exp{e:03d}"] for e in range(5)]
    assert all(math.isfinite(v) and v > 0 for v in per_experience[:2])
    assert all(math.isnan(v) for v in per_experience[2:])  # undefined, not 0

    # Avalanche's own loss_metrics on the same model: undefined (NaN), not 0, for those
    # experiences and for the stream that holds them
    strategy.plugins[strategy.plugins.index(evaluator)] = theirs
    strategy.evaluator = theirs
    plain = strategy.eval(benchmark.test_stream)
    assert all(math.isnan(plain[f"Loss_Exp/eval_phase/test_stream/Exp{e:03d}"]) for e in (2, 3, 4))
    assert math.isnan(plain[STREAM]) and math.isfinite(plain["Loss_Exp/eval_phase/test_stream/Exp000"])


class TrainingOutputs(SupervisedPlugin):
    def __init__(self):
        super().__init__()
        self.rows = []

    def after_forward(self, strategy, **kwargs):
        if strategy.is_training:
            seen = set(strategy.experience.classes_seen_so_far)
            finite = torch.isfinite(strategy.mb_output.detach()).all(0)
            self.rows.append(({c for c in range(len(finite)) if finite[c]}, seen,
                              (strategy.mb_output.argmax(1) == strategy.mb_y).sum().item(), len(strategy.mb_y)))


@pytest.mark.parametrize("name", ["gcl", "gdro", "ce", "replay", "der"])
def test_training_accuracy_is_over_the_seen_classes(name):
    benchmark = cil_benchmark(per_class=8)
    outputs = TrainingOutputs()
    # the protocol's train_logits="seen": every method's training logits range over the seen
    # classes (under "batch", GCL / GDRO's range over the batch's classes only)
    setup = make_setup(benchmark, mem_size=10, plugins=[outputs], train_logits="seen",
                       evaluator=EvaluationPlugin(accuracy_metrics(epoch=True)))
    strategy = build_strategy(name, setup)
    for experience in benchmark.train_stream[:3]:
        strategy.train(experience)
        epoch = strategy.evaluator.get_last_metrics()["Top1_Acc_Epoch/train_phase/train_stream"]
        rows = outputs.rows[-math.ceil(len(experience.dataset) / 16):]  # this epoch's batches
        assert epoch == pytest.approx(sum(r[2] for r in rows) / sum(r[3] for r in rows))
    for predictable, seen, *_ in outputs.rows:
        assert predictable == seen  # every class seen so far, in every batch, and no other


def test_forward_transfer_under_seen_and_all_classes():
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    results = {}
    for eval_classes in ("seen", "all"):
        # seed 4: the untrained tiny CLIP gets half of experience 1's test samples right
        model = tiny_classifier(digits(8)[2], seed=4, eval_classes=eval_classes)
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True),
                                     forward_transfer_metrics(experience=True))
        strategy = CLIPCrossEntropyStrategy(model=model, optimizer=optimizer(model), train_mb_size=8,
                                            eval_every=0, evaluator=evaluator)
        initial = strategy.eval(benchmark.test_stream[:2])  # zero-shot: no class marked yet
        strategy.train(benchmark.train_stream[0], eval_streams=[])
        after = strategy.eval(benchmark.test_stream[:2])
        x = benchmark.test_stream[1].dataset[0][0][None]
        results[eval_classes] = (initial, after, torch.isfinite(model.eval()(x))[0, 2:4].all())
    key = "Top1_Acc_Exp/eval_phase/test_stream/Exp001"
    fwt = "ExperienceForwardTransfer/eval_phase/test_stream/Exp001"
    initial, after, predictable = results["seen"]
    assert not predictable and initial[key] == 0.5 and after[key] == 0.0  # never predicted now
    assert after[fwt] == pytest.approx(-initial[key])  # forward transfer = minus zero-shot accuracy
    initial, after, predictable = results["all"]
    assert predictable  # classes 2, 3 compete: accuracy on them is the model's own ability
    assert after[fwt] == pytest.approx(after[key] - initial[key])  # how training changed it


def test_the_runners_evaluator_uses_the_visible_loss():
    evaluator = make_evaluator()
    names = {str(m) for m in evaluator.metrics}
    assert "Loss_Stream" in names
    assert any(type(m).__module__ == "avalanche_clip.evaluation.loss" for m in evaluator.metrics)
