"""The protocol's ``train_logits``: under ``batch`` every classification loss ranges over the
classes present in the batch, under ``seen`` over every seen class (the loss before the key)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from avalanche.training.losses import ICaRLLossPlugin
from avalanche_fixtures import digits, optimizer, tiny_classifier
from strategy_fixtures import cil_benchmark, make_setup
from test_foster import _reference_kd, _reference_la

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.losses.masked import (
    BatchClassCrossEntropy,
    batch_class_logits,
    masked_cross_entropy,
)
from avalanche_clip.pipeline.config_schema import RunConfig
from avalanche_clip.strategies import CLIPCrossEntropyStrategy, build_strategy
from avalanche_clip.strategies.icarl import BatchClassICaRLLoss

INF = float("-inf")


def _reference_batch_ce(logits, labels):
    """Loop by loop: the softmax of row i over the finite logits of the batch's classes only."""
    present = set(labels.tolist())
    total = 0.0
    for row, y in zip(logits.tolist(), labels.tolist(), strict=True):
        denominator = sum(math.exp(z) for k, z in enumerate(row) if k in present and z != INF)
        total += -row[y] + math.log(denominator)
    return total / len(labels)


def test_batch_class_cross_entropy_equals_a_loop_over_the_batchs_classes():
    torch.manual_seed(0)
    logits = torch.randn(12, 10, dtype=torch.float64) * 3
    logits[:, 8:] = INF  # classes not seen yet
    labels = torch.tensor([0, 3, 3, 5, 0, 7, 5, 3, 0, 7, 3, 5])
    masked = batch_class_logits(logits, labels)
    assert torch.isinf(masked[:, [1, 2, 4, 6, 8, 9]]).all() and torch.isfinite(masked[:, [0, 3, 5, 7]]).all()
    got = float(masked_cross_entropy(masked, labels))
    assert got == pytest.approx(_reference_batch_ce(logits, labels), rel=1e-6)
    assert got < float(masked_cross_entropy(logits, labels))  # fewer negatives, smaller loss
    assert float(BatchClassCrossEntropy()(logits, labels)) == pytest.approx(got, rel=1e-6)


def test_with_task_heads_a_column_is_the_class_its_label_names_in_the_rows_task():
    logits = torch.arange(8, dtype=torch.float32).reshape(2, 4)
    columns = torch.tensor([[4, 5, 6, -1], [0, 1, 2, 3]])  # row 0: task A, row 1: task B
    masked = batch_class_logits(logits, torch.tensor([5, 1]), columns)
    expected = torch.tensor([[INF, 1.0, INF, INF], [INF, 5.0, INF, INF]])
    assert torch.equal(masked, expected)


def _ce_step(train_logits, labels=(0, 1, 4, 4, 0, 1)):
    """A CE strategy over 6 seen classes, on a batch of ``labels``: its training loss and the
    gradient of that loss on every seen class's prompt (text projection trainable)."""
    names = digits(8)[2]
    model = tiny_classifier(names, trainable="projections")
    strategy = CLIPCrossEntropyStrategy(model=model, optimizer=optimizer(model), train_logits=train_logits)
    model.mark_seen(range(6))
    torch.manual_seed(1)
    x, y = torch.rand(len(labels), 3, 32, 32), torch.tensor(labels)
    strategy.mbatch = [x, y, torch.zeros(len(y), dtype=torch.long)]
    strategy.model.train()
    visible = model.classes.visible()
    image = model.encode_images(x)
    prompts = model.class_embeddings(visible)
    prompts.retain_grad()
    strategy.mb_output = model.classes.scatter(model.logit_scale() * image @ prompts.t(), visible)
    assert torch.equal(strategy.mb_output, model(x))  # the model's own logits
    loss = strategy.training_loss()
    loss.backward()
    projection = model.clip.text_projection
    return strategy, loss.detach(), prompts.grad, projection.grad.clone()


def test_under_batch_the_prompts_of_seen_classes_absent_from_the_batch_get_no_gradient():
    _, loss, grad, projection_grad = _ce_step("batch")
    absent = [2, 3, 5]  # seen, not in the batch
    assert torch.count_nonzero(grad[absent]) == 0
    assert (grad[[0, 1, 4]].norm(dim=1) > 0).all() and projection_grad.norm() > 0
    _, seen_loss, seen_grad, _ = _ce_step("seen")
    assert (seen_grad[absent].norm(dim=1) > 0).all()
    assert float(loss) < float(seen_loss)


