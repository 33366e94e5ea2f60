"""Checkpoints with Avalanche's plugins, for our strategies and Avalanche's own Naive: explicit
states that load with weights_only=True, a resumed run equal to an uninterrupted one, and a clear
refusal of a plugin whose state cannot be captured."""

from __future__ import annotations

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training import Naive
from avalanche.training.plugins import (
    EarlyStoppingPlugin,
    EvaluationPlugin,
    EWCPlugin,
    GEMPlugin,
    LRSchedulerPlugin,
    LwFPlugin,
    ReplayPlugin,
)
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier
from strategy_fixtures import cil_benchmark, make_setup
from torch import nn

from avalanche_clip.strategies import GCLStrategy, GDROStrategy, build_strategy
from avalanche_clip.training.checkpoint import (
    CheckpointMismatchError,
    NotCheckpointableError,
    load_checkpoint,
    save_checkpoint,
)
from avalanche_clip.training.plugin_states import plugin_state
from avalanche_clip.training.plugins import SeenClassesPlugin, SynapticIntelligencePlugin

N_EXPERIENCES = 4


def _naive(seed: int = 0):
    model = tiny_classifier(digits(8)[2], seed=seed)
    opt = optimizer(model)
    plugins = [LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7),
                                 step_granularity="iteration", reset_lr=False, reset_scheduler=False),
               EWCPlugin(ewc_lambda=50.0), SeenClassesPlugin(model.num_classes)]
    return Naive(model=model, optimizer=opt, criterion=nn.CrossEntropyLoss(), train_mb_size=8,
                 train_epochs=2, plugins=plugins, evaluator=EvaluationPlugin(accuracy_metrics(experience=True)))


def _gdro(seed: int = 0):
    model = tiny_classifier(digits(8)[2], seed=seed)
    opt = optimizer(model)
    scheduler = LRSchedulerPlugin(torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8),
                                  step_granularity="iteration", reset_lr=False, reset_scheduler=False)
    return GDROStrategy(model=model, optimizer=opt, mem_size=8, train_mb_size=8, train_epochs=2, seed=seed,
                        plugins=[scheduler], evaluator=EvaluationPlugin(accuracy_metrics(experience=True)))


def _run(build, benchmark, path, *, stop_after=None, resume=False):
    """Train every experience, checkpointing after each; stop early or resume from ``path``."""
    strategy = build()
    start = load_checkpoint(path, strategy=strategy, train_stream=benchmark.train_stream) + 1 if resume else 0
    accuracies = []
    for t in range(start, N_EXPERIENCES):
        strategy.train(benchmark.train_stream[t])
        metrics = strategy.eval(benchmark.test_stream[: t + 1])
        accuracies.append(sorted((k, v) for k, v in metrics.items() if k.startswith("Top1_Acc_Exp")))
        save_checkpoint(path, strategy=strategy, experience=t)
        if t == stop_after:
            break
    return strategy, accuracies


@pytest.mark.parametrize("build", [_naive, _gdro], ids=["naive+lr+ewc", "gdro+lr"])
def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path, build):
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    reference, ref_accuracies = _run(build, benchmark, tmp_path / "reference.pt")
    _run(build, benchmark, tmp_path / "resumed.pt", stop_after=1)
    torch.manual_seed(1234)  # the new process's RNG differs; the checkpoint restores it
    resumed, accuracies = _run(build, benchmark, tmp_path / "resumed.pt", resume=True)

    assert accuracies == ref_accuracies[2:]
    for (key, a), (_, b) in zip(reference.model.state_dict().items(), resumed.model.state_dict().items(),
                                strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=key)
    assert resumed.optimizer.param_groups[0]["lr"] == reference.optimizer.param_groups[0]["lr"] < 1e-3
    for ours, theirs in zip(resumed.plugins, reference.plugins, strict=True):
        _assert_same(plugin_state(ours, resumed), plugin_state(theirs, reference), type(ours).__name__)
    if build is _gdro:
        for key, value in reference.contrastive_loss.state_dict().items():
            torch.testing.assert_close(resumed.contrastive_loss.state_dict()[key], value, rtol=0, atol=0,
                                       equal_nan=True, msg=key)
        assert resumed.sample_ids.blocks == reference.sample_ids.blocks
        assert torch.equal(resumed.replay.buffer_ids(), reference.replay.buffer_ids())


def _assert_same(a, b, where):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=where)
    else:
        assert a == b, where


