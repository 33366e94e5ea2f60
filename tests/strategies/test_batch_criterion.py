"""``strategy._criterion(model(x), y)`` on GCL / GDRO is the batch's contrastive objective, with
its exact gradient, read from the features of that forward, and never touches the loss state."""

from __future__ import annotations

import math

import pytest
import torch
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier

from avalanche_clip.losses import GCLLoss, GDROLoss
from avalanche_clip.strategies import GCLStrategy, GDROStrategy
from avalanche_clip.strategies.batch_criterion import BatchContrastiveCriterion


def _logmeanexp(values: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(values, 0) - math.log(len(values))


def reference_gcl(s: torch.Tensor, y: torch.Tensor, tau: float) -> torch.Tensor:
    """F_B = mean_i τ[log mean_{j≠i} e^{(S_ij−S_ii)/τ} + log mean_{j≠i} e^{(S_ji−S_ii)/τ}]."""
    rows = []
    for i in range(len(y)):
        others = torch.tensor([j for j in range(len(y)) if j != i])
        rows.append(tau * (_logmeanexp((s[i, others] - s[i, i]) / tau)
                           + _logmeanexp((s[others, i] - s[i, i]) / tau)))
    return torch.stack(rows).mean()


def reference_gdro(s, y, tau: float, margin: float, lam: float) -> torch.Tensor:
    """F_B = λ log mean_k exp(L_k/λ), L_k = mean_{y_i=k} τ[log mean_{y_j≠k} e^{ℓ(S_ii−S_ij)/τ}
    + log mean_{y_j≠k} e^{ℓ(S_ii−S_ji)/τ}], ℓ(d) = max(m − d, 0)²."""
    def hinge(d):
        return torch.clamp(margin - d, min=0) ** 2

    per_class = []
    for k in sorted(set(y.tolist())):
        members = [i for i in range(len(y)) if y[i] == k]
        negatives = torch.tensor([j for j in range(len(y)) if y[j] != k])
        terms = [tau * (_logmeanexp(hinge(s[i, i] - s[i, negatives]) / tau)
                        + _logmeanexp(hinge(s[i, i] - s[negatives, i]) / tau)) for i in members]
        per_class.append(torch.stack(terms).mean())
    losses = torch.stack(per_class)
    return lam * (torch.logsumexp(losses / lam, 0) - math.log(len(losses)))


def _trained(cls, **hparams):
    model = tiny_classifier(digits(8)[2], trainable="last:1")
    strategy = cls(model=model, optimizer=optimizer(model), mem_size=4, train_mb_size=8, seed=0, **hparams)
    strategy.train(avalanche_benchmark("class_incremental_benchmark", per_class=8).train_stream[0])
    return strategy


def _batch():
    """Six samples of experience 1, three of each of its two classes, interleaved."""
    data = avalanche_benchmark("class_incremental_benchmark", per_class=8).train_stream[1].dataset
    targets = [int(t) for t in data.targets]
    first, second = sorted(set(targets))
    picks = [p for pair in zip([i for i, t in enumerate(targets) if t == first][:3],
                               [i for i, t in enumerate(targets) if t == second][:3], strict=True)
             for p in pair]
    return torch.stack([data[i][0] for i in picks]), torch.tensor([targets[i] for i in picks])


@pytest.mark.parametrize("cls, hparams", [
    (GCLStrategy, {"tau": 0.1}),
    (GDROStrategy, {"tau": 0.5, "margin": 0.5, "dro_lambda": 0.7}),
])
def test_criterion_is_the_batch_objective_with_its_gradient(cls, hparams):
    strategy = _trained(cls, **hparams)
    model = strategy.model.eval()
    state = {k: v.clone() for k, v in strategy.contrastive_loss.state_dict().items()}
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = _batch()

    value = strategy._criterion(model(x), y)  # what EWC does: out = model(x); criterion(out, y)
    grads = torch.autograd.grad(value, params, allow_unused=True)

    image = model.encode_images(x)
    s = image @ model.class_embeddings(y).t()  # S_ij = a_i · b_{y_j}
    if cls is GCLStrategy:
        expected = reference_gcl(s, y, hparams["tau"])
    else:
        expected = reference_gdro(s, y, hparams["tau"], hparams["margin"], hparams["dro_lambda"])
    expected_grads = torch.autograd.grad(expected, params, allow_unused=True)

    torch.testing.assert_close(value.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    compared = 0
    for got, want in zip(grads, expected_grads, strict=True):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
            continue
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        compared += 1
    assert compared > 0
    for key, saved in state.items():  # the training loss's state is untouched
        torch.testing.assert_close(strategy.contrastive_loss.state_dict()[key], saved, rtol=0, atol=0,
                                   equal_nan=True)


def test_criterion_refuses_an_output_it_did_not_see_computed():
    strategy = _trained(GCLStrategy)
    x, y = _batch()
    output = strategy.model(x)
    strategy.model(x[:3])  # a later forward
    with pytest.raises(RuntimeError, match="call it on that forward's output"):
        strategy._criterion(output, y)
    with pytest.raises(RuntimeError, match="call it on that forward's output"):
        strategy._criterion(torch.randn(6, 10), y)


def test_criterion_ignores_forwards_of_a_copy_of_the_model():
    import copy

    strategy = _trained(GCLStrategy)
    x, y = _batch()
    output = strategy.model(x)
    copy.deepcopy(strategy.model)(x)  # e.g. LwF's previous model, which carries the hook
    assert torch.isfinite(strategy._criterion(output, y))


@pytest.mark.parametrize("loss", [
    GCLLoss(num_samples=50, tau=0.1, gamma=0.3, negatives="class"),
    GDROLoss(num_samples=50, num_classes=10, tau=0.4, margin=0.2, dro_lambda=0.7, gamma=0.3, class_gamma=0.6),
])
def test_batch_local_copy_keeps_the_hyper_parameters_and_uses_only_the_batch(loss):
    fresh = loss.batch_local(6)
    assert type(fresh) is type(loss) and fresh is not loss
    assert (fresh.num_samples, fresh.gamma, getattr(fresh, "class_gamma", 1.0)) == (6, 1.0, 1.0)
    for name in ("tau", "negatives", "num_classes", "margin", "dro_lambda"):
        assert getattr(fresh, name, None) == getattr(loss, name, None), name
    assert bool(torch.isnan(fresh.log_u).all()) and len(fresh.log_u) == 6  # nothing stored read


def test_criterion_refuses_a_loss_without_a_batch_local_copy():
    model = tiny_classifier(digits(8)[2])
    with pytest.raises(TypeError, match="MSELoss has no batch_local"):
        BatchContrastiveCriterion(torch.nn.MSELoss(), model)