def test_under_batch_the_step_is_the_ce_of_the_model_restricted_to_the_batchs_classes():
    strategy, loss, _, projection_grad = _ce_step("batch")
    model = strategy.model
    model.zero_grad()
    present = torch.tensor([0, 1, 4])
    logits = model.logits_of(model.encode_images(strategy.mb_x), present)  # the batch's prompts only
    reference = F.cross_entropy(logits, strategy.mb_y)
    reference.backward()
    assert float(loss) == pytest.approx(float(reference.detach()), rel=1e-6)
    torch.testing.assert_close(projection_grad, model.clip.text_projection.grad, rtol=1e-5, atol=1e-7)


def test_seen_is_the_loss_before_the_key_exactly():
    strategy, loss, _, _ = _ce_step("seen")
    assert torch.equal(loss, masked_cross_entropy(strategy.mb_output, strategy.mb_y))
    assert torch.equal(strategy.classification_logits(strategy.mb_output), strategy.mb_output)
    assert type(strategy._criterion) is torch.nn.CrossEntropyLoss  # what plugins (EWC) call
    batch, *_ = _ce_step("batch")
    assert isinstance(batch._criterion, BatchClassCrossEntropy)


def test_der_distillation_is_the_same_under_both_values_and_only_its_ce_terms_change():
    benchmark = cil_benchmark()
    losses = {}
    for value in ("batch", "seen"):
        strategy = build_strategy("der", make_setup(benchmark, mem_size=20, train_logits=value),
                                  alpha=0.3, beta=0.7)
        strategy.model.mark_seen(range(6))
        torch.manual_seed(0)
        x = torch.rand(10, 3, 32, 32)
        y = torch.tensor([2, 3, 3, 2, 2, 0, 1, 0, 1, 0])  # 4 memory rows (2, 3), 6 new ones (0, 1)
        stored = torch.randn(4, 10) * 3
        stored[:, 4:] = INF  # the logits of the classes seen when they entered memory
        strategy.stored_ids, strategy.stored_logits = torch.tensor([100, 101, 102, 103]), stored
        strategy.mbatch = [x, y, torch.zeros(10, dtype=torch.long)]
        strategy.mb_index = torch.cat([torch.tensor([100, 101, 102, 103]), torch.arange(6)])
        strategy.model.train()
        with torch.no_grad():
            output = strategy.model(x)
            strategy.mb_output = output
            loss = strategy.training_loss()
        mse = F.mse_loss(output[:4, :4], stored[:, :4])
        classified = batch_class_logits(output, y) if value == "batch" else output
        ce = masked_cross_entropy(classified[4:], y[4:]) + 0.7 * masked_cross_entropy(classified[:4], y[:4])
        assert float(loss) == pytest.approx(float(ce + 0.3 * mse), rel=1e-6)
        losses[value] = (float(loss), float(ce))
    # the distillation term is the same number; only the CE terms differ (seen: classes 4, 5 too)
    assert losses["batch"][0] - losses["batch"][1] == pytest.approx(losses["seen"][0] - losses["seen"][1], rel=1e-6)
    assert losses["batch"][1] < losses["seen"][1]


def test_icarl_bce_ranges_over_the_batchs_classes_and_keeps_the_old_classes_distillation():
    torch.manual_seed(0)
    logits, old_logits = torch.randn(5, 8), torch.randn(5, 8)
    targets = torch.tensor([2, 4, 4, 2, 0])  # 0 is an old class (an exemplar), 2 and 4 new
    ours, theirs = BatchClassICaRLLoss(), ICaRLLossPlugin()
    for plugin in (ours, theirs):
        plugin.old_classes = [0, 1]
        plugin.old_logits = old_logits.clone()
    ours.batch_classes = targets.unique()
    got = float(ours(logits, targets))
    columns = [0, 1, 2, 4]  # the batch's classes ∪ the old ones
    total = 0.0
    for i, y in enumerate(targets.tolist()):
        for k in columns:
            q = torch.sigmoid(old_logits[i, k]).item() if k in (0, 1) else float(k == y)
            p = torch.sigmoid(logits[i, k]).item()
            total -= q * math.log(p) + (1 - q) * math.log(1 - p)
    assert got == pytest.approx(total / (5 * len(columns)), rel=1e-5)
    # without a training batch (evaluation) it is Avalanche's loss over every output
    ours.old_logits = old_logits.clone()
    assert float(ours(logits, targets)) == pytest.approx(float(theirs(logits, targets)), rel=1e-6)


