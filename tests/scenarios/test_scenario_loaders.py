"""Each loader against data in its real on-disk format: fakes written here, plus the real
CIFAR-10 / PACS copies under the data root (skipped when absent)."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from scenario_fakes import IMAGENET_WNIDS, pattern_image

from avalanche_clip.scenarios import (
    SAMPLE_INDEX_ATTR,
    build_scenario,
    build_source,
    imagenet_class_names,
)


def test_cifar100_reads_official_pickles(fake_cifar100):
    bm = build_scenario("split-cifar100", root=fake_cifar100)
    assert bm.num_classes == 100 and len(bm.train_stream) == 10 and len(bm.test_stream) == 10
    assert bm.class_names[-1] == "aquarium fish" and bm.class_names[0] == "class 00"
    assert bm.num_train_samples == 200 and bm.num_test_samples == 100
    assert all(len(exp.classes_in_this_experience) == 10 for exp in bm.train_stream)
    # pixels: item idx is row idx of the pickle, CHW planes -> HWC image
    with open(fake_cifar100 / "cifar-100-python" / "train", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    exp = bm.train_stream[3]
    x, y, idx, t = exp.dataset[0]
    expected = torch.from_numpy(raw["data"][idx].reshape(3, 32, 32).astype(np.float32) / 255.0)
    assert torch.allclose(x, expected) and y == raw["fine_labels"][idx]


def test_torchvision_refuses_the_fake_which_is_why_we_read_pickles(fake_cifar100):
    from torchvision.datasets import CIFAR100

    with pytest.raises(RuntimeError, match="corrupted"):
        CIFAR100(str(fake_cifar100), train=True, download=False)


def test_cifar100_custom_split(fake_cifar100):
    bm = build_scenario("split-cifar100", root=fake_cifar100, n_experiences=20, seed=1)
    assert len(bm.train_stream) == 20 and bm.n_classes_per_exp == [5] * 20


def test_imagenet_names_from_wnids(fake_imagenet):
    bm = build_scenario("split-imagenet", root=fake_imagenet, n_experiences=2)
    assert bm.class_names == ["tench", "goldfish", "great white shark", "tiger shark"]
    assert bm.source.extra["class_folders"] == IMAGENET_WNIDS
    assert bm.num_train_samples == 12 and bm.num_test_samples == 8
    x, y, idx, t = bm.test_stream[1].dataset[0]
    assert x.shape == (3, 16, 16) and y in bm.test_stream[1].classes_in_this_experience


def test_imagenet_unknown_wnid_falls_back_to_wnid():
    assert imagenet_class_names(["n01440764", "n99999999"]) == ["tench", "n99999999"]


def test_imagenet_1k_names_are_unique():
    from timm.data import ImageNetInfo

    names = imagenet_class_names(ImageNetInfo("imagenet-1k").label_names())
    assert len(names) == len(set(names)) == 1000
    assert "construction crane" in names and "crane bird" in names


def test_imagenet_default_is_ten_experiences(fake_imagenet):
    with pytest.raises(ValueError, match="n_experiences=10 does not divide the 4 classes"):
        build_scenario("split-imagenet", root=fake_imagenet)


def test_split_imagefolder_fake(fake_imagefolder):
    bm = build_scenario("split-imagefolder", root=fake_imagefolder, n_experiences=2, seed=0)
    assert bm.class_names == ["ant", "bee", "cat fish", "dog"]
    assert bm.num_train_samples == 12 and bm.num_test_samples == 8
    # PNGs decode exactly: item idx is the idx-th file in sorted order
    exp = bm.train_stream[0]
    for x, y, idx, _ in exp.dataset:
        cls, i = divmod(idx, 3)
        assert y == cls
        expected = torch.from_numpy(pattern_image(5000 + idx)).permute(2, 0, 1).float() / 255.0
        assert torch.allclose(x, expected)


def test_domainnet_fake_tree(fake_domainnet):
    bm = build_scenario("domainnet", root=fake_domainnet)
    assert bm.num_train_samples == 6 * 3 * 2 and bm.num_test_samples == 6 * 3
    assert bm.source.extra["class_folders"] == ["aircraft_carrier", "The_Eiffel_Tower", "zebra"]
    # same data through the generic loader: domains discovered (sorted) from *_train.txt
    generic = build_scenario("domain-folder", root=fake_domainnet)
    assert generic.domain_names == sorted(bm.domain_names)
    assert generic.class_names == bm.class_names


def test_domainnet_subsampling_per_domain_and_class(fake_domainnet):
    bm = build_scenario("domainnet", root=fake_domainnet, max_train_per_class=1)
    pairs = Counter(zip(bm.source.train.domains, bm.source.train.targets, strict=True))
    assert set(pairs.values()) == {1} and len(pairs) == 6 * 3


# ---------------------------------------------------------------- real data (skipped when absent)


@pytest.mark.data
def test_cifar10_counts_and_names(cifar10_root):
    src = build_source("split-imagefolder", root=cifar10_root)  # file lists only, nothing decoded
    assert len(src.train) == 50_000 and len(src.test) == 10_000
    assert src.class_names == [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    ]  # fmt: skip
    assert Counter(src.train.targets) == {c: 5000 for c in range(10)}
    assert Counter(src.test.targets) == {c: 1000 for c in range(10)}


@pytest.mark.data
def test_cifar10_stream_5x2(cifar10_root):
    bm = build_scenario("split-imagefolder", root=cifar10_root, seed=0)
    assert bm.num_train_samples == 50_000 and bm.num_test_samples == 10_000
    assert len(bm.train_stream) == 5 and bm.n_classes_per_exp == [2] * 5
    assert [len(e.dataset) for e in bm.train_stream] == [10_000] * 5
    assert [len(e.dataset) for e in bm.test_stream] == [2_000] * 5
    x, y, idx, t = bm.train_stream[4].dataset[-1]
    assert x.shape == (3, 32, 32) and y in bm.classes_per_experience[4]


@pytest.mark.data
def test_pacs_domains_classes_counts(pacs_root):
    bm = build_scenario("domain-folder", root=pacs_root)
    assert bm.domain_names == ["art_painting", "cartoon", "photo", "sketch"]
    assert bm.class_names == ["dog", "elephant", "giraffe", "guitar", "horse", "house", "person"]
    assert bm.num_classes == 7 and len(bm.train_stream) == len(bm.test_stream) == 4
    assert bm.num_train_samples + bm.num_test_samples == 9_991
    for t, exp in enumerate(bm.train_stream):
        assert exp.domain == bm.domain_names[t] and set(exp.classes_in_this_experience) == set(
            range(7)
        )
        assert {bm.source.train.domains[i] for i in getattr(exp.dataset, SAMPLE_INDEX_ATTR)} == {t}
    x, *_ = bm.test_stream[2].dataset[0]
    assert x.shape == (3, 128, 128)


@pytest.mark.data
def test_pacs_dil_evaluation_covers_seen_domains(pacs_root):
    from avalanche_clip.scenarios import seen_test_experiences

    bm = build_scenario("domain-folder", root=pacs_root, domains=["photo", "sketch", "cartoon"])
    for t in range(3):
        assert [e.domain for e in seen_test_experiences(bm, t)] == ["photo", "sketch", "cartoon"][
            : t + 1
        ]
