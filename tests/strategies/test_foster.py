"""FOSTER: its losses against the paper's equations, the expanded model starting at the old one,
and compression back into one image path that predicts like the expanded model."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from contrastive_references import effective_weights, softmax_row
from strategy_fixtures import dil_benchmark, make_setup, pretrained_run

from avalanche_clip.losses.foster import (
    balanced_distillation,
    distillation,
    effective_number_weights,
    logits_aligned_cross_entropy,
)
from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import build_strategy


def _logits(seed, n=6, k=4):
    return torch.randn(n, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2


def test_effective_number_weights_match_the_formula():
    counts = torch.tensor([500, 500, 20, 20, 0])
    torch.testing.assert_close(effective_number_weights(counts, 0.96),
                               torch.tensor(effective_weights(counts, 0.96), dtype=torch.float64))
    weights = effective_number_weights(counts, 0.96)
    assert weights[2] > weights[0] and weights[:4].sum().item() == pytest.approx(4)
    assert weights[4].item() == 1.0  # no sample: out of the weighting
    torch.testing.assert_close(effective_number_weights(counts, 0.0), torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"beta must lie in \[0, 1\), got 1.0"):
        effective_number_weights(counts, 1.0)


def test_without_memory_old_classes_are_not_weighted_above_the_new_ones():
    # after one experience of 2 classes x 500 samples, no memory: 2 old classes without samples
    weights = effective_number_weights(torch.tensor([0, 0, 500, 500]), 0.96)
    torch.testing.assert_close(weights, torch.ones(4, dtype=torch.float64))  # plain cross-entropy
    # memory 20 over 4 classes: 5 per old class; the old classes are up-weighted by the formula
    weights = effective_number_weights(torch.tensor([5, 5, 500, 500]), 0.96)
    ratio = (1 - 0.96 ** 500) / (1 - 0.96 ** 5)
    assert weights[0].item() / weights[2].item() == pytest.approx(ratio)
    assert weights.sum().item() == pytest.approx(4)
    with pytest.raises(ValueError, match="beta must lie"):
        effective_number_weights(torch.tensor([0, 0]), -0.1)
    torch.testing.assert_close(effective_number_weights(torch.tensor([0, 0]), 0.9),
                               torch.ones(2, dtype=torch.float64))


def _reference_la(logits, targets, weights):
    total = 0.0
    for row, y in zip(logits, targets, strict=True):
        adjusted = [row[c] / weights[c] for c in range(len(row))]
        total = total - torch.log(softmax_row(adjusted)[int(y)])
    return total / len(targets)


def _reference_kd(student, teacher, temperature, weights=None):
    total = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        q = softmax_row(list(t_row), temperature)
        if weights is not None:
            q = [qc * w for qc, w in zip(q, weights, strict=True)]
            q = [qc / sum(q) for qc in q]
        p = softmax_row(list(s_row), temperature)
        total = total - sum(qc * torch.log(pc) for qc, pc in zip(q, p, strict=True))
    return total / len(student)


def _check(ours_fn, reference_fn, logits):
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    ours, reference = ours_fn(a), reference_fn(b)
    ours.backward()
    reference.backward()
    # our losses compute in float32 (the precision of training); the reference in float64
    torch.testing.assert_close(ours.double(), reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6)


def test_logits_alignment_and_both_distillations_match_the_equations():
    logits, teacher = _logits(0), _logits(1)
    targets = torch.tensor([0, 1, 2, 3, 0, 2])
    weights = torch.tensor(effective_weights([500, 500, 20, 3], 0.96), dtype=torch.float64)
    _check(lambda z: logits_aligned_cross_entropy(z, targets, weights),
           lambda z: _reference_la(z, targets, weights), logits)
    _check(lambda z: distillation(z, teacher, 2.0), lambda z: _reference_kd(z, teacher, 2.0), logits)
    _check(lambda z: balanced_distillation(z, teacher, 2.0, weights),
           lambda z: _reference_kd(z, teacher, 2.0, list(weights)), logits)


class _Watch(SupervisedPlugin):
    """Stage lengths, the expanded model at its start, and teacher / student agreement."""

    def __init__(self):
        super().__init__()
        self.stages, self.start_gap, self.agreement, self.optimizer_has_aux = [], [], [], []

    def before_training_exp(self, strategy, **kwargs):
        self.stages.append({})

    def before_training_iteration(self, strategy, **kwargs):
        counts = self.stages[-1]
        counts[strategy.stage] = counts.get(strategy.stage, 0) + 1
        in_optimizer = {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}
        if "feature_enhancement" in strategy.method_modules:
            aux = strategy.method_modules["feature_enhancement"].weight
            self.optimizer_has_aux.append((strategy.stage, id(aux) in in_optimizer))
        if strategy.stage == "boosting" and strategy.budget.optimizer_steps == 0:
            with torch.no_grad():  # the expanded model starts as the old model
                old = strategy.old_head(strategy.old_encoder(strategy.mb_x))[:, strategy.old_classes]
                expanded = strategy.expanded_logits(strategy.mb_x)[:, strategy.old_classes]
                self.start_gap.append(float((expanded - old).abs().max()))

    def after_training_exp(self, strategy, **kwargs):
        if strategy.teacher_encoder is None:
            return
        loader = torch.utils.data.DataLoader(strategy.adapted_dataset.eval(), batch_size=256)
        strategy.model.eval()
        with torch.no_grad():
            x, *_ = next(iter(loader))
            teacher = strategy.expanded_logits(x).argmax(1)
            student = strategy.model(x).argmax(1)
            visible = strategy.model.classes.visible()
            old_only = strategy.old_head(strategy.old_encoder(x))[:, visible].argmax(1)
        strategy.model.train()
        self.agreement.append((float((teacher == student).float().mean()),
                               float((teacher == visible[old_only]).float().mean())))


def test_boosting_then_compression_back_into_one_path_that_predicts_like_the_expanded_model(feature_cache_dir):
    watch = _Watch()
    # memory 80: 30 to 10 exemplars per old class against 30 images per new class, the ratio of
    # the authors' CIFAR-100 setting (20 against 500, after effective numbers), so balanced
    # distillation reweights the teacher moderately, as it does there
    run = pretrained_run("foster", feature_cache_dir, plugins=[watch], mem_size=80,
                                steps_per_experience=60, options={"compression_fraction": 0.5})
    strategy = run.strategy
    n_params = sum(p.numel() for p in strategy.model.parameters())
    ContinualRun(strategy, run.benchmark, progress=False).run()

    assert watch.stages == [{"initial": 60}] + [{"boosting": 30, "compression": 30}] * 4
    assert max(watch.start_gap) < 1e-4
    assert {stage for stage, held in watch.optimizer_has_aux if held} == {"boosting"}
    # one path again: no old, teacher or auxiliary module; the optimizer holds the model only
    assert strategy.old_encoder is None and strategy.teacher_encoder is None and len(strategy.method_modules) == 0
    assert sum(p.numel() for p in strategy.model.parameters()) == n_params
    in_optimizer = {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in strategy.model.parameters()}
    # on the experience's training data (new + memory, what compression distils on), the
    # compressed path predicts like the expanded model, far more than the old path did
    assert len(watch.agreement) == 4
    students, olds = zip(*watch.agreement, strict=True)
    assert min(students) >= 0.85 and sum(students) / 4 > sum(olds) / 4 + 0.1, watch.agreement


def test_foster_is_class_incremental_only(dil_root):
    with pytest.raises(ValueError, match="'foster' supports class-incremental scenarios, not domain-incremental"):
        build_strategy("foster", make_setup(dil_benchmark(dil_root), mem_size=6))
