"""GCL, GDRO and CE on benchmarks from Avalanche's own builders, with no extra step: ids are
assigned as experiences arrive, kept by the memory, the loss state grows, task labels stay task
labels; build_strategy takes such benchmarks for every registered strategy."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks.scenarios.task_aware import task_incremental_benchmark
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics, class_accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from avalanche_fixtures import BUILDERS, avalanche_benchmark, digits, optimizer, tiny_classifier
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.pipeline.run_loop import ContinualRun, make_evaluator
from avalanche_clip.scenarios import SAMPLE_INDEX_ATTR
from avalanche_clip.strategies import (
    STRATEGIES,
    CLIPCrossEntropyStrategy,
    GCLStrategy,
    GDROStrategy,
    StrategySetup,
    build_strategy,
    strategy_info,
)

KINDS = {"gcl": GCLStrategy, "gdro": GDROStrategy, "ce": CLIPCrossEntropyStrategy}


class Batches(SupervisedPlugin):
    """Records the ids, labels and task labels of every training and evaluation mini-batch."""

    def __init__(self):
        super().__init__()
        self.train, self.eval = [], []

    def after_forward(self, strategy, **kwargs):
        self.train.append((strategy.mb_index.cpu(), strategy.mb_y.cpu(), strategy.mbatch[-1].cpu(),
                           strategy.experience.current_experience))

    def after_eval_forward(self, strategy, **kwargs):
        self.eval.append((strategy.mb_y.cpu(), strategy.mbatch[-1].cpu(), len(strategy.mbatch),
                          strategy.experience.current_experience))


def finite_ids(loss):
    return torch.nonzero(torch.isfinite(loss.log_u)).flatten().tolist()


def _true_labels(benchmark):
    """id → label, ids counted over the train stream in order (what arrival order gives)."""
    labels, offset = {}, 0
    for experience in benchmark.train_stream:
        for position, label in enumerate(experience.dataset.targets):
            labels[offset + position] = int(label)
        offset += len(experience.dataset)
    return labels


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize("kind", KINDS)
def test_training_on_a_benchmark_from_avalanche_builders(kind, builder):
    benchmark = avalanche_benchmark(builder)
    _, _, names = digits()
    model = tiny_classifier(names)
    batches = Batches()
    strategy = KINDS[kind](model=model, optimizer=optimizer(model), mem_size=8, train_mb_size=8, seed=0,
                           plugins=[batches], evaluator=EvaluationPlugin(accuracy_metrics(stream=True)))
    for experience in benchmark.train_stream[:3]:
        strategy.train(experience)
    metrics = strategy.eval(benchmark.test_stream[:3])
    (accuracy,) = [v for k, v in metrics.items() if k.startswith("Top1_Acc_Stream/eval_phase/test_stream")]
    assert 0.0 <= accuracy <= 1.0  # nc_benchmark's names end with /Task000 (its task label)

    sizes = [len(e.dataset) for e in benchmark.train_stream[:3]]
    assert strategy.sample_ids.next_id == sum(sizes)  # offsets: sizes of the earlier experiences
    labels = _true_labels(benchmark)
    for index, y, _, _ in batches.train:
        assert [labels[i] for i in index.tolist()] == y.tolist()  # each id names its own sample
        assert len(set(index.tolist())) == len(index)
    memory = strategy.replay.buffer_ids()
    assert len(memory) == 8 and all(labels[i] == c for c, ids in strategy.replay.memory.members.items() for i in ids)
    stored = strategy.replay.buffer
    assert [labels[int(i)] for i in getattr(stored, SAMPLE_INDEX_ATTR)] == [int(y) for y in stored.targets]
    # memory samples from experience 0 were replayed in experience 2 under their first ids
    replayed = {i for index, _, _, t in batches.train if t == 2 for i in index.tolist() if i < sizes[0]}
    assert replayed
    if kind != "ce":
        loss = strategy.contrastive_loss
        assert loss.num_samples is None and sum(sizes) - sizes[-1] < loss.capacity < 2 * sum(sizes)
        finite = set(finite_ids(loss))
        assert finite and finite <= set(memory.tolist())  # evicted ids forgotten


def test_task_labels_stay_task_labels_and_metrics_group_by_task():
    benchmark = task_incremental_benchmark(avalanche_benchmark("class_incremental_benchmark"))
    _, _, names = digits()
    model = tiny_classifier(names)
    batches = Batches()
    evaluator = EvaluationPlugin(class_accuracy_metrics(stream=True))
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), mem_size=6, train_mb_size=8, seed=0,
                           plugins=[batches], evaluator=evaluator)
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience)
    metrics = strategy.eval(benchmark.test_stream[:2])
    for _, _, task, t in batches.train:
        assert set(task.tolist()) <= set(range(t + 1))  # memory samples keep their own task
    for _, task, fields, t in batches.eval:
        assert task.tolist() == [t] * len(task) and fields == 3  # (x, y, t): no index in eval
    keys = sorted(k for k in metrics if k.startswith("Top1_ClassAcc_Stream"))
    assert keys == [f"Top1_ClassAcc_Stream/eval_phase/test_stream/Task{t:03d}/{c}"
                    for t, c in ((0, 0), (0, 1), (1, 2), (1, 3))]


@pytest.mark.parametrize("name", STRATEGIES.list())
def test_build_strategy_takes_a_benchmark_from_avalanche_builders(name):
    info = strategy_info(name)
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    _, _, names = digits(8)
    assert not hasattr(benchmark, "num_train_samples")
    setup = StrategySetup(classifier=tiny_classifier(names), benchmark=benchmark, train_mb_size=8,
                          eval_mb_size=32, mem_size=0 if info.memory == "none" else 10, seed=0,
                          evaluator=make_evaluator())
    strategy = build_strategy(name, setup)
    records = ContinualRun(strategy, benchmark, progress=False, joint=info.joint).run()
    assert records[-1]["final"] and 0.0 <= records[-1]["stream_accuracy"] <= 1.0


def test_icarl_gets_items_without_the_index_from_an_indexed_stream():
    benchmark = cil_benchmark(with_index=True, per_class=8)  # items (x, y, idx, t)
    strategy = build_strategy("icarl", make_setup(benchmark, mem_size=10))
    records = ContinualRun(strategy, benchmark, progress=False).run()
    assert records[-1]["final"] and strategy.exemplars.stored() == 10
