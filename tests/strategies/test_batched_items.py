"""The batched read of cached features (``training.batched_items``) gives, for every tree the
cached protocol builds, the very items Avalanche's per-item ``dataset[i]`` gives (values, dtypes,
shapes, Python types, the same random view per item seed), and declines every other tree."""

from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import default_collate

from avalanche_clip.features.views import DrawViews, UnaugmentedView, ViewStack
from avalanche_clip.scenarios import build_scenario, rebuild_scenario
from avalanche_clip.strategies.budget import StepBudget
from avalanche_clip.training.batched_items import BatchedItems, batched_fetch
from avalanche_clip.training.seeded_items import SeededItems

OPTIONS = {"max_train_per_class": 6, "max_test_per_class": 3}


def cached_benchmark(views: int = 3, views_per_item: int = 1, with_index: bool = True):
    """Digits as the cached protocol lays them out: a ViewStack of random features (1 + V slots)
    for training with DrawViews, test features stored [N, 1, D] read through UnaugmentedView."""
    benchmark = build_scenario("digits", n_experiences=5, seed=0, with_index=with_index, **OPTIONS)
    n, m, d = benchmark.num_train_samples, benchmark.num_test_samples, 6
    generator = torch.Generator().manual_seed(1)
    train = ViewStack(torch.randn(n, d, generator=generator), torch.randn(views, n, d, generator=generator),
                      benchmark.source.train.targets)
    return rebuild_scenario(benchmark, train_data=train,
                            test_data=torch.randn(m, 1, d, generator=generator),
                            train_transform=DrawViews(views, views_per_item), eval_transform=UnaugmentedView())


def same(a, b) -> bool:
    """Equal values, dtypes, shapes and Python types, recursively."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def per_item(dataset, keys):
    """Avalanche's path: each item read with torch's CPU generator seeded by its seed."""
    items = []
    for index, seed in keys:
        torch.manual_seed(seed)
        items.append(dataset[index])
    return items


def keys_for(dataset, count: int = 40, seed: int = 0):
    rng = random.Random(seed)
    return [(rng.randrange(len(dataset)), rng.randrange(2**62)) for _ in range(count)]


def datasets_of(benchmark):
    """Every kind of dataset a run reads: new data in both groups, new data ∪ a memory subset
    of earlier experiences (what replay appends), a subset of a subset, test experiences."""
    stream = benchmark.train_stream
    memory = stream[0].dataset.subset([0, 3, 5]).concat(stream[1].dataset.subset([2, 1]))
    union = stream[2].dataset.concat(memory)
    return {
        "new data": stream[0].dataset,
        "new data, eval group": stream[3].dataset.eval(),
        "new data ∪ memory": union,
        "new data ∪ memory, eval group": union.eval(),
        "subset of the union": union.subset([len(union) - 1, 0, 4, len(union) - 2]),
        "test experience": benchmark.test_stream[4].dataset,
    }


@pytest.mark.parametrize("views, views_per_item", [(3, 1), (3, 2), (2, 2), (1, 1)])
@pytest.mark.parametrize("with_index", [True, False])
def test_batched_items_equal_avalanches_items_with_the_same_random_views(views, views_per_item, with_index):
    benchmark = cached_benchmark(views, views_per_item, with_index)
    for name, dataset in datasets_of(benchmark).items():
        fetch = batched_fetch(dataset)
        assert fetch is not None, name
        keys = keys_for(dataset)
        slow, fast = per_item(dataset, keys), fetch(keys)
        assert same(slow, fast), name
        assert same(default_collate(slow), default_collate(fast)), name


def test_the_views_drawn_depend_on_the_item_seed_and_the_loader_leaves_the_generator_as_it_was():
    dataset = cached_benchmark(views=3).train_stream[0].dataset
    stack = dataset._flat_data._datasets[0]
    while not isinstance(stack, ViewStack):
        stack = stack._datasets[0]
    drawn = set()
    for seed in range(12):
        (x, _, row, _), = batched_fetch(dataset)([(4, seed)])  # row: the global index, the stack's row
        slots = torch.cat([stack.unaugmented[row:row + 1], stack.views[:, row]])  # [1 + V, D]
        matches = [s for s in range(len(slots)) if torch.equal(slots[s], x)]
        assert len(matches) == 1 and matches[0] >= 1  # one of the V views, never slot 0
        drawn.add(matches[0])
    assert drawn == {1, 2, 3}  # every view is drawn for some seed
    torch.manual_seed(123)
    before = torch.get_rng_state()
    SeededItems(dataset).__getitems__([(0, 5), (1, 6)])
    assert torch.equal(torch.get_rng_state(), before)


def test_a_budget_loader_yields_the_batches_of_the_per_item_path():
    dataset = datasets_of(cached_benchmark(views=2, views_per_item=2))["new data ∪ memory"]

    def batches(batched: bool):
        budget = StepBudget(seed=3)
        budget.memory_tail_size = 5
        loader = budget.train_loader(dataset, batch_size=4, epochs=2, experience=2, device=torch.device("cpu"))
        if not batched:
            loader.dataset._fetch = None
        return list(loader)

    fast, slow = batches(True), batches(False)
    assert len(fast) == len(slow) > 2
    assert all(same(a, b) for a, b in zip(fast, slow, strict=True))


def test_an_index_past_the_end_raises_as_avalanche_does():
    dataset = cached_benchmark().train_stream[0].dataset
    with pytest.raises(IndexError):
        dataset[len(dataset)]
    with pytest.raises(IndexError):
        batched_fetch(dataset)([(len(dataset), 0)])


def test_trees_it_does_not_reproduce_keep_the_per_item_path():
    images = build_scenario("digits", n_experiences=5, seed=0, **OPTIONS)  # tensors from images
    assert batched_fetch(images.train_stream[0].dataset) is None
    assert batched_fetch([1, 2, 3]) is None
    benchmark = cached_benchmark()
    other = benchmark.train_stream[0].dataset.replace_current_transform_group(lambda x: x * 2)
    assert batched_fetch(other) is None  # an unknown transform
    # evaluation is not seeded: a random transform there keeps the per-item path ...
    assert BatchedItems(benchmark.train_stream[0].dataset)._fetch is None
    # ... whose items are the dataset's own
    test = benchmark.test_stream[0].dataset
    wrapped = BatchedItems(test)
    assert wrapped._fetch is not None
    assert same(wrapped.__getitems__([2, 0, 1]), [test[2], test[0], test[1]])
    tensors = BatchedItems(images.test_stream[0].dataset)
    assert tensors._fetch is None
    assert same(tensors.__getitems__([1, 0]), [images.test_stream[0].dataset[1], images.test_stream[0].dataset[0]])
