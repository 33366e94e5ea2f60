"""The pieces Co2L, CaSSLe and FOSTER share: stages within the step budget (each training only
its part), frozen copies, heads as logits of an embedding, method modules in the optimizer; the
registered search spaces and value checks."""

from __future__ import annotations

import pytest
import torch
from avalanche.core import SupervisedPlugin
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.models import LinearHeadClassifier, set_trainable
from avalanche_clip.pipeline.hyperparameters import check_hyperparameters
from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import (
    STRATEGIES,
    build_strategy,
    option_rules,
    strategy_hparams,
    strategy_info,
)
from avalanche_clip.strategies.registry import register_strategy
from avalanche_clip.strategies.snapshots import (
    FrozenHead,
    FrozenImageEncoder,
    image_path,
)
from avalanche_clip.strategies.staged import split_steps


@pytest.fixture(scope="module")
def small_benchmark():
    return cil_benchmark()


def test_split_steps_gives_each_stage_a_step_and_uses_the_whole_budget():
    assert split_steps(10, 0.5, ("a", "b")) == [("a", 5), ("b", 5)]
    assert split_steps(3, 0.1, ("a", "b")) == [("a", 2), ("b", 1)]
    assert split_steps(2, 0.9, ("a", "b")) == [("a", 1), ("b", 1)]
    assert split_steps(300, 130 / 300, ("boost", "compress")) == [("boost", 170), ("compress", 130)]
    assert split_steps(0, 0.5, ("a", "b")) == []
    with pytest.raises(ValueError, match="need at least 2 steps per experience, got 1"):
        split_steps(1, 0.5, ("a", "b"))


