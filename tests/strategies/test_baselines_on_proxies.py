"""Co2L, FOSTER and CaSSLe end to end on small subsets of the offline proxies' real images
(CIFAR-10 class-incremental, PACS domain-incremental), with the proxies' model: the
ImageNet-pretrained effnet-lite0-clip, its trunk frozen and cached, both projections trained.
Skipped when the data are absent (``data_root``). Each run beats the zero-shot floor where the
method is meant to: the replay methods Co2L and FOSTER class-incrementally on CIFAR-10, the
memory-free CaSSLe domain-incrementally on PACS (as the paper uses it: domains share classes)."""

from __future__ import annotations

import pytest
from strategy_fixtures import pretrained_run

from avalanche_clip.pipeline.run_loop import ContinualRun

CIFAR10 = {"scenario": "split-imagefolder", "label": "cifar10", "templates": "photo", "n_experiences": 5,
           "scenario_options": {"max_train_per_class": 20, "max_test_per_class": 10}}
PACS = {"scenario": "domain-folder", "label": "pacs", "templates": "photo",
        "domains": ["art_painting", "cartoon", "photo", "sketch"],
        "scenario_options": {"max_train_per_class": 6, "max_test_per_class": 6}}


@pytest.mark.parametrize("proxy, strategy, mem_size", [
    ("cifar10", "co2l", 50), ("cifar10", "foster", 50), ("pacs", "cassle", 0),
])
def test_baselines_train_on_the_real_proxies_and_beat_zero_shot(data_root, feature_cache_dir, proxy,
                                                                strategy, mem_size):
    scenario = dict(CIFAR10 if proxy == "cifar10" else PACS, data_root=str(data_root / proxy))
    run = pretrained_run(strategy, feature_cache_dir, mem_size=mem_size, steps_per_experience=20,
                                lr=1e-3, zero_shot_floor=True, **scenario)
    records = ContinualRun(run.strategy, run.benchmark, progress=False).run()
    n_experiences = 5 if proxy == "cifar10" else 4
    assert [r["optimizer_steps"] for r in records] == [20] * n_experiences
    final, floor = records[-1]["stream_accuracy"], run.identity["zero_shot_accuracy"]
    assert final > floor + 0.05, (final, floor)