def test_icarl_keeps_avalanches_criterion_under_seen():
    benchmark = cil_benchmark()
    for value, kind in (("seen", ICaRLLossPlugin), ("batch", BatchClassICaRLLoss)):
        strategy = build_strategy("icarl", make_setup(benchmark, mem_size=20, train_logits=value))
        assert type(strategy._criterion) is kind
        assert sum(isinstance(p, ICaRLLossPlugin) for p in strategy.plugins) == 1
        assert strategy._criterion in strategy.plugins


def test_train_logits_is_a_protocol_key_checked_once():
    assert RunConfig().train_logits == "batch"
    assert RunConfig(train_logits="seen").to_dict()["train_logits"] == "seen"
    with pytest.raises(ConfigError, match=r"train_logits='all'; expected one of \('batch', 'seen'\)"):
        RunConfig(train_logits="all")
    with pytest.raises(ConfigError, match=r"strategy_options.gcl.train_logits='seen': train_logits is a "
                       "protocol key, the same for every method; set it at the top level"):
        RunConfig(strategy="gcl", strategy_options={"gcl": {"train_logits": "seen"}})
    model = tiny_classifier(digits(8)[2])
    with pytest.raises(ValueError, match=r"train_logits='every'; expected one of \('batch', 'seen'\)"):
        CLIPCrossEntropyStrategy(model=model, optimizer=optimizer(model), train_logits="every")


@pytest.mark.parametrize("name", ["ce", "gcl", "gdro", "der", "foster", "co2l", "ewc", "joint", "zero-shot",
                                  "icarl"])
def test_every_strategy_takes_the_setups_value(name):
    benchmark = cil_benchmark()
    for value in ("batch", "seen"):
        strategy = build_strategy(name, make_setup(benchmark, mem_size=20, train_logits=value))
        assert strategy.train_logits == value


class _FosterBoostingProbe(SupervisedPlugin):
    """Before each boosting backward: FOSTER's loss against the equations over the batch's
    classes (logits alignment, the auxiliary CE) plus the KD over every old class."""

    def __init__(self):
        super().__init__()
        self.checked, self.missing = 0, 0

    def before_backward(self, strategy, **kwargs):
        if strategy.stage != "boosting":
            return
        with torch.no_grad():
            visible = strategy.model.classes.visible().tolist()
            present = sorted(set(strategy.mb_y.tolist()))
            self.missing += len(visible) > len(present)
            columns = torch.tensor(present)
            targets = torch.tensor([present.index(int(y)) for y in strategy.mb_y])
            weights = strategy.class_weights[[visible.index(c) for c in present]]
            output = strategy.mb_output.double()
            reference = _reference_la(output[:, columns], targets, weights)
            reference = reference + F.cross_entropy(strategy.mb_aux["fe"][:, columns].double(), targets)
            reference = reference + strategy.lambda_okd * _reference_kd(
                output[:, strategy.old_classes], strategy.mb_aux["old"].double(), strategy.temperature)
        assert float(strategy.loss.detach()) == pytest.approx(float(reference), rel=1e-5)
        self.checked += 1


def test_foster_boosting_ce_terms_range_over_the_batchs_classes_and_its_kd_over_the_old_ones():
    benchmark = cil_benchmark(per_class=8)
    probe = _FosterBoostingProbe()
    strategy = build_strategy("foster", make_setup(benchmark, mem_size=6, train_mb_size=4, plugins=[probe]))
    assert strategy.train_logits == "batch"
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience, eval_streams=[])
    assert probe.checked > 0 and probe.missing > 0  # some batches lack a visible class: not vacuous


def test_the_batch_is_the_rows_that_train_when_some_do_not():
    """ZSCL's reference rows are not training data: ``rows`` names the rows whose labels count."""
    model = tiny_classifier(digits(8)[2])
    strategy = CLIPCrossEntropyStrategy(model=model, optimizer=optimizer(model))
    y = torch.tensor([0, 1, 4, 5])
    strategy.mbatch = [torch.rand(4, 3, 32, 32), y, torch.zeros(4, dtype=torch.long)]
    logits = torch.zeros(4, 10)
    finite = torch.isfinite(strategy.classification_logits(logits, torch.tensor([True, True, False, True])))
    assert finite.all(0).tolist() == [k in (0, 1, 5) for k in range(10)]
    assert torch.isfinite(strategy.classification_logits(logits)).all(0).tolist() == [k in (0, 1, 4, 5)
                                                                                      for k in range(10)]