class _WhatChanged(SupervisedPlugin):
    """Per step: the stage and which parameter groups the update changed."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def _groups(self, strategy):
        model = strategy.model
        return {
            "image": [p for p in image_path(model).parameters() if p.requires_grad],
            "head": [p for n, p in model.clip.named_parameters() if p.requires_grad and not n.startswith("visual.")],
            "method": list(strategy.method_modules.parameters()),
        }

    def before_update(self, strategy, **kwargs):
        self._before = {k: [p.detach().clone() for p in ps] for k, ps in self._groups(strategy).items()}

    def after_update(self, strategy, **kwargs):
        after = self._groups(strategy)
        changed = {k for k, ps in after.items()
                   if any(not torch.equal(a, b) for a, b in zip(self._before[k], ps, strict=True))}
        self.steps.append((strategy.clock.train_exp_counter, strategy.stage, changed))


@pytest.mark.parametrize("name", ["co2l", "cassle"])
def test_representation_then_classifier_each_train_only_their_part(name):
    benchmark = cil_benchmark()
    watch = _WhatChanged()
    strategy = build_strategy(name, make_setup(benchmark, plugins=[watch], steps_per_experience=4),
                              classifier_fraction=0.5)
    records = ContinualRun(strategy, benchmark, progress=False).run()
    assert [r["optimizer_steps"] for r in records] == [4] * 5
    stages = [(exp, stage) for exp, stage, _ in watch.steps]
    assert stages == [(e, s) for e in range(5) for s in ["representation"] * 2 + ["classifier"] * 2]
    for _, stage, changed in watch.steps:
        expected = {"image", "method"} if stage == "representation" else {"head"}
        assert changed == expected, (stage, changed)


def test_logits_of_an_embedding_are_the_models_own_and_frozen_copies_stay_put():
    benchmark = cil_benchmark()
    setup = make_setup(benchmark)
    x = torch.stack([benchmark.train_stream[0].dataset[i][0] for i in range(6)])
    for model in (setup.classifier, LinearHeadClassifier.from_clip_classifier(setup.classifier)):
        model.mark_seen([0, 1, 2])
        with torch.no_grad():
            torch.testing.assert_close(model.logits_of(model.encode_images(x)), model(x))
            encoder, head = FrozenImageEncoder(model), FrozenHead(model)
            visible = model.classes.visible()
            torch.testing.assert_close(head(encoder(x))[:, visible], model(x)[:, visible], rtol=1e-4, atol=1e-4)  # s·(a·b) vs (s·b)·a in float32
            before = encoder(x)
            for p in image_path(model).parameters():
                p.add_(0.1)
            assert not torch.allclose(model.encode_images(x), before)
            torch.testing.assert_close(encoder(x), before, rtol=0, atol=0)
            assert not any(p.requires_grad for p in encoder.parameters())


def test_method_modules_train_with_the_model_and_the_head_must_be_trainable():
    benchmark = cil_benchmark()
    strategy = build_strategy("co2l", make_setup(benchmark))
    ContinualRun(strategy, benchmark, progress=False).run()
    in_optimizer = {id(p) for g in strategy.optimizer.param_groups for p in g["params"]}
    assert {id(p) for p in strategy.method_modules["projector"].parameters()} <= in_optimizer
    assert strategy.optimizer.state[next(strategy.method_modules["projector"].parameters())]  # stepped

    setup = make_setup(benchmark)
    set_trainable(setup.classifier.clip, "image")  # the prompt head cannot train
    with pytest.raises(ValueError, match="the head has no trainable parameter.*or use head: linear"):
        build_strategy("co2l", setup)
    build_strategy("co2l", make_setup(benchmark, head="linear"))  # the linear head trains


@pytest.mark.parametrize("name", STRATEGIES.list())
def test_search_spaces_name_accepted_options_and_hold_the_defaults(name):
    """Every registered space (``tune`` draws from it) names hyper-parameters the strategy
    accepts, with ranges holding the registered defaults; Co2L, FOSTER and CaSSLe have one."""
    space = strategy_info(name).search_space or {}
    defaults = strategy_hparams(name)
    assert set(space) <= set(defaults), sorted(set(space) - set(defaults))
    for key, spec in space.items():
        default = defaults[key]
        if default is None:  # a per-method option without its own default (lr, train_epochs)
            continue
        if spec["type"] == "categorical":
            assert default in spec["choices"], key
        else:
            assert spec["low"] <= default <= spec["high"], (key, default, spec)
    if name in ("co2l", "foster", "cassle"):
        assert space


@pytest.mark.parametrize("name, hparams, message", [
    ("co2l", {"classifier_fraction": 1.5}, r"classifier_fraction must lie in \(0, 1\), got 1.5"),
    ("co2l", {"kappa_past": 0}, "kappa_past must be a number > 0, got 0"),
    ("foster", {"beta1": 1.0}, r"beta1 must lie in \[0, 1\), got 1.0"),
    ("foster", {"compression_fraction": 0}, r"compression_fraction must lie in \(0, 1\), got 0"),
    ("cassle", {"distill_lambda": -1}, "distill_lambda must be a number >= 0, got -1"),
    # the rules each strategy declares beside its constructor, read by the pipeline too
    ("ewc", {"ewc_lambda": -1.0}, "ewc_lambda must be a number >= 0, got -1.0"),
    ("der", {"alpha": -0.5}, "alpha must be a number >= 0, got -0.5"),
    ("joint-converged", {"budget_scale": 0}, "budget_scale must be a number > 0, got 0"),
])
def test_bad_values_fail_before_training_and_when_built(name, hparams, message, small_benchmark):
    with pytest.raises(ValueError, match=f"strategy '{name}': {message}"):
        check_hyperparameters(name, hparams)  # what run / sweep validation calls up front
    with pytest.raises(ValueError, match=message):
        build_strategy(name, make_setup(small_benchmark), **hparams)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_declared_option_rules_name_accepted_options_and_take_the_defaults(name):
    """A strategy's declared rules (which its constructor applies and the pipeline reads) name
    options it accepts, and its own defaults pass them."""
    rules, defaults = option_rules(name), strategy_hparams(name)
    assert set(rules) <= set(defaults), sorted(set(rules) - set(defaults))
    for key, rule in rules.items():
        if defaults[key] is not None:  # lr / train_epochs: None is the run's value
            rule(key, defaults[key])


@pytest.mark.parametrize("spec", [
    {"type": "uniform", "low": 0.1, "high": 1.0}, {"type": "float", "low": 1.0, "high": 0.1},
    {"type": "float", "low": 0.0, "high": 1.0, "log": True}, {"type": "categorical", "choices": []},
])
def test_malformed_search_spaces_are_refused_at_registration(spec):
    def factory(setup, *, tau: float = 0.5):
        return None

    with pytest.raises(ValueError, match="search space"):
        register_strategy("never-registered", description="-", search_space={"tau": spec})(factory)
    assert "never-registered" not in STRATEGIES
