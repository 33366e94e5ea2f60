"""The one batch mechanism: step budgets, compositions, distinct items, inclusion probabilities."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from avalanche_clip.training.batching import ReplayBatchSampler, epoch_schedule


def test_the_default_budget_is_passes_over_the_new_data():
    assert epoch_schedule(48, 16, 3) == [3, 3, 3]
    assert epoch_schedule(50, 16, 2) == [4, 4]  # ⌈50/16⌉
    assert epoch_schedule(10, 16, 1) == [1]
    assert epoch_schedule(50, 16, 0) == []
    assert epoch_schedule(50, 16, 3, steps_per_experience=10) == [4, 3, 3]


@pytest.mark.parametrize("n_mem", [0, 7, 200])
def test_union_batches_are_full_distinct_and_as_many_as_the_budget(n_mem):
    sampler = ReplayBatchSampler(50, n_mem, batch_size=16, schedule=[4, 4],
                                 generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        batches = list(sampler)
        assert len(batches) == 4
        for batch in batches:
            assert len(batch) == 16 and len(set(batch)) == 16
            assert all(0 <= i < 50 + n_mem for i in batch)


def test_share_batches_take_a_fixed_part_from_memory():
    sampler = ReplayBatchSampler(50, 30, batch_size=16, schedule=[5], composition="share",
                                 memory_share=0.25, generator=torch.Generator().manual_seed(0))
    for batch in sampler:
        assert len(batch) == 16 and len(set(batch)) == 16
        assert sum(i >= 50 for i in batch) == 4


def test_a_small_memory_is_taken_whole_and_the_batch_stays_full():
    sampler = ReplayBatchSampler(50, 3, batch_size=16, schedule=[3], composition="share",
                                 generator=torch.Generator().manual_seed(0))
    for batch in sampler:
        assert len(batch) == 16 and sorted(i for i in batch if i >= 50) == [50, 51, 52]


def test_the_same_generator_seed_gives_the_same_batches():
    def batches(seed):
        return list(ReplayBatchSampler(40, 10, batch_size=8, schedule=[5],
                                       generator=torch.Generator().manual_seed(seed)))

    assert batches(1) == batches(1) and batches(1) != batches(2)


def _frequency_of_classes(sampler, targets, num_classes, draws):
    seen = torch.zeros(num_classes)
    for _ in range(draws):
        for batch in sampler:
            seen[torch.unique(torch.tensor([targets[i] for i in batch]))] += 1
    return seen / (draws * sampler.schedule[0])


@pytest.mark.parametrize("composition", ["union", "share"])
def test_inclusion_probabilities_match_the_empirical_frequencies(composition):
    targets = [0] * 30 + [1] * 10 + [2] * 2 + [3] * 1  # new: classes 0, 1; memory: 2, 3 (+ one 1)
    targets = targets[:40] + [1] + targets[40:]
    sampler = ReplayBatchSampler(40, 4, batch_size=8, schedule=[10], composition=composition,
                                 generator=torch.Generator().manual_seed(0))
    pi = sampler.inclusion_probabilities(targets, 5)
    empirical = _frequency_of_classes(sampler, targets, 5, draws=300)
    assert pi[4] == 0  # absent class
    torch.testing.assert_close(empirical.double(), pi, atol=0.02, rtol=0)


def test_inclusion_probability_is_the_hypergeometric_complement():
    # union of 12 items, class 2 has 1 item, batch 4: π = 1 − C(11, 4)/C(12, 4) = 4/12
    targets = [0] * 9 + [1] * 2 + [2]
    sampler = ReplayBatchSampler(10, 2, batch_size=4, schedule=[1])
    pi = sampler.inclusion_probabilities(targets, 3)
    exact = [1 - math.comb(12 - n, 4) / math.comb(12, 4) for n in (9, 2, 1)]
    torch.testing.assert_close(pi, torch.tensor(exact, dtype=torch.float64))
    # every 4-subset of 12 once: class frequencies are exactly π
    hits = torch.zeros(3, dtype=torch.float64)
    subsets = list(itertools.combinations(range(12), 4))
    for subset in subsets:
        hits[torch.unique(torch.tensor([targets[i] for i in subset]))] += 1
    torch.testing.assert_close(hits / len(subsets), pi)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="replay_sampling='mix'"):
        ReplayBatchSampler(10, 0, batch_size=4, schedule=[1], composition="mix")
    with pytest.raises(ValueError, match=r"memory_share must lie in \(0, 1\), got 1.5"):
        ReplayBatchSampler(10, 0, batch_size=4, schedule=[1], memory_share=1.5)
    with pytest.raises(ValueError, match="nothing to sample"):
        ReplayBatchSampler(0, 0, batch_size=4, schedule=[1])
