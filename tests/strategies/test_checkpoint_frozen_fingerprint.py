"""Checkpoints fingerprint a run's frozen weights once, and again only when they change."""

from __future__ import annotations

import pytest
import torch
from strategy_fixtures import cil_benchmark, make_setup

from avalanche_clip.features import fingerprint
from avalanche_clip.strategies import build_strategy
from avalanche_clip.training.checkpoint import (
    CheckpointMismatchError,
    load_checkpoint,
    save_checkpoint,
)

CONFIG = {"strategy": "gcl", "mem_size": 20}


def _frozen_fingerprint(path):
    return torch.load(path, weights_only=True)["strategy"]["frozen"]["fingerprint"]


def test_checkpoints_hash_unchanged_frozen_weights_once(tmp_path, monkeypatch):
    hashed = []
    original = fingerprint._hash_tensors  # counts the hashing itself
    monkeypatch.setattr(fingerprint, "_hash_tensors",
                        lambda tensors: hashed.append(len(tensors)) or original(tensors))
    strategy = build_strategy("gcl", make_setup(cil_benchmark()))
    paths = [tmp_path / f"{t}.pt" for t in range(3)]
    for t, path in enumerate(paths):  # three experience boundaries of one run
        save_checkpoint(path, strategy=strategy, experience=t, config=CONFIG)
    assert len(hashed) == 1
    assert len({_frozen_fingerprint(p) for p in paths}) == 1

    with torch.no_grad():  # a frozen weight changed in place: hashed again, and it shows
        strategy.model.clip.visual.conv1.weight.mul_(0.5)
    save_checkpoint(tmp_path / "changed.pt", strategy=strategy, experience=2, config=CONFIG)
    assert len(hashed) == 2
    assert _frozen_fingerprint(tmp_path / "changed.pt") != _frozen_fingerprint(paths[0])


def test_resume_refuses_frozen_weights_changed_after_a_checkpoint(tmp_path):
    benchmark = cil_benchmark()
    strategy = build_strategy("gcl", make_setup(benchmark))
    save_checkpoint(tmp_path / "checkpoint.pt", strategy=strategy, experience=0, config=CONFIG)
    with torch.no_grad():  # the same model object: its remembered fingerprint must not be reused
        strategy.model.clip.visual.conv1.weight.add_(1e-3)
    with pytest.raises(CheckpointMismatchError, match="frozen weights of this model differ"):
        load_checkpoint(tmp_path / "checkpoint.pt", strategy=strategy,
                        train_stream=benchmark.train_stream, config=CONFIG)


def test_a_new_model_with_other_weights_is_never_taken_for_a_freed_one():
    """Runs of a sweep build models of the same shapes one after another: a digest is reused
    only while the tensors it was computed from are alive."""
    digests = []
    for seed in range(3):
        torch.manual_seed(seed)
        weights = {"w": torch.randn(64, 64), "b": torch.randn(64)}
        digests.append(fingerprint.tensors_fingerprint(weights))
        del weights
    assert len(set(digests)) == 3


def test_a_digest_in_use_outlives_many_others(monkeypatch):
    """The remembered digests are kept most recently used first: a run's frozen weights, asked
    for at every checkpoint, stay while other tensors (each run's copied tower buffers) pass."""
    hashed = []
    original = fingerprint._hash_tensors
    monkeypatch.setattr(fingerprint, "_hash_tensors",
                        lambda tensors: hashed.append(1) or original(tensors))
    frozen = {"w": torch.randn(8, 8)}
    first = fingerprint.tensors_fingerprint(frozen)
    passing = []
    for i in range(3 * fingerprint._RECENT_SIZE):
        passing.append({"b": torch.full((4,), float(i))})  # kept alive: each one a new entry
        fingerprint.tensors_fingerprint(passing[-1])
        assert fingerprint.tensors_fingerprint(frozen) == first
    assert len(hashed) == 1 + 3 * fingerprint._RECENT_SIZE  # the frozen weights: hashed once
