"""The comparison protocol: every method takes the same optimizer steps of the same batch size,
the replay methods hold the same exemplars, and Avalanche's own Naive class under the same
plugins is our CE fine-tuning, record for record."""

from __future__ import annotations

import pytest
import torch
from avalanche.training import Naive
from avalanche.training.plugins import EWCPlugin
from strategy_fixtures import cil_benchmark, dil_benchmark, make_setup

from avalanche_clip.losses.masked import BatchClassCrossEntropy
from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.strategies import build_strategy, strategy_hparams, strategy_info
from avalanche_clip.strategies.budget import StepBudget
from avalanche_clip.training.plugins import ClassBalancedReplayPlugin, SeenClassesPlugin
from avalanche_clip.training.plugins.memory import ids_digest

CONTINUAL = ["zero-shot", "ce", "naive", "replay", "ewc", "der", "icarl", "gcl", "gdro", "co2l", "foster",
             "cassle"]
SHARED_MEMORY = ["ce", "replay", "der", "gcl", "gdro", "co2l", "foster"]


def _run(name, benchmark_factory, *, mem_size=20, **overrides):
    info = strategy_info(name)
    benchmark = benchmark_factory(with_index=info.uses_index)
    memory = 0 if info.memory == "none" else mem_size
    strategy = build_strategy(name, make_setup(benchmark, mem_size=memory, **overrides))
    return ContinualRun(strategy, benchmark, progress=False, joint=info.joint).run(), strategy


@pytest.fixture(scope="module")
def cil_records():
    return {name: _run(name, cil_benchmark)[0] for name in [*CONTINUAL, "joint", "joint-converged"]}


def test_every_method_takes_the_same_steps_of_the_same_batch_size(cil_records):
    reference = [(r["optimizer_steps"], r["samples_seen"]) for r in cil_records["ce"]]
    assert reference == [(3, 48)] * 5  # ⌈48 new samples / 16⌉ steps of 16, each experience
    for name in CONTINUAL:
        if name == "zero-shot":
            assert [r["optimizer_steps"] for r in cil_records[name]] == [0] * 5
            continue
        assert [(r["optimizer_steps"], r["samples_seen"]) for r in cil_records[name]] == reference, name


def test_joint_training_gets_the_continual_total_and_the_converged_bound_a_multiple(cil_records):
    total = sum(r["optimizer_steps"] for r in cil_records["ce"])
    assert [r["optimizer_steps"] for r in cil_records["joint"]] == [total]
    scale = strategy_hparams("joint-converged")["budget_scale"]  # its default: 3
    assert [r["optimizer_steps"] for r in cil_records["joint-converged"]] == [round(scale * total)]
    assert scale > 1 and round(scale * total) == scale * total


def test_replay_methods_hold_the_same_exemplars(cil_records):
    digests = {name: [r["memory_digest"] for r in cil_records[name]] for name in SHARED_MEMORY}
    reference = digests["ce"]
    assert len(set(reference)) == 5  # the memory changes with every experience
    assert all(d == reference for d in digests.values()), digests
    empty = ids_digest([])
    for name in ("zero-shot", "naive", "ewc", "joint", "cassle"):
        assert {r["memory_digest"] for r in cil_records[name]} == {empty}
    # herding: its own exemplars, a digest of their ids (tests/strategies/test_icarl_scoring.py)
    icarl = [r["memory_digest"] for r in cil_records["icarl"]]
    assert None not in icarl and all(a != b for a, b in zip(icarl, reference, strict=True))


def test_exemplars_do_not_depend_on_training_randomness():
    first, _ = _run("gcl", cil_benchmark)
    torch.manual_seed(999)
    torch.rand(100)  # another global RNG state, another method
    second, _ = _run("der", cil_benchmark)
    assert [r["memory_digest"] for r in first] == [r["memory_digest"] for r in second]
    other_seed, _ = _run("gcl", cil_benchmark, seed=1)
    assert [r["memory_digest"] for r in other_seed] != [r["memory_digest"] for r in first]


def test_domain_incremental_runs_share_steps_and_exemplars_too(dil_root):
    def factory(with_index=True):
        return dil_benchmark(dil_root, with_index=with_index)

    records = {name: _run(name, factory, mem_size=6)[0] for name in ("ce", "gdro", "der", "co2l")}
    steps = {name: [(r["optimizer_steps"], r["memory_digest"]) for r in rs] for name, rs in records.items()}
    assert steps["ce"] == steps["gdro"] == steps["der"] == steps["co2l"]


