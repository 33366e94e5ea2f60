"""What the strategies promise: task labels stay task labels, balanced replay that keeps ids,
forgotten evicted ids, evaluation that never touches loss state, both sampling modes."""

from __future__ import annotations

import torch
from avalanche.core import SupervisedPlugin
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.pipeline.run_loop import ContinualRun
from avalanche_clip.scenarios import SAMPLE_INDEX_ATTR, seen_test_experiences
from avalanche_clip.strategies import build_strategy


class Recorder(SupervisedPlugin):
    """Records what the strategy sees in each training iteration."""

    def __init__(self):
        super().__init__()
        self.batches = []

    def before_training_iteration(self, strategy, **kwargs):
        self.batches.append({
            "length": len(strategy.mbatch),
            "task": strategy.mb_task_id.cpu().clone(),
            "y": strategy.mb_y.cpu().clone(),
            "index": None if strategy.mb_index is None else strategy.mb_index.cpu().clone(),
            "experience": strategy.experience.current_experience,
        })


def _labels_by_id(benchmark):
    labels = {}
    for experience in benchmark.train_stream:
        dataset = experience.dataset
        for sample_id, label in zip(getattr(dataset, SAMPLE_INDEX_ATTR), dataset.targets, strict=True):
            labels[int(sample_id)] = int(label)
    return labels


def test_index_is_taken_out_of_the_minibatch_and_task_labels_stay_task_labels():
    benchmark = cil_benchmark()
    recorder = Recorder()
    setup = make_setup(benchmark, mem_size=20, plugins=[recorder])
    strategy = build_strategy("gcl", setup)
    ContinualRun(strategy, benchmark, progress=False).run()
    labels = _labels_by_id(benchmark)
    assert recorder.batches
    for batch in recorder.batches:
        assert batch["length"] == 3  # [x, y, t]: the index no longer sits in the mini-batch
        assert torch.equal(batch["task"], torch.zeros_like(batch["task"]))
        assert [labels[i] for i in batch["index"].tolist()] == batch["y"].tolist()
    metric_keys = strategy.evaluator.get_last_metrics().keys()
    assert not any("Task" in key for key in metric_keys)


def test_reported_accuracy_matches_an_independent_count():
    benchmark = cil_benchmark()
    strategy = build_strategy("gdro", make_setup(benchmark, mem_size=20))
    records = ContinualRun(strategy, benchmark, progress=False).run()
    model = strategy.model.eval()
    correct = total = 0
    with torch.no_grad():
        for experience in seen_test_experiences(benchmark, 4):
            for x, y, *_ in torch.utils.data.DataLoader(experience.dataset.eval(), batch_size=64):
                correct += int((model(x).argmax(1) == y).sum())
                total += len(y)
    assert records[-1]["stream_accuracy"] == correct / total


def test_replay_memory_is_class_balanced_and_keeps_ids():
    benchmark = cil_benchmark(per_class=24)
    strategy = build_strategy("gcl", make_setup(benchmark, mem_size=20))
    labels = _labels_by_id(benchmark)
    for t, experience in enumerate(benchmark.train_stream):
        strategy.train(experience, eval_streams=[])
        counts = strategy.replay.class_counts()
        n_classes = 2 * (t + 1)
        assert sorted(counts.values(), reverse=True) == [
            20 // n_classes + (1 if i < 20 % n_classes else 0) for i in range(n_classes)
        ]
        for class_id, ids in strategy.replay.memory.members.items():
            assert {labels[i] for i in ids} == {class_id}
        stored = strategy.replay.buffer
        assert [labels[int(i)] for i in getattr(stored, SAMPLE_INDEX_ATTR)] == [int(y) for y in stored.targets]
        ids = strategy.replay.buffer_ids()
        assert len(set(ids.tolist())) == len(ids) == sum(counts.values())


def test_evicted_ids_are_forgotten_and_kept_ids_keep_their_state():
    benchmark = cil_benchmark()
    strategy = build_strategy("gdro", make_setup(benchmark, mem_size=20))
    loss = strategy.contrastive_loss
    for experience in benchmark.train_stream:
        strategy.train(experience, eval_streams=[])
        memory = set(strategy.replay.buffer_ids().tolist())
        finite_u = set(torch.nonzero(torch.isfinite(loss.log_u)).flatten().tolist())
        finite_v = set(torch.nonzero(torch.isfinite(loss.log_v)).flatten().tolist())
        # Only ids still in memory keep a state (the budget may leave some memory ids unvisited).
        assert finite_u == finite_v
        assert finite_u <= memory and len(finite_u) > len(memory) // 2


