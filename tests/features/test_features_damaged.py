"""A damaged feature-cache entry is rebuilt with a warning, never read: a zero-filled
``train.pt`` of the right shape (what a stat-only check accepts), a truncated file, an
unreadable ``meta.json``."""

from __future__ import annotations

import io
import warnings

import pytest
import torch
from features_fixtures import BuildSpy, cached_benchmark

from avalanche_clip.features import clear_memory
from avalanche_clip.features.cache import CacheEntryWarning


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory()
    yield
    clear_memory()


def _zero_filled(data: bytes) -> bytes:
    features = torch.load(io.BytesIO(data), weights_only=True)
    stream = io.BytesIO()
    torch.save(torch.zeros_like(features), stream)
    return stream.getvalue()


DAMAGE = {
    "train.pt zero-filled": ("train.pt", _zero_filled, "train.pt does not match its checksum"),
    "test.pt truncated": ("test.pt", lambda data: data[: len(data) // 2], "test.pt does not match its checksum"),
    "meta.json garbage": ("meta.json", lambda data: b"{not json", "meta.json unreadable"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_entry_is_rebuilt_with_a_warning(tmp_path, monkeypatch, case):
    name, damage, reason = DAMAGE[case]
    spy = BuildSpy(monkeypatch)
    first, _ = cached_benchmark(tmp_path)
    entry = tmp_path / "features" / first.feature_cache["key"]
    path = entry / name
    path.write_bytes(damage(path.read_bytes()))
    clear_memory()

    with pytest.warns(CacheEntryWarning, match=rf"feature cache entry {entry} is damaged \({reason}"):
        cached_benchmark(tmp_path)

    assert spy.built == [True, True]  # rebuilt, not read
    for split in ("train", "test"):
        torch.testing.assert_close(spy.calls[1][1][split], spy.calls[0][1][split], rtol=0, atol=0)
    clear_memory()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheEntryWarning)  # the rebuilt entry passes its checks
        cached_benchmark(tmp_path)
    assert spy.built == [True, True, False]
