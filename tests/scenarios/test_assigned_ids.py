"""Ids given to a benchmark's samples as experiences arrive: where they sit in the items, the
offsets, their stability, and what a checkpoint keeps."""

from __future__ import annotations

import pytest
import torch
from avalanche.benchmarks import nc_benchmark
from avalanche.benchmarks.scenarios import class_incremental_benchmark
from avalanche.benchmarks.utils import as_classification_dataset
from torch.utils.data import TensorDataset

from avalanche_clip.scenarios import SAMPLE_INDEX_ATTR, build_scenario, has_sample_index
from avalanche_clip.scenarios.assigned_ids import (
    SampleIdAssigner,
    experience_key,
    with_index_in_items,
    without_index_in_items,
)


class Labelled(TensorDataset):
    def __init__(self, n: int, classes: int = 4, offset: float = 0.0):
        y = torch.arange(n) % classes
        super().__init__(torch.arange(n, dtype=torch.float32)[:, None] + offset, y)
        self.targets = y.tolist()


def _avalanche_benchmarks():
    train, test = Labelled(40), Labelled(20, offset=1000.0)
    return {
        # items (x, y): no task label
        "class_incremental_benchmark": class_incremental_benchmark(
            {"train": as_classification_dataset(train), "test": as_classification_dataset(test)},
            class_order=[0, 1, 2, 3], num_experiences=2),
        # items (x, y, t)
        "nc_benchmark": nc_benchmark(train, test, n_experiences=2, task_labels=False, seed=0),
    }


@pytest.mark.parametrize("name", ["class_incremental_benchmark", "nc_benchmark"])
def test_ids_follow_x_and_y_and_the_task_label_stays_last(name):
    benchmark = _avalanche_benchmarks()[name]
    assigner = SampleIdAssigner()
    offset = 0
    for experience in benchmark.train_stream:
        raw = experience.dataset
        data = assigner.dataset_with_ids(experience)
        assert has_sample_index(data) and not has_sample_index(raw)
        assert [int(i) for i in getattr(data, SAMPLE_INDEX_ATTR)] == list(range(offset, offset + len(raw)))
        for position in (0, len(raw) - 1):
            item, plain = data[position], raw[position]
            assert len(item) == len(plain) + 1
            assert torch.equal(item[0], plain[0]) and int(item[1]) == int(plain[1])
            assert int(item[2]) == offset + position  # the id right after (x, y)
            assert [int(v) for v in item[3:]] == [int(v) for v in plain[2:]]  # task label last
        offset += len(raw)
    assert assigner.next_id == 40


def test_ids_are_stable_per_experience_and_survive_a_state_round_trip():
    benchmark = _avalanche_benchmarks()["nc_benchmark"]
    first, second = benchmark.train_stream[0], benchmark.train_stream[1]
    assigner = SampleIdAssigner()
    assert list(assigner.ids_for(second)) == list(range(0, len(second.dataset)))  # arrival order
    assert list(assigner.ids_for(first)) == list(range(len(second.dataset), 40))
    assert list(assigner.ids_for(second)) == list(range(0, len(second.dataset)))  # again: same
    payload = assigner.state_dict()
    restored = SampleIdAssigner()
    restored.load_state_dict(payload)
    assert restored.blocks == assigner.blocks and restored.next_id == 40
    assert [len(d) for d in restored.known_datasets(benchmark.train_stream)] == [20, 20]
    assert restored.known_datasets(_avalanche_benchmarks()["nc_benchmark"].test_stream) == []
    assert experience_key(second) == "train/1"


def test_an_experience_that_changed_size_is_an_error():
    benchmark = _avalanche_benchmarks()["nc_benchmark"]
    assigner = SampleIdAssigner()
    assigner.ids_for(benchmark.train_stream[0])
    assigner.blocks["train/0"] = (0, 7)
    with pytest.raises(ValueError, match="experience train/0 had 7 samples when its ids were assigned and has 20 now"):
        assigner.ids_for(benchmark.train_stream[0])


def test_streams_with_their_own_ids_keep_them():
    benchmark = build_scenario("digits", n_experiences=5, with_index=False, max_train_per_class=4,
                               max_test_per_class=2)
    assigner = SampleIdAssigner()
    experience = benchmark.train_stream[1]
    data = assigner.dataset_with_ids(experience)
    own = [int(i) for i in getattr(experience.dataset, SAMPLE_INDEX_ATTR)]
    assert [int(data[p][2]) for p in range(len(data))] == own and assigner.next_id == 0
    assert len(data[0]) == 4 and len(experience.dataset[0]) == 3
    plain = without_index_in_items(data)
    assert len(plain[0]) == 3 and [int(i) for i in getattr(plain, SAMPLE_INDEX_ATTR)] == own


def test_subsets_and_concatenations_keep_the_layout():
    benchmark = _avalanche_benchmarks()["nc_benchmark"]
    data = with_index_in_items(benchmark.train_stream[0].dataset, list(range(100, 120)))
    mixed = data.concat(data.subset([3, 1]))
    assert has_sample_index(mixed)
    assert [int(mixed[p][2]) for p in (0, 20, 21)] == [100, 103, 101]
    assert all(len(mixed[p]) == 4 for p in (0, 21))
    with pytest.raises(ValueError, match="3 ids for a dataset of 20 samples"):
        with_index_in_items(benchmark.train_stream[0].dataset, [1, 2, 3])
