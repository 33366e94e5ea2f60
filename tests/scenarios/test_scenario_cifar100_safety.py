"""CIFAR-100 files are data, never code: a pickle naming any function but numpy's array
rebuilders is refused before it runs, and a full-size copy must match torchvision's MD5 sums."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import avalanche_clip.scenarios.cifar100 as cifar100
from avalanche_clip.scenarios import DataLayoutError, build_scenario
from avalanche_clip.scenarios.safe_pickle import UnsafePickleError, load_data_pickle


class _Payload:
    """Unpickling this creates ``marker``: stands for arbitrary code in a data file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def _plant(path: Path, obj) -> None:
    with open(path, "wb") as stream:
        pickle.dump(obj, stream, protocol=2)


@pytest.mark.parametrize("where", ["top level", "inside the labels"])
def test_a_pickle_payload_in_a_data_file_is_refused_before_it_runs(fake_cifar100, tmp_path, where):
    marker = tmp_path / "payload-ran"
    train = fake_cifar100 / "cifar-100-python" / "train"
    if where == "top level":
        _plant(train, _Payload(marker))
    else:
        _plant(train, {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [_Payload(marker)]})
    with open(train, "rb") as stream:  # the reproduction: plain pickle runs it
        pickle.load(stream, encoding="latin1")
    assert marker.is_dir()
    marker.rmdir()

    with pytest.raises(UnsafePickleError) as err:
        build_scenario("split-cifar100", root=fake_cifar100)

    assert not marker.exists()
    message = str(err.value)
    assert str(train) in message and f"{os.mkdir.__module__}.mkdir" in message
    assert "never needs" in message and isinstance(err.value, DataLayoutError)


def test_codecs_encode_only_for_latin1(tmp_path):
    import _codecs

    class Rot13:
        def __reduce__(self):
            return _codecs.encode, ("data", "rot13")

    path = tmp_path / "p"
    _plant(path, {"x": Rot13()})
    with pytest.raises(DataLayoutError, match="refusing _codecs.encode with encoding 'rot13'"):
        load_data_pickle(path)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_plain_data_pickles_load_as_before(tmp_path, protocol):
    data = {"data": np.arange(24, dtype=np.uint8).reshape(2, 12), "fine_labels": [3, 1],
            "filenames": [b"a.png", "b.png"], "batch_label": "training batch", "f": 0.5}
    path = tmp_path / "p"
    with open(path, "wb") as stream:
        pickle.dump(data, stream, protocol=protocol)
    loaded = load_data_pickle(path)
    np.testing.assert_array_equal(loaded["data"], data["data"])
    assert {k: v for k, v in loaded.items() if k != "data"} == {k: v for k, v in data.items() if k != "data"}


def test_the_fake_cifar100_still_builds(fake_cifar100):
    bm = build_scenario("split-cifar100", root=fake_cifar100)
    assert bm.num_classes == 100 and bm.num_train_samples == 200


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def test_a_full_size_copy_must_match_the_official_md5s(fake_cifar100, monkeypatch):
    # The fake has 200 train / 100 test images; let that count as "full size" here (writing
    # 60,000 images would take 180 MB), so the real check runs on real files.
    monkeypatch.setattr(cifar100, "OFFICIAL_SIZES", (200, 100))
    folder = fake_cifar100 / "cifar-100-python"
    with pytest.raises(DataLayoutError) as err:
        build_scenario("split-cifar100", root=fake_cifar100)
    message = str(err.value)
    official = cifar100.official_md5s()
    assert official["train"] == "16019d7e3df5f24257cddd939b257f8d"  # torchvision's, not a copy
    assert f"{folder / 'train'} belongs to a full-size CIFAR-100 copy" in message
    assert _md5(folder / "train") in message and official["train"] in message
    assert "damaged or altered" in message

    # the same files with matching sums are accepted
    sums = {name: _md5(folder / name) for name in official}
    monkeypatch.setattr(cifar100, "official_md5s", lambda: sums)
    assert build_scenario("split-cifar100", root=fake_cifar100).num_train_samples == 200
    # and one changed pixel (a file still well-formed) is caught
    train = folder / "train"
    entry = load_data_pickle(train)
    entry["data"][7, 100] ^= 0xFF
    _plant(train, entry)
    with pytest.raises(DataLayoutError, match=r"cifar-100-python/train belongs to a full-size"):
        build_scenario("split-cifar100", root=fake_cifar100)


def test_smaller_copies_are_not_md5_checked(fake_cifar100, monkeypatch):
    checked = []
    monkeypatch.setattr(cifar100, "check_official_files", checked.append)
    build_scenario("split-cifar100", root=fake_cifar100)
    assert checked == []
