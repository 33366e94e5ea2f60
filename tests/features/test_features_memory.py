"""The feature cache's in-process memory: a run reads several entries (the stream's features, its
augmented views, a held-out set's) and the next run of a sweep reads them again, so more than
two entries are kept while they fit in the byte budget; the two most recent always are."""

from __future__ import annotations

import pytest
import torch

from avalanche_clip.features import cache, clear_memory


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory()
    yield
    clear_memory()


class Builds:
    """A ``build(split)`` per entry that counts its calls; each entry's features are distinct."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def of(self, key: str, rows: int = 4):
        def build(split: str) -> torch.Tensor:
            self.calls.append((key, split))
            return torch.full((rows, 3), float(len(self.calls)))
        return build


def _reads(monkeypatch) -> list[str]:
    """The entries read from disk from now on."""
    reads: list[str] = []
    original = cache._read_verified

    def spy(entry, splits):
        reads.append(entry.name)
        return original(entry, splits)

    monkeypatch.setattr(cache, "_read_verified", spy)
    return reads


def test_three_entries_in_turn_are_read_from_disk_once(tmp_path, monkeypatch):
    builds = Builds()
    first = {key: cache.load_or_build(tmp_path, key, {}, builds.of(key))[0] for key in "abc"}
    reads = _reads(monkeypatch)
    for _ in range(2):  # the next runs of a sweep, each reading the three entries
        for key in "abc":
            features, built = cache.load_or_build(tmp_path, key, {}, builds.of(key))
            assert not built and features is first[key]  # the same tensors, from memory
    assert reads == [] and len(builds.calls) == 6  # built once (train, test each), never read


def test_beyond_the_byte_budget_only_the_two_most_recent_stay(tmp_path, monkeypatch):
    builds = Builds()
    monkeypatch.setattr(cache, "_MEMORY_BYTES", 100)  # each entry: 2 splits x 4 x 3 floats = 96 bytes
    for key in "abc":
        cache.load_or_build(tmp_path, key, {}, builds.of(key))
    assert list(cache._MEMORY) == [str((tmp_path / "features" / k).resolve()) for k in "bc"]
    reads = _reads(monkeypatch)
    features, built = cache.load_or_build(tmp_path, "a", {}, builds.of("a"))
    assert not built and reads == ["a"]  # forgotten in memory, read again from its files
    assert torch.equal(features["train"], torch.full((4, 3), 1.0))
    assert list(cache._MEMORY) == [str((tmp_path / "features" / k).resolve()) for k in "ca"]
    monkeypatch.setattr(cache, "_MEMORY_BYTES", 10**9)
    for _ in range(2):
        for key in "abc":
            cache.load_or_build(tmp_path, key, {}, builds.of(key))
    assert reads == ["a", "b"]  # within the budget all three stay: b, forgotten before, read once
    assert len(builds.calls) == 6
