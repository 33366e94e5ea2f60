"""Two processes building the same cache entry at once end with one valid entry; a build that dies
leaves nothing that is read later.

The processes are forked from the test process (no second interpreter start-up) and build with a
slow, deterministic ``build`` function: what is under test is ``load_or_build``'s locking and
atomic writes, which do not depend on what is encoded. Forking is safe here because the children
run no multi-threaded torch kernels (tiny tensors, save and load only).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from avalanche_clip.features import clear_memory, load_or_build
from avalanche_clip.features.fingerprint import tensors_fingerprint
from avalanche_clip.scenarios.file_digests import content_digest

KEY = "0" * 64
META = {"model": ["fake"], "format": 1}
SIZES = {"train": 7, "test": 3}
CONTEXT = multiprocessing.get_context("fork")


def _features(split: str) -> torch.Tensor:
    return torch.arange(SIZES[split] * 5, dtype=torch.float32).reshape(SIZES[split], 5) + len(split)


def _slow_build(split: str, delay: float = 0.3) -> torch.Tensor:
    time.sleep(delay)  # long enough for the other process to reach the lock meanwhile
    return _features(split)


def _child(cache_dir: str, barrier, results) -> None:
    clear_memory()
    barrier.wait(timeout=60)
    features, built = load_or_build(cache_dir, KEY, META, _slow_build)
    results.put((os.getpid(), built, tensors_fingerprint(features)))


def _no_leftovers(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.rglob("*") if p.name.endswith(".tmp")]


def test_two_processes_building_one_entry_at_once_end_with_one_valid_entry(tmp_path):
    barrier, results = CONTEXT.Barrier(2), CONTEXT.Queue()
    children = [CONTEXT.Process(target=_child, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0

    assert sorted(built for _, built, _ in outcomes) == [False, True]  # one built, one waited and read
    expected = tensors_fingerprint({split: _features(split) for split in ("train", "test")})
    assert [fingerprint for *_, fingerprint in outcomes] == [expected, expected]

    entry = tmp_path / "features" / KEY
    meta = json.loads((entry / "meta.json").read_text())
    assert meta == {**META, "checksums": {f"{s}.pt": content_digest(str(entry / f"{s}.pt")) for s in SIZES}}
    on_disk = {split: torch.load(entry / f"{split}.pt", weights_only=True) for split in ("train", "test")}
    assert tensors_fingerprint(on_disk) == expected
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "test.pt", "train.pt"]
    assert not _no_leftovers(tmp_path)


class BuildDied(Exception):
    pass


def test_a_build_that_fails_midway_leaves_nothing_that_is_read_later(tmp_path):
    clear_memory()

    def dies_on_test(split: str) -> torch.Tensor:
        if split == "test":
            raise BuildDied
        return _features(split)

    with pytest.raises(BuildDied):
        load_or_build(tmp_path, KEY, META, dies_on_test)
    entry = tmp_path / "features" / KEY
    assert not (entry / "meta.json").exists()  # the entry does not count

    features, built = load_or_build(tmp_path, KEY, META, _features)
    assert built  # rebuilt, not read
    torch.testing.assert_close(features["test"], _features("test"))
    assert not _no_leftovers(tmp_path)
    clear_memory()


def _hold_the_lock(cache_dir: str, building) -> None:
    def forever(split: str) -> torch.Tensor:
        building.set()
        time.sleep(600)
        raise AssertionError("unreachable")

    load_or_build(cache_dir, KEY, META, forever)


def _build_once(cache_dir: str, results) -> None:
    clear_memory()
    _, built = load_or_build(cache_dir, KEY, META, _features)
    results.put(built)


def test_a_process_killed_while_building_does_not_block_the_next_one(tmp_path):
    building, results = CONTEXT.Event(), CONTEXT.Queue()
    holder = CONTEXT.Process(target=_hold_the_lock, args=(str(tmp_path), building))
    holder.start()
    assert building.wait(timeout=60), "the first process never started building"
    os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock, mid-build
    holder.join(timeout=60)

    builder = CONTEXT.Process(target=_build_once, args=(str(tmp_path), results))
    builder.start()
    built = results.get(timeout=60)  # the lock died with its holder
    builder.join(timeout=60)
    assert built is True and builder.exitcode == 0
    assert (tmp_path / "features" / KEY / "meta.json").is_file()