def test_icarl_stores_exactly_the_memory_size():
    _, strategy = _run("icarl", cil_benchmark, mem_size=16)
    # Avalanche keeps ⌈16/10⌉ = 2 per class (20 in all); under the protocol: exactly 16
    assert strategy.exemplars.stored() == 16
    assert sorted(len(x) for x in strategy.exemplars.x_memory) == [1] * 4 + [2] * 6


class _BudgetedNaive(Naive):
    """Avalanche's own Naive class under the protocol's budget (the three overrides of
    avalanche_clip.strategies.budget's docstring; one process, so Avalanche's eval loader)."""

    def __init__(self, *, seed, replay_sampling, memory_share, steps_per_experience, train_logits, **kwargs):
        self.budget = StepBudget(seed=seed, replay_sampling=replay_sampling, memory_share=memory_share,
                                 steps_per_experience=steps_per_experience)
        super().__init__(**kwargs)

    def train_dataset_adaptation(self, **kwargs):
        self.budget.memory_tail_size = 0
        super().train_dataset_adaptation(**kwargs)

    def make_train_dataloader(self, num_workers=0, **kwargs):
        self.dataloader = self.budget.train_loader(
            self.adapted_dataset, batch_size=self.train_mb_size, epochs=self.train_epochs,
            experience=self.clock.train_exp_counter, device=self.device, num_workers=num_workers)

    def _after_update(self, **kwargs):
        self.budget.count_step()
        super()._after_update(**kwargs)

    def memory_digest(self):
        return next(p for p in self.plugins if isinstance(p, ClassBalancedReplayPlugin)).digest()


@pytest.mark.parametrize("train_logits", ["seen", "batch"])
def test_avalanche_naive_with_the_same_plugins_is_our_ce_record_for_record(train_logits):
    # seen: torch's cross-entropy over the seen classes' logits; batch: over the batch's classes
    criterion = torch.nn.CrossEntropyLoss() if train_logits == "seen" else BatchClassCrossEntropy()
    benchmark = cil_benchmark(with_index=False)  # Naive sees (x, y, t); ids stay an attribute
    setup = make_setup(benchmark, mem_size=20, train_logits=train_logits)
    model = setup.model()
    naive = _BudgetedNaive(
        model=model, optimizer=setup.make_optimizer(model), criterion=criterion,
        plugins=[SeenClassesPlugin(model.num_classes), ClassBalancedReplayPlugin(20, seed=0)],
        **setup.protocol(), **setup.common(),
    )
    theirs = ContinualRun(naive, benchmark, progress=False).run()
    ours, strategy = _run("ce", cil_benchmark, train_logits=train_logits)
    keys = ("stream_accuracy", "accuracy_per_experience", "optimizer_steps", "memory_digest")
    assert [{k: r[k] for k in keys} for r in theirs] == [{k: r[k] for k in keys} for r in ours]
    for theirs_p, ours_p in zip(model.parameters(), strategy.model.parameters(), strict=True):
        assert torch.equal(theirs_p, ours_p)
    if train_logits == "batch":  # not vacuous: the other negatives train other weights
        _, seen = _run("ce", cil_benchmark, train_logits="seen")
        assert any(not torch.equal(a, b) for a, b in zip(seen.model.parameters(), strategy.model.parameters(),
                                                         strict=True))


def test_ewc_is_avalanches_plugin_and_it_changes_training():
    _, strategy = _run("ewc", cil_benchmark)
    plugin = next(p for p in strategy.plugins if isinstance(p, EWCPlugin))
    assert plugin.importances  # importances were computed after each experience
    _, naive = _run("naive", cil_benchmark)
    changed = [not torch.equal(a, b) for a, b in zip(strategy.model.state_dict().values(),
                                                     naive.model.state_dict().values(), strict=True)]
    assert any(changed)  # same data, batches and start: only the EWC penalty differs


def test_per_method_learning_rate_and_epochs_are_strategy_options():
    benchmark = cil_benchmark()
    strategy = build_strategy("gcl", make_setup(benchmark), lr=0.05, train_epochs=2)
    assert strategy.optimizer.param_groups[0]["lr"] == 0.05 and strategy.train_epochs == 2
    records = ContinualRun(strategy, benchmark, progress=False).run()
    assert [r["optimizer_steps"] for r in records] == [6] * 5
