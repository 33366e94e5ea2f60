"""An item's random training transform is fixed by its place in the global batches: the same
whichever process loads it (each process loads a shard of every batch, from its own random
stream), with loader workers; another pass draws anew; loading leaves the process's stream as
it was."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from avalanche_clip.models import create_clip
from avalanche_clip.scenarios import build_scenario
from avalanche_clip.training.distributed import ShardedBatchSampler
from avalanche_clip.training.seeded_items import SeededBatches, SeededItems

PLAN = [[5, 0, 9, 3, 7, 1], [2, 8, 4, 6, 11, 10], [0, 5, 3, 9, 1, 7]]  # a global batch sequence


def _load(dataset, batch_sampler, **options) -> list[torch.Tensor]:
    loader = DataLoader(SeededItems(dataset), batch_sampler=batch_sampler,
                        collate_fn=dataset.collate_fn, **options)
    return [x for x, *_ in loader]


def test_an_items_random_crop_does_not_depend_on_the_process_that_loads_it():
    _, train_tf, _, _ = create_clip("tiny-clip")  # open_clip's RandomResizedCrop
    benchmark = build_scenario("digits", n_experiences=1, seed=0, train_transform=train_tf,
                               eval_transform=train_tf, max_train_per_class=2, max_test_per_class=1)
    dataset = benchmark.train_stream[0].dataset.train()
    seeded = SeededBatches(PLAN, seed=7)
    whole = _load(dataset, seeded)
    shards = []
    for rank in (0, 1):
        torch.manual_seed(100 + rank)  # each process's own stream
        shards.append(_load(dataset, ShardedBatchSampler(SeededBatches(PLAN, seed=7), rank, 2)))
    for b, batch in enumerate(whole):
        assert torch.equal(shards[0][b], batch[0::2]) and torch.equal(shards[1][b], batch[1::2])
    assert all(torch.equal(a, b) for a, b in zip(_load(dataset, SeededBatches(PLAN, seed=7), num_workers=2),
                                                 whole, strict=True))
    # the crops are random: item 0 at batch 0 and at batch 2 (and the next pass) differ
    assert not torch.equal(whole[0][1], whole[2][1])
    assert not torch.equal(_load(dataset, seeded)[0], whole[0])
    before = torch.get_rng_state()
    SeededItems(dataset).__getitems__([(0, 1), (3, 2)])
    assert torch.equal(torch.get_rng_state(), before)  # loading items left the stream alone
