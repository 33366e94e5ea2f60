"""Cache keys: every input of the cached features is in the key (frozen weights, eval transform,
data, split point), nothing else is (trainable weights), and identical builds share one entry
that the second build reads from disk."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from features_fixtures import BuildSpy, cache_key, cached_benchmark, write_image_folder
from PIL import Image
from torchvision import transforms as T

from avalanche_clip.features import clear_memory
from avalanche_clip.models import create_clip
from avalanche_clip.scenarios import file_digests


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory()  # every key below is built or read from this test's own cache folder
    yield
    clear_memory()


def test_identical_builds_share_one_entry_and_the_second_reads_it_from_disk(tmp_path, monkeypatch):
    spy = BuildSpy(monkeypatch)
    first, _ = cached_benchmark(tmp_path)
    entry = tmp_path / "features" / first.feature_cache["key"]
    assert sorted(p.name for p in entry.iterdir()) == ["meta.json", "test.pt", "train.pt"]
    assert first.feature_cache["dir"] == str(entry)

    clear_memory()  # else the second build is served from this process's memory
    second, _ = cached_benchmark(tmp_path)

    assert second.feature_cache["key"] == first.feature_cache["key"]
    assert spy.built == [True, False]
    for split in ("train", "test"):
        torch.testing.assert_close(spy.calls[1][1][split], spy.calls[0][1][split], rtol=0, atol=0)
    assert len(list((tmp_path / "features").iterdir())) == 2  # the entry and its lock file
    # the cached stream serves those features: item 0 of the first experience is a feature row
    x, y, *_ = second.train_stream[0].dataset[0]
    assert x.shape == spy.calls[1][1]["train"].shape[1:]


def test_memory_copies_are_per_cache_folder(tmp_path, monkeypatch):
    spy = BuildSpy(monkeypatch)
    one, _ = cached_benchmark(tmp_path / "one")
    two, _ = cached_benchmark(tmp_path / "two")  # same key, another folder: gets its own files
    assert one.feature_cache["key"] == two.feature_cache["key"]
    assert (tmp_path / "two" / "features" / two.feature_cache["key"] / "meta.json").is_file()
    assert spy.built == [True, True]
    cached_benchmark(tmp_path / "two")
    assert spy.built == [True, True, False]  # from memory, this time


def _conv1_plus(model):
    model.visual.conv1.weight.add_(1e-3)


def _proj_plus(model):
    model.visual.proj.add_(1e-3)


def test_frozen_weights_are_in_the_key(tmp_path):
    base = cache_key(tmp_path)
    assert cache_key(tmp_path, perturb=_conv1_plus) != base  # conv1 is in the frozen trunk


def test_trainable_weights_are_not_in_the_key(tmp_path):
    # The projection trains (trainable=projections) and is applied after the cache.
    assert cache_key(tmp_path, perturb=_proj_plus) == cache_key(tmp_path)


def test_split_point_is_in_the_key(tmp_path):
    assert cache_key(tmp_path, trainable="last:1") != cache_key(tmp_path, trainable="projections")


def test_another_image_size_changes_the_key(tmp_path):
    assert cache_key(tmp_path, image_size=40) != cache_key(tmp_path)


def test_another_eval_transform_alone_changes_the_key(tmp_path):
    _, _, eval_tf, _ = create_clip("tiny-clip")
    *head, normalize = eval_tf.transforms
    assert isinstance(normalize, T.Normalize)
    other = T.Compose([*head, T.Normalize(mean=(0.5, 0.5, 0.5), std=normalize.std)])
    assert cache_key(tmp_path, transform=other) != cache_key(tmp_path, transform=eval_tf)
    assert cache_key(tmp_path, transform=T.Compose(list(eval_tf.transforms))) == cache_key(tmp_path)


@pytest.mark.parametrize("options", [
    {"max_train_per_class": 11, "max_test_per_class": 6},  # fewer samples
    {"max_train_per_class": 12, "max_test_per_class": 5},  # the test split counts too
    {"max_train_per_class": 12, "max_test_per_class": 6, "subsample_seed": 1},  # other samples
    {"max_train_per_class": 12, "max_test_per_class": 6, "image_size": 24},  # other pixels
])
def test_other_data_changes_the_key(tmp_path, options):
    assert cache_key(tmp_path, **options) != cache_key(tmp_path)


def _replace_keeping_size_and_mtime(image, pixel_value: int) -> None:
    """New pixels, same byte size and modification time: what a stat-based key cannot see
    (uncompressed PNGs: the size depends on the image's dimensions only)."""
    stat = image.stat()
    with Image.open(image) as img:
        pixels = np.asarray(img).copy()
    pixels[0, 0, 0] = pixel_value
    Image.fromarray(pixels).save(image, compress_level=0)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (image.stat().st_size, image.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert (image.stat().st_size, image.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def test_image_files_are_keyed_by_content_not_by_size_and_modification_time(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "folder")
    image = root / "train" / "bee" / "1.png"
    with Image.open(image) as img:
        img.load()
        img.save(image, compress_level=0)
    key = dict(scenario="split-imagefolder", root=root, n_experiences=2)
    cache = tmp_path / "cache"
    monkeypatch.setattr(file_digests, "RACY_SECONDS", 0.0)  # let digests of these fresh files be remembered
    first = cache_key(cache, **key)
    clear_memory()
    assert cache_key(cache, **key) == first  # nothing changed

    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # touched only
    clear_memory()
    assert cache_key(cache, **key) == first  # same bytes, same features

    _replace_keeping_size_and_mtime(image, pixel_value=255 - int(np.asarray(Image.open(image))[0, 0, 0]))
    clear_memory()
    replaced = cache_key(cache, **key)
    assert replaced != first  # the stale features of the old pixels are never read

    moved = tmp_path / "elsewhere"
    root.rename(moved)
    clear_memory()
    assert cache_key(cache, **{**key, "root": moved}) == replaced  # same data elsewhere: same key
