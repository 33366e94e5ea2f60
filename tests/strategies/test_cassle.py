"""CaSSLe: its losses against the paper's equations, no memory, a trained predictor and a
frozen previous model."""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin
from contrastive_references import instance_contrast, supcon
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.losses.supcon import (
    predictive_contrastive_distillation,
    supervised_contrastive_loss,
)
from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import build_strategy
from avalanche_clip.strategies.snapshots import image_path
from avalanche_clip.training.plugins.memory import ids_digest, sample_ids


def _value_and_grad(fn, z):
    z = z.clone().requires_grad_(True)
    value = fn(z)
    (grad,) = torch.autograd.grad(value, z)
    return value.detach(), grad


def test_supcon_over_anchors_with_positives_matches_the_equation():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 6, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 0, 3, 1])  # row 3 and row 6 have no positive
    ours = _value_and_grad(lambda v: supervised_contrastive_loss(v, labels, tau=0.1, reduction="anchors"), z)
    reference = _value_and_grad(lambda v: supcon(v, labels, 0.1, reduction="anchors"), z)
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours[1], reference[1], rtol=1e-10, atol=1e-12)


def test_predictive_distillation_matches_the_equation_and_leaves_the_frozen_side_alone():
    g = torch.Generator().manual_seed(1)
    predicted = torch.randn(7, 5, generator=g, dtype=torch.float64)
    frozen = torch.randn(7, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    ours = _value_and_grad(lambda p: predictive_contrastive_distillation(p, frozen, temperature=0.2), predicted)
    reference = _value_and_grad(
        lambda p: 0.5 * (instance_contrast(p, frozen.detach(), 0.2) + instance_contrast(frozen.detach(), p, 0.2)),
        predicted)
    torch.testing.assert_close(ours[0], reference[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ours[1], reference[1], rtol=1e-10, atol=1e-12)
    predictive_contrastive_distillation(predicted.requires_grad_(True), frozen, temperature=0.2).backward()
    assert frozen.grad is None and predicted.grad is not None


class _Watch(SupervisedPlugin):
    """Per experience: the ids trained on, the predictor before / after, the frozen copy."""

    def __init__(self):
        super().__init__()
        self.ids, self.predictor, self.previous_equals_last_model = [], [], []
        self._last_model = None

    def before_training_exp(self, strategy, **kwargs):
        self.ids.append(set())
        self._predictor_before = [p.detach().clone() for p in strategy.method_modules["predictor"].parameters()]

    def before_training_iteration(self, strategy, **kwargs):
        self.ids[-1].update(strategy.mb_index.tolist())
        if strategy.budget.optimizer_steps == 0 and self._last_model is not None:
            previous = {**strategy.previous_encoder.path.state_dict(),
                        **{f"g.{k}": v for k, v in strategy.previous_modules["projector"].state_dict().items()}}
            self.previous_equals_last_model.append(
                all(torch.equal(previous[k], v) for k, v in self._last_model.items()))

    def after_training_exp(self, strategy, **kwargs):
        after = list(strategy.method_modules["predictor"].parameters())
        self.predictor.append(any(not torch.equal(a, b) for a, b in zip(self._predictor_before, after, strict=True)))
        self._last_model = {**{k: v.clone() for k, v in image_path(strategy.model).state_dict().items()},
                            **{f"g.{k}": v.clone() for k, v in strategy.method_modules["projector"].state_dict().items()}}


def test_cassle_uses_no_memory_trains_its_predictor_and_distils_from_the_last_model():
    benchmark = cil_benchmark()
    watch = _Watch()
    setup = make_setup(benchmark, mem_size=20, plugins=[watch], steps_per_experience=4)
    strategy = build_strategy("cassle", setup)
    records = ContinualRun(strategy, benchmark, progress=False).run()
    assert strategy.replay.mem_size == 0
    assert {r["memory_digest"] for r in records} == {ids_digest([])}
    for trained, experience in zip(watch.ids, benchmark.train_stream, strict=True):
        assert trained <= set(sample_ids(experience.dataset))  # only the current experience's data
    # the predictor is used (and trained) from the second experience on, never in the first
    assert watch.predictor == [False, True, True, True, True]
    assert watch.previous_equals_last_model == [True] * 4

