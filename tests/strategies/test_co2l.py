"""Co2L: its losses against the paper's equations, memory samples never anchors, the
class-balanced classifier stage."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from contrastive_references import relation_distillation, supcon
from strategy_fixtures import dil_benchmark, make_setup

from avalanche_clip.losses.supcon import relation_distillation_loss, supervised_contrastive_loss
from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import build_strategy
from avalanche_clip.strategies.decoupled import balanced_class_weights, class_draw_probabilities


def _batch(seed=0, n=9, d=5):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 2, 3, 1][:n])
    return z, labels


def _value_and_grad(fn, z):
    z = z.clone().requires_grad_(True)
    value = fn(z)
    (grad,) = torch.autograd.grad(value, z)
    return value.detach(), grad


@pytest.mark.parametrize("tau,base", [(0.5, 0.07), (0.1, 0.1)])
def test_asymmetric_supcon_matches_the_paper_equation_values_and_gradients(tau, base):
    z, labels = _batch()
    anchors = torch.tensor([True, True, False, True, False, True, False, True, True])  # 3 memory rows
    ours = _value_and_grad(lambda v: supervised_contrastive_loss(
        v, labels, tau=tau, anchors=anchors, scale=tau / base, reduction="batch"), z)
    reference = _value_and_grad(lambda v: supcon(v, labels, tau, anchors, scale=tau / base), z)
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours[1], reference[1], rtol=1e-10, atol=1e-12)
    assert ours[0] > 0 and ours[1].abs().sum() > 0


def test_memory_rows_enter_only_the_anchors_sums():
    z, labels = _batch(1)
    anchors = torch.tensor([True, False, True, True, False, True, True, False, True])
    value, grad = _value_and_grad(lambda v: supervised_contrastive_loss(
        v, labels, tau=0.5, anchors=anchors, reduction="batch"), z)
    everyone = supervised_contrastive_loss(z, labels, tau=0.5, reduction="batch")
    assert not torch.isclose(value, everyone)  # the memory rows' own terms are gone ...
    assert grad[~anchors].abs().sum() > 0  # ... but they are still negatives/positives of anchors


def test_an_anchor_without_positive_is_left_out_and_no_anchor_gives_an_attached_zero():
    z, _ = _batch(2, n=4)
    labels = torch.tensor([0, 1, 2, 3])  # one view, all classes distinct: no positives
    z = z.requires_grad_(True)
    loss = supervised_contrastive_loss(z, labels, tau=0.5)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()  # still part of the graph
    assert torch.equal(z.grad, torch.zeros_like(z))


def test_relation_distillation_matches_the_paper_equation_values_and_gradients():
    z, _ = _batch(3)
    z_past = torch.randn(z.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ours = _value_and_grad(lambda v: relation_distillation_loss(v, z_past, kappa=0.2, kappa_past=0.01), z)
    reference = _value_and_grad(lambda v: relation_distillation(v, z_past, 0.2, 0.01), z)
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours[1], reference[1], rtol=1e-10, atol=1e-12)
    # the past model gets no gradient, and distilling a model to itself is at its minimum
    same = z.clone().requires_grad_(True)
    relation_distillation_loss(same, same, kappa=0.2, kappa_past=0.2).backward()
    torch.testing.assert_close(same.grad, torch.zeros_like(same), rtol=0, atol=1e-12)


def test_class_balanced_weights_make_every_class_count_alike():
    targets = [0] * 30 + [1] * 10 + [2] * 2 + [3] * 3  # new data: 0, 1; memory: 2, 3
    union = class_draw_probabilities([(45, 16)], targets, 5)
    torch.testing.assert_close(union, torch.tensor([30, 10, 2, 3, 0], dtype=torch.float64) / 45)
    share = class_draw_probabilities([(40, 12), (5, 4)], targets, 5)
    expected = torch.tensor([0.75 * 30 / 40, 0.75 * 10 / 40, 0.25 * 2 / 5, 0.25 * 3 / 5, 0],
                            dtype=torch.float64)
    torch.testing.assert_close(share, expected)
    for p in (union, share):
        weights = balanced_class_weights(p).double()
        # expected weight of a draw is 1, and every present class carries 1/C of it
        torch.testing.assert_close((p * weights).sum(), torch.tensor(1.0, dtype=torch.float64))
        torch.testing.assert_close(p[:4] * weights[:4], torch.full((4,), 0.25, dtype=torch.float64))
        assert weights[4] == 0


class _RecordAnchors(SupervisedPlugin):
    """Checks every representation step's loss against the reference with the non-memory rows as
    anchors."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def before_backward(self, strategy, **kwargs):
        if strategy.stage != "representation":
            return
        in_memory = torch.isin(strategy.mb_index.cpu(), strategy.replay.buffer_ids())
        z = strategy.mb_projection.detach().double().cpu()
        labels = strategy.mb_y.cpu()
        reference = supcon(z, labels, strategy.tau, ~in_memory, scale=strategy.tau / strategy.base_temperature)
        as_if_all_anchors = supcon(z, labels, strategy.tau, None, scale=strategy.tau / strategy.base_temperature)
        past = strategy.previous_projection()
        if past is not None:
            distill = strategy.ird_lambda * relation_distillation(z, past.double().cpu(), strategy.kappa,
                                                                  strategy.kappa_past)
            reference, as_if_all_anchors = reference + distill, as_if_all_anchors + distill
        self.steps.append((torch.equal(strategy.mb_anchors.cpu(), ~in_memory), int(in_memory.sum()),
                           float(strategy.loss.detach()), float(reference), float(as_if_all_anchors)))


def test_memory_samples_never_act_as_anchors_in_training(dil_root):
    # domain-incremental: memory holds the same classes, so memory rows have positives and
    # would change the loss if they were anchors
    benchmark = dil_benchmark(dil_root)
    recorder = _RecordAnchors()
    setup = make_setup(benchmark, mem_size=6, plugins=[recorder], steps_per_experience=6)
    # half of each experience's 6 steps for the classifier: 3 representation steps each
    ContinualRun(build_strategy("co2l", setup, classifier_fraction=0.5), benchmark, progress=False).run()
    with_memory = [s for s in recorder.steps if s[1] > 0]
    assert len(recorder.steps) == 6 and len(with_memory) == 3
    for anchors_are_new_rows, _, loss, reference, _ in recorder.steps:
        assert anchors_are_new_rows
        assert loss == pytest.approx(reference, rel=1e-5, abs=1e-6)
    assert any(abs(s[4] - s[3]) > 1e-3 for s in with_memory)  # the test can tell the difference