def test_no_memory_forgets_every_trained_id():
    benchmark = cil_benchmark()
    strategy = build_strategy("gcl", make_setup(benchmark, mem_size=0))
    strategy.train(benchmark.train_stream[0], eval_streams=[])
    assert torch.isnan(strategy.contrastive_loss.log_u).all()
    assert strategy.replay.buffer is None and len(strategy.replay.memory) == 0


def test_evaluation_never_changes_the_loss_state():
    benchmark = cil_benchmark()
    strategy = build_strategy("gdro", make_setup(benchmark, mem_size=20))
    strategy.train(benchmark.train_stream[0], eval_streams=[])
    strategy.train(benchmark.train_stream[1], eval_streams=[])
    before = {k: v.clone() for k, v in strategy.contrastive_loss.state_dict().items()}
    strategy.eval(benchmark.test_stream)
    strategy.eval(benchmark.train_stream[:2])  # training data through the eval path too
    for key, value in strategy.contrastive_loss.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, equal_nan=True, msg=key)
    assert strategy.contrastive_loss.training  # back in training mode afterwards


def test_union_sampling_draws_uniformly_from_new_data_and_memory():
    benchmark = cil_benchmark(per_class=24)
    recorder = Recorder()
    strategy = build_strategy("gcl", make_setup(benchmark, mem_size=20, plugins=[recorder], train_mb_size=16))
    strategy.train(benchmark.train_stream[0], eval_streams=[])
    memory = set(strategy.replay.buffer_ids().tolist())
    strategy.train(benchmark.train_stream[1], eval_streams=[])
    second = [b for b in recorder.batches if b["experience"] == 1]
    seen = torch.cat([b["index"] for b in second]).tolist()
    new_ids = set(int(i) for i in getattr(benchmark.train_stream[1].dataset, SAMPLE_INDEX_ATTR))
    # the budget: ⌈48 new / 16⌉ = 3 full batches, distinct samples from D_1 ∪ M (48 + 20)
    assert [len(b["index"]) for b in second] == [16, 16, 16]
    assert len(seen) == len(set(seen)) and set(seen) <= new_ids | memory
    assert set(seen) & memory  # memory samples are drawn like any other


def test_share_sampling_puts_a_fixed_memory_share_in_every_batch():
    benchmark = cil_benchmark(per_class=24)
    recorder = Recorder()
    strategy = build_strategy("gcl", make_setup(benchmark, mem_size=20, plugins=[recorder], train_mb_size=16,
                                                replay_sampling="share", memory_share=0.25))
    strategy.train(benchmark.train_stream[0], eval_streams=[])
    strategy.train(benchmark.train_stream[1], eval_streams=[])
    new_ids = set(int(i) for i in getattr(benchmark.train_stream[1].dataset, SAMPLE_INDEX_ATTR))
    second = [b for b in recorder.batches if b["experience"] == 1]
    assert len(second) == 3
    for batch in second:
        from_memory = [i for i in batch["index"].tolist() if i not in new_ids]
        assert len(batch["index"]) == 16 and len(from_memory) == 4  # round(0.25 × 16)


def test_der_memory_batch_does_not_depend_on_the_memory_size():
    """Avalanche's DER draws min(batch, memory) memory samples per batch (at memory 6 every batch
    held the whole memory); under the protocol a share batch holds the same memory part at
    every memory size that can fill it."""
    class BatchSizes(SupervisedPlugin):
        def __init__(self):
            super().__init__()
            self.memory_rows = []

        def after_forward(self, strategy, **kwargs):
            if strategy.experience.current_experience == 1:
                stored = set(strategy.replay.buffer_ids().tolist())
                self.memory_rows.append(sum(int(i) in stored for i in strategy.mb_index.tolist()))

    counts = {}
    for mem_size in (12, 40):
        benchmark = cil_benchmark()
        sizes = BatchSizes()
        strategy = build_strategy("der", make_setup(benchmark, mem_size=mem_size, train_mb_size=16,
                                                    plugins=[sizes], replay_sampling="share"))
        strategy.train(benchmark.train_stream[0], eval_streams=[])
        strategy.train(benchmark.train_stream[1], eval_streams=[])
        counts[mem_size] = sizes.memory_rows
    assert counts[12] == counts[40] == [8, 8, 8]