@pytest.mark.filterwarnings("ignore:Metric Top1_Acc_Stream used by the EarlyStopping plugin is not computed yet")
def test_every_stateful_plugin_round_trips_through_a_weights_only_checkpoint(tmp_path):
    def build():
        model = tiny_classifier(digits(8)[2])
        opt = optimizer(model)
        plugins = [LRSchedulerPlugin(torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)),
                   EarlyStoppingPlugin(patience=5, val_stream_name="test_stream"),
                   EWCPlugin(ewc_lambda=1.0), LwFPlugin(), SynapticIntelligencePlugin(si_lambda=1.0)]
        return GCLStrategy(model=model, optimizer=opt, mem_size=6, train_mb_size=8, seed=0,
                           plugins=plugins, eval_every=1, train_logits="seen",  # LwF distils seen logits
                           evaluator=EvaluationPlugin(accuracy_metrics(stream=True)))

    benchmark = avalanche_benchmark("nc_benchmark", per_class=8)  # LwF reads task labels
    strategy = build()
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience, eval_streams=[benchmark.test_stream[:1]])
    path = save_checkpoint(tmp_path / "all.pt", strategy=strategy, experience=1, config={"run": 1})
    payload = torch.load(path, weights_only=True)
    saved = payload["strategy"]["plugins"]
    assert {"LRSchedulerPlugin", "EarlyStoppingPlugin", "EWCPlugin", "LwFPlugin", "SynapticIntelligencePlugin",
            "ClassBalancedReplayPlugin", "LossStatePlugin", "SeenClassesPlugin"} <= set(saved)
    assert saved["EarlyStoppingPlugin"]["best_state"] is not None and saved["LwFPlugin"]["expcount"] == 2
    assert payload["strategy"]["sample_ids"]["next_id"] == sum(len(e.dataset) for e in benchmark.train_stream[:2])
    # frozen parameters are not stored a second time inside plugin states
    frozen = [n for n, p in strategy.model.named_parameters() if not p.requires_grad]
    assert frozen and not set(frozen) & set(saved["EWCPlugin"]["importances"][0])
    assert not set(frozen) & set(saved["LwFPlugin"]["prev_model"])

    restored = build()
    assert load_checkpoint(path, strategy=restored, train_stream=benchmark.train_stream, config={"run": 1}) == 1
    for ours, theirs in zip(restored.plugins, strategy.plugins, strict=True):
        _assert_same(plugin_state(ours, restored), plugin_state(theirs, strategy), type(ours).__name__)
    lwf = next(p for p in restored.plugins if isinstance(p, LwFPlugin)).lwf
    x = benchmark.train_stream[0].dataset[0][0][None]
    original = next(p for p in strategy.plugins if isinstance(p, LwFPlugin)).lwf
    torch.testing.assert_close(lwf.prev_model(x), original.prev_model(x), rtol=0, atol=0)
    # and training goes on from there identically
    restored.train(benchmark.train_stream[2])
    strategy.train(benchmark.train_stream[2])
    for (key, a), (_, b) in zip(strategy.model.state_dict().items(), restored.model.state_dict().items(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("plugin", [GEMPlugin(patterns_per_experience=4, memory_strength=0.5),
                                    ReplayPlugin(mem_size=10)], ids=["GEMPlugin", "ReplayPlugin"])
def test_a_plugin_whose_state_cannot_be_captured_is_refused_by_name(tmp_path, plugin):
    name = type(plugin).__name__
    model = tiny_classifier(digits(8)[2])
    naive = Naive(model=model, optimizer=optimizer(model), criterion=nn.CrossEntropyLoss(), plugins=[plugin])
    with pytest.raises(NotCheckpointableError, match=f"Avalanche plugin {name} keeps state that cannot be checkpointed"):
        save_checkpoint(tmp_path / "refused.pt", strategy=naive, experience=0)
    assert not (tmp_path / "refused.pt").exists()


def test_a_subclass_of_an_avalanche_plugin_without_an_adapter_is_refused(tmp_path):
    strategy = build_strategy("icarl", make_setup(cil_benchmark(with_index=False, per_class=8), mem_size=10))
    with pytest.raises(NotCheckpointableError, match="Avalanche plugin _BudgetICaRLPlugin keeps state"):
        save_checkpoint(tmp_path / "icarl.pt", strategy=strategy, experience=0)


def test_a_plugin_state_a_checkpoint_cannot_hold_is_refused_by_name(tmp_path):
    model = tiny_classifier(digits(8)[2])

    class OddScheduler(torch.optim.lr_scheduler.StepLR):
        def state_dict(self):
            return {**super().state_dict(), "rule": object()}

    opt = optimizer(model)
    strategy = GCLStrategy(model=model, optimizer=opt, plugins=[LRSchedulerPlugin(OddScheduler(opt, 1))])
    with pytest.raises(NotCheckpointableError, match=r"LRSchedulerPlugin\['scheduler'\]\['rule'\] holds a object"):
        save_checkpoint(tmp_path / "odd.pt", strategy=strategy, experience=0)
    assert not (tmp_path / "odd.pt").exists()


def test_a_checkpoint_without_a_plugins_state_is_refused(tmp_path):
    benchmark = avalanche_benchmark("nc_benchmark", per_class=8)
    model = tiny_classifier(digits(8)[2])
    plain = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8)
    plain.train(benchmark.train_stream[0])
    save_checkpoint(tmp_path / "plain.pt", strategy=plain, experience=0)
    model = tiny_classifier(digits(8)[2])
    with_ewc = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8, plugins=[EWCPlugin(1.0)])
    with pytest.raises(CheckpointMismatchError, match="holds no state for plugin\\(s\\) EWCPlugin"):
        load_checkpoint(tmp_path / "plain.pt", strategy=with_ewc, train_stream=benchmark.train_stream)
