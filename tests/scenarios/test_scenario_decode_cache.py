"""The optional decoded-image cache: same items, persisted keyed by the files' contents, checked
on load, safe to race."""

from __future__ import annotations

import multiprocessing as mp
import os

import numpy as np
import pytest
import torch
from PIL import Image

from avalanche_clip.scenarios import ArrayImageDataset, DataLayoutError, build_scenario
from avalanche_clip.scenarios.decode_cache import DecodeCacheWarning, cache_path, decode_images
from avalanche_clip.scenarios.file_digests import MEMO_FILENAME


def _all_items(bm):
    return [
        item for stream in (bm.train_stream, bm.test_stream) for e in stream for item in e.dataset
    ]


def _same(a, b):
    assert len(a) == len(b)
    for (xa, ya, ia, ta), (xb, yb, ib, tb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and (ya, ia, ta) == (yb, ib, tb)


def test_decoded_streams_equal_file_streams(fake_imagefolder):
    plain = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=2)
    cached = build_scenario(
        "split-imagefolder", root=fake_imagefolder, n_experiences=2, decode_cache=True
    )
    assert isinstance(cached.source.train.dataset, ArrayImageDataset)
    _same(_all_items(plain), _all_items(cached))


def test_persisted_cache_reused_and_keyed_by_files(fake_imagefolder, tmp_path):
    cache = tmp_path / "cache"
    kw = dict(root=fake_imagefolder, n_experiences=2, decode_cache=True, cache_dir=cache)
    first = build_scenario("split-imagefolder", **kw)
    files = sorted(cache.glob("decoded-*.npy"))
    assert len(files) == 2  # train and test
    assert not list(cache.glob(".*tmp"))
    second = build_scenario("split-imagefolder", **kw)
    assert isinstance(second.source.train.dataset.images, np.memmap)  # loaded, not decoded
    _same(_all_items(first), _all_items(second))
    # touching one image keeps its bytes and the key; new bytes of the same size and
    # modification time give a new key: a new file, never a stale hit
    img = fake_imagefolder / "train" / "ant" / "0.png"
    os.utime(img, ns=(0, 12345))
    build_scenario("split-imagefolder", **kw)
    assert len(list(cache.glob("decoded-*.npy"))) == 2
    pixels = np.asarray(Image.open(img)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    size = img.stat().st_size
    Image.fromarray(pixels).save(img)  # random pixels: PNG does not compress them, same size
    assert img.stat().st_size == size
    os.utime(img, ns=(0, 12345))
    third = build_scenario("split-imagefolder", **kw)
    assert len(list(cache.glob("decoded-*.npy"))) == 3
    assert np.array_equal(third.source.train.dataset.images[0], pixels)


def test_a_damaged_decoded_array_is_decoded_again(fake_imagefolder, tmp_path):
    cache = tmp_path / "cache"
    kw = dict(root=fake_imagefolder, n_experiences=2, decode_cache=True, cache_dir=cache)
    first = build_scenario("split-imagefolder", **kw)
    train = np.asarray(first.source.train.dataset.images).copy()
    for stored in cache.glob("decoded-*.npy"):  # zero-filled, right shape and dtype
        np.save(stored, np.zeros_like(np.load(stored)))
    with pytest.warns(DecodeCacheWarning, match=r"decoded-image cache .*decoded-\d+-.*\.npy is damaged "
                                                r"\(the array does not match its checksum\)"):
        second = build_scenario("split-imagefolder", **kw)
    assert np.array_equal(second.source.train.dataset.images, train)


def _build_cache(args):
    paths, cache_dir = args
    return np.asarray(decode_images(paths, cache_dir=cache_dir)).sum()


def test_a_cache_dir_that_cannot_be_created_serves_the_decoded_images_from_memory(fake_imagefolder, tmp_path):
    from avalanche_clip.common.cache_writes import CacheWriteWarning

    (tmp_path / "notes.txt").write_text("a file where the cache folder would go")
    cache = tmp_path / "notes.txt" / "cache"
    with pytest.warns(CacheWriteWarning) as caught:
        cached = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=2,
                                decode_cache=True, cache_dir=cache)
    assert {str(w.message).split("; ")[0] for w in caught} == {  # nothing else, each naming the folder
        f"cannot write the {what} in {cache} (Not a directory)" for what in ("file-digest memo", "decoded-image cache")}
    plain = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=2)
    assert isinstance(cached.source.train.dataset, ArrayImageDataset)
    _same(_all_items(plain), _all_items(cached))


def test_two_processes_building_the_cache_at_once(fake_imagefolder, tmp_path):
    paths = sorted(str(p) for p in (fake_imagefolder / "train").rglob("*.png"))
    cache = tmp_path / "cache"
    with mp.get_context("fork").Pool(2) as pool:
        sums = pool.map(_build_cache, [(paths, cache)] * 4, chunksize=1)
    assert len(set(sums)) == 1
    array = cache_path(paths, cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(  # no temp files left
        [array.name, array.with_suffix(".json").name, MEMO_FILENAME])


def test_mixed_sizes_refused(tmp_path):
    for i, size in enumerate((8, 9)):
        Image.new("RGB", (size, size)).save(tmp_path / f"{i}.png")
    with pytest.raises(DataLayoutError, match="decode_cache needs images of one size"):
        decode_images([str(tmp_path / "0.png"), str(tmp_path / "1.png")])


@pytest.mark.data
def test_decoded_cifar10_subset_matches_jpeg_decoding(cifar10_root):
    kw = dict(root=cifar10_root, max_train_per_class=3, max_test_per_class=2)
    plain = build_scenario("split-imagefolder", **kw)
    cached = build_scenario("split-imagefolder", **kw, decode_cache=True, decode_workers=2)
    _same(_all_items(plain), _all_items(cached))
