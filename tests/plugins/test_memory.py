"""The shared exemplar memory: class-balanced, seeded by the run alone, reservoir-uniform."""

from __future__ import annotations

import hashlib

import pytest
import torch
from avalanche.benchmarks.utils.classification_dataset import (
    TaskAwareSupervisedClassificationDataset,
)
from avalanche.benchmarks.utils.data_attribute import DataAttribute, TaskLabels
from avalanche.benchmarks.utils.flat_data import ConstantSequence

from avalanche_clip.scenarios import SAMPLE_INDEX_ATTR
from avalanche_clip.training.plugins.memory import (
    ClassBalancedMemory,
    balanced_capacities,
    exemplar_priority,
    id_locator,
    ids_digest,
)


def experience(ids: list[int], labels: list[int]) -> TaskAwareSupervisedClassificationDataset:
    """An Avalanche dataset whose items are (id as a float tensor, label) with global ids."""
    data = torch.utils.data.TensorDataset(torch.tensor(ids, dtype=torch.float32)[:, None],
                                          torch.tensor(labels))
    return TaskAwareSupervisedClassificationDataset(
        [data],
        data_attributes=[
            DataAttribute(labels, "targets"),
            DataAttribute(ids, SAMPLE_INDEX_ATTR, use_in_getitem=True),
            TaskLabels(ConstantSequence(0, len(ids))),
        ],
    )


def test_priority_is_a_pure_function_of_seed_and_id():
    ids = torch.arange(1000)
    first = exemplar_priority(ids, seed=3)
    torch.manual_seed(123)
    torch.rand(10)  # global RNG state must not matter
    again = exemplar_priority(ids.flip(0), seed=3).flip(0)
    assert torch.equal(first, again)
    assert not torch.equal(first, exemplar_priority(ids, seed=4))
    assert first.dtype == torch.float64 and 0 <= first.min() and first.max() < 1
    # roughly uniform: each decile holds about a tenth
    counts = torch.histc(first, bins=10, min=0, max=1)
    assert counts.min() > 70 and counts.max() < 130


def test_capacities_split_the_total_over_classes_in_order_of_appearance():
    assert balanced_capacities([5, 2, 9], 20) == {5: 7, 2: 7, 9: 6}
    assert balanced_capacities([5, 2, 9], 2) == {5: 1, 2: 1, 9: 0}
    assert balanced_capacities([], 10) == {}


def test_memory_keeps_the_top_priorities_of_each_class_over_everything_it_saw():
    memory = ClassBalancedMemory(6, seed=0)
    first = list(range(0, 20))
    memory.update(experience(first, [i % 2 for i in first]))  # classes 0, 1: 3 each
    second = list(range(20, 40))
    memory.update(experience(second, [2 + i % 2 for i in second]))  # 4 classes: 2, 2, 1, 1
    assert memory.class_counts() == {0: 2, 1: 2, 2: 1, 3: 1}
    for label, ids in memory.members.items():
        pool = [i for i in range(40) if (i < 20 and i % 2 == label) or (i >= 20 and 2 + i % 2 == label)]
        priority = exemplar_priority(pool, 0)
        best = [pool[j] for j in torch.argsort(priority, descending=True)[: len(ids)].tolist()]
        assert ids == best


def test_domain_incremental_classes_compete_across_domains():
    memory = ClassBalancedMemory(4, seed=1)
    memory.update(experience(list(range(10)), [0] * 5 + [1] * 5))
    memory.update(experience(list(range(10, 20)), [0] * 5 + [1] * 5))  # same classes, new domain
    for label in (0, 1):
        pool = [i for i in range(20) if (i % 10 < 5) == (label == 0)]
        top = torch.argsort(exemplar_priority(pool, 1), descending=True)[:2].tolist()
        assert memory.members[label] == [pool[j] for j in top]


def test_stored_samples_come_back_as_one_dataset_sorted_by_id():
    memory = ClassBalancedMemory(5, seed=0)
    memory.update(experience([7, 3, 11, 5, 2, 9], [0, 0, 0, 1, 1, 1]))
    stored = memory.dataset()
    ids = [int(i) for i in getattr(stored, SAMPLE_INDEX_ATTR)]
    assert ids == sorted(ids) == memory.ids().tolist()
    assert [int(x[0][0]) for x in stored] == ids  # the items are the samples with those ids


def test_digest_is_sha256_of_sorted_comma_separated_ids():
    assert ids_digest([]) == hashlib.sha256(b"").hexdigest()
    assert ids_digest([10, 2, 33]) == hashlib.sha256(b"2,10,33").hexdigest()
    memory = ClassBalancedMemory(3, seed=0)
    memory.update(experience([4, 8, 1, 6], [0, 0, 1, 1]))
    assert memory.digest() == ids_digest(memory.ids().tolist())


def test_state_round_trip_rebuilds_the_same_memory():
    datasets = [experience(list(range(0, 12)), [i % 3 for i in range(12)]),
                experience(list(range(12, 24)), [3 + i % 3 for i in range(12)])]
    memory = ClassBalancedMemory(8, seed=2)
    for data in datasets:
        memory.update(data)
    restored = ClassBalancedMemory(8, seed=2)
    restored.load_state_dict(memory.state_dict(), id_locator(datasets))
    assert restored.members == memory.members and restored.class_order == memory.class_order
    assert [int(x[0][0]) for x in restored.dataset()] == memory.ids().tolist()
    with pytest.raises(ValueError, match="seed=3"):
        ClassBalancedMemory(8, seed=3).load_state_dict(memory.state_dict(), id_locator(datasets))


def test_bad_sizes_and_missing_ids_are_clear_errors():
    with pytest.raises(ValueError, match="mem_size must be an integer >= 0, got -1"):
        ClassBalancedMemory(-1)
    data = TaskAwareSupervisedClassificationDataset(
        [torch.utils.data.TensorDataset(torch.zeros(2, 1), torch.tensor([0, 1]))],
        data_attributes=[DataAttribute([0, 1], "targets"), TaskLabels(ConstantSequence(0, 2))],
    )
    with pytest.raises(ValueError, match="global id"):
        ClassBalancedMemory(2).update(data)
