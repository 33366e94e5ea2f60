"""GCL / GDRO strategies under ``train_logits="seen"``: the loss also contrasts each image with
the prompts of the seen classes absent from the batch, from the forward's own encode; under
``"batch"`` (the default) the loss is the in-batch one. The plugins' criterion follows."""

from __future__ import annotations

import math

import pytest
import torch
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier
from test_batch_criterion import _batch, _logmeanexp

from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.strategies import GCLStrategy, GDROStrategy

SEEN = [0, 1, 2, 3, 4]
BATCH_LABELS = torch.tensor([0, 1, 0, 1, 1, 0])  # classes 2, 3, 4 seen but absent


def _strategy(cls, train_logits, **hparams):
    model = tiny_classifier(digits(8)[2], trainable="projections")
    model.mark_seen(SEEN)
    strategy = cls(model=model, optimizer=optimizer(model), train_mb_size=8, seed=0,
                   train_logits=train_logits, **hparams)
    strategy.model.train()
    x = torch.stack([digits(8)[0][i][0] for i in range(len(BATCH_LABELS))])
    strategy.mbatch = [x, BATCH_LABELS.clone(), torch.zeros(len(BATCH_LABELS), dtype=torch.long)]
    strategy.mb_index = torch.arange(10, 10 + len(BATCH_LABELS))
    return strategy


class _Encoded:
    """Records the real ``class_embeddings`` outputs (ids, embeddings with retained grad)."""

    def __init__(self, model):
        self.calls, self._real = [], model.class_embeddings
        model.class_embeddings = self

    def __call__(self, class_ids=None):
        out = self._real(class_ids)
        out.retain_grad()
        self.calls.append((class_ids.clone(), out))
        return out


@pytest.mark.parametrize("cls", [GCLStrategy, GDROStrategy])
def test_an_absent_seen_class_prompt_gets_gradient_under_seen_only(cls):
    grads = {}
    for setting in ("seen", "batch"):
        strategy = _strategy(cls, setting)
        encoded = _Encoded(strategy.model)
        strategy.mb_output = strategy.training_forward()
        strategy.training_loss().backward()
        assert len(encoded.calls) == 1  # one encode per step: the loss reuses the forward's prompts
        classes, prompts = encoded.calls[0]
        grads[setting] = {int(k): prompts.grad[r] for r, k in enumerate(classes)}
    assert sorted(grads["seen"]) == SEEN and sorted(grads["batch"]) == [0, 1]
    for k in (2, 3, 4):  # absent from the batch: a negative only under "seen"
        assert float(grads["seen"][k].norm()) > 1e-6, k
        assert k not in grads["batch"]  # not even encoded: no gradient reaches it


@pytest.mark.parametrize("cls, make", [
    (GCLStrategy, lambda: GCLLoss(tau=0.1, gamma=0.5)),
    (GDROStrategy, lambda: GDROLoss(num_classes=10, tau=0.5, margin=0.5, dro_lambda=0.7, gamma=0.5)),
])
@pytest.mark.parametrize("setting", ["seen", "batch"])
def test_the_strategy_loss_is_the_loss_with_the_absent_seen_prompts(cls, make, setting):
    hparams = {"tau": 0.1, "gamma": 0.5} if cls is GCLStrategy else {
        "tau": 0.5, "margin": 0.5, "dro_lambda": 0.7, "gamma": 0.5, "inclusion_weights": False}
    strategy = _strategy(cls, setting, **hparams)
    strategy.mb_output = strategy.training_forward()
    value = strategy.training_loss()
    model = strategy.model
    with torch.no_grad():  # an independent second computation of the same batch
        image = model.encode_images(strategy.mb_x)
        text = model.class_embeddings(BATCH_LABELS)
        absent = model.class_embeddings(torch.tensor([2, 3, 4]))
        index = strategy.mb_index
        with_absent = make().train()(image, text, BATCH_LABELS, index, extra_negatives=absent)
        in_batch = make().train()(image, text, BATCH_LABELS, index)
    want, other = (with_absent, in_batch) if setting == "seen" else (in_batch, with_absent)
    torch.testing.assert_close(value.detach(), want, rtol=1e-5, atol=1e-6)
    assert not math.isclose(float(want), float(other), rel_tol=1e-3)  # the setting matters here


def _reference_gcl_seen(s, s_extra, y, tau):
    """F_B = mean_i τ[log mean over (j≠i) ∪ E of e^{(s−S_ii)/τ} + log mean_{j≠i} e^{(S_ji−S_ii)/τ}]."""
    rows = []
    for i in range(len(y)):
        others = torch.tensor([j for j in range(len(y)) if j != i])
        image_anchor = torch.cat([s[i, others], s_extra[i]]) - s[i, i]
        rows.append(tau * (_logmeanexp(image_anchor / tau) + _logmeanexp((s[others, i] - s[i, i]) / tau)))
    return torch.stack(rows).mean()


def test_the_plugins_criterion_follows_seen():
    model = tiny_classifier(digits(8)[2], trainable="last:1")
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), mem_size=4, train_mb_size=8, seed=0,
                           tau=0.1, train_logits="seen")
    strategy.train(avalanche_benchmark("class_incremental_benchmark", per_class=8).train_stream[0])
    model = strategy.model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = _batch()  # experience 1's classes; classes 0, 1 are seen and absent
    seen = model.classes.visible()
    assert seen.tolist() == [0, 1] and not set(y.tolist()) & {0, 1}

    value = strategy._criterion(model(x), y)
    grads = torch.autograd.grad(value, params, allow_unused=True)
    image = model.encode_images(x)
    expected = _reference_gcl_seen(image @ model.class_embeddings(y).t(),
                                   image @ model.class_embeddings(seen).t(), y, 0.1)
    expected_grads = torch.autograd.grad(expected, params, allow_unused=True)
    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    compared = 0
    for got, want in zip(grads, expected_grads, strict=True):
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
            compared += 1
    assert compared > 0


def test_the_default_is_batch():
    model = tiny_classifier(digits(8)[2])
    assert GCLStrategy(model=model, optimizer=optimizer(model)).train_logits == "batch"
    assert GDROStrategy(model=model, optimizer=optimizer(model)).train_logits == "batch"


def test_per_task_heads_keep_the_batch_negatives_under_seen():
    """With one head per task, "seen" trains exactly as "batch" (documented: the loss keeps the
    batch's negatives there), bit for bit."""
    from test_task_incremental import _classifier, _task_benchmark

    states = []
    for setting in ("seen", "batch"):
        benchmark, names = _task_benchmark(local=False, pretrained=False)
        classifier = _classifier(names, benchmark, local=False, pretrained=False)
        strategy = GCLStrategy(model=classifier, optimizer=optimizer(classifier, lr=1e-2), train_mb_size=8,
                               mem_size=4, seed=0, train_logits=setting)
        for t in range(2):
            strategy.train(benchmark.train_stream[t])
        states.append({k: v.clone() for k, v in strategy.model.state_dict().items()})
        states.append({k: v.clone() for k, v in strategy.contrastive_loss.state_dict().items()})
    for seen, batch in ((states[0], states[2]), (states[1], states[3])):
        assert all(torch.equal(seen[k].nan_to_num(-9.0), batch[k].nan_to_num(-9.0)) for k in batch)
    assert torch.isfinite(states[1]["log_u"]).any()  # the loss was trained
