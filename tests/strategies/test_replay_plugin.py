"""Avalanche's ``ReplayPlugin`` with our strategies: refused at construction, naming the plugin
and the strategy's own memory (its buffer items have no sample ids, so training would crash at
the first batch of the second experience)."""

from __future__ import annotations

import pytest
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer
from avalanche_fixtures import avalanche_benchmark, digits, optimizer, tiny_classifier

from avalanche_clip.strategies import CLIPCrossEntropyStrategy, GCLStrategy, GDROStrategy


@pytest.mark.parametrize("strategy_class", [GCLStrategy, GDROStrategy, CLIPCrossEntropyStrategy])
@pytest.mark.parametrize("plugin", [ReplayPlugin(mem_size=20),
                                    ReplayPlugin(mem_size=0),
                                    ReplayPlugin(mem_size=12, storage_policy=ClassBalancedBuffer(12))],
                         ids=["mem20", "mem0", "class-balanced"])
def test_avalanches_replay_plugin_is_refused_naming_the_strategys_memory(strategy_class, plugin):
    model = tiny_classifier(digits(8)[2])
    name = strategy_class.__name__
    with pytest.raises(ValueError, match=rf"instead of ReplayPlugin\(mem_size={plugin.mem_size}\), "
                                         rf"pass {name}\(mem_size={plugin.mem_size}, \.\.\.\)"):
        strategy_class(model=model, optimizer=optimizer(model), train_mb_size=8, plugins=[plugin])


def test_the_strategys_own_memory_replays_with_sample_ids():
    """What the message recommends trains past the point where ReplayPlugin crashed."""
    model = tiny_classifier(digits(8)[2])
    strategy = GCLStrategy(model=model, optimizer=optimizer(model), train_mb_size=8, mem_size=20,
                           replay_sampling="share", memory_share=0.5, seed=0)
    benchmark = avalanche_benchmark("class_incremental_benchmark", per_class=8)
    for experience in benchmark.train_stream[:2]:
        strategy.train(experience)
    assert len(strategy.replay.buffer_ids()) == 20
    replayed = strategy.mb_global_index.tolist()
    assert set(replayed) & set(strategy.replay.buffer_ids().tolist())  # memory ids in the last batch
