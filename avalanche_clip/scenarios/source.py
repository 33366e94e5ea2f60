"""Data sources: what a scenario is built from, before any Avalanche object exists.

A :class:`DataSource` holds a train and a test :class:`SplitData` — a plain torch dataset of
``(input, label)`` items with its ``targets`` list (and, for multi-domain data, a domain id per
sample) — plus the class names (index = global class id) and domain names. The *position* of a
sample in ``source.train`` is its global sample index. Stream builders
(:mod:`avalanche_clip.scenarios.streams`) turn a source into an Avalanche benchmark; because the
source is kept on the benchmark, the same streams can be rebuilt over replacement data (e.g.
precomputed features) with the same samples in the same order.

Example::

    src = DataSource("toy", "class-incremental",
                     train=SplitData(train_ds, train_ds.targets),
                     test=SplitData(test_ds, test_ds.targets),
                     class_names=["cat", "dog"])
    small = subsample_source(src, max_train_per_class=10, seed=0)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from avalanche_clip.scenarios.decode_cache import decode_dataset
from avalanche_clip.scenarios.image_files import ImageFileDataset

CLASS_INCREMENTAL = "class-incremental"
DOMAIN_INCREMENTAL = "domain-incremental"
KINDS = (CLASS_INCREMENTAL, DOMAIN_INCREMENTAL)


@dataclass(frozen=True)
class SplitData:
    """One split: ``dataset[i] -> (input, label)``, ``targets[i]`` its label, ``domains[i]`` its
    domain id (index into ``DataSource.domain_names``) or ``None`` for single-domain data."""

    dataset: Any
    targets: list[int]
    domains: list[int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", [int(t) for t in self.targets])
        if self.domains is not None:
            object.__setattr__(self, "domains", [int(d) for d in self.domains])
            if len(self.domains) != len(self.targets):
                raise ValueError(f"{len(self.targets)} targets but {len(self.domains)} domain ids")
        if len(self.dataset) != len(self.targets):
            raise ValueError(
                f"dataset has {len(self.dataset)} items but {len(self.targets)} targets"
            )

    def __len__(self) -> int:
        return len(self.targets)

    def subset(self, indices: Sequence[int]) -> SplitData:
        """The samples at ``indices``, in that order (datasets with ``subset`` keep their type)."""
        idx = [int(i) for i in indices]
        ds = (
            self.dataset.subset(idx)
            if hasattr(self.dataset, "subset")
            else Subset(self.dataset, idx)
        )
        domains = None if self.domains is None else [self.domains[i] for i in idx]
        return SplitData(ds, [self.targets[i] for i in idx], domains)

    def with_dataset(self, dataset: Dataset) -> SplitData:
        """The same samples (labels, domains, order) served by another dataset."""
        return SplitData(dataset, self.targets, self.domains)


@dataclass(frozen=True)
class DataSource:
    """Train and test splits plus the names a prompt needs.

    Attributes:
        name: the scenario / data set name.
        kind: ``"class-incremental"`` or ``"domain-incremental"``.
        train, test: the splits; position in ``train`` is the global sample index. ``test`` is
            None for a train-only source (read for tuning; a validation split replaces it).
        class_names: readable class names, index = class id.
        domain_names: domain names in stream order (domain-incremental sources only).
        default_n_experiences: used when ``build_scenario`` gets no ``n_experiences``.
        root: where the data was read from (informational).
    """

    name: str
    kind: str
    train: SplitData
    test: SplitData | None
    class_names: list[str]
    domain_names: list[str] | None = None
    default_n_experiences: int | None = None
    root: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        n = len(self.class_names)
        for split_name, split in (("train", self.train), ("test", self.test)):
            if split is None and split_name == "test":  # a train-only source (for tuning)
                continue
            if len(split) == 0:
                raise ValueError(f"{self.name}: the {split_name} split is empty")
            bad = [t for t in set(split.targets) if not 0 <= t < n]
            if bad:
                raise ValueError(
                    f"{self.name}: {split_name} labels {sorted(bad)[:5]} outside 0..{n - 1}"
                )
            if self.kind == DOMAIN_INCREMENTAL and split.domains is None:
                raise ValueError(f"{self.name}: a domain-incremental source needs domain ids")
        if self.kind == DOMAIN_INCREMENTAL and not self.domain_names:
            raise ValueError(f"{self.name}: a domain-incremental source needs domain_names")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def replace(self, **changes: Any) -> DataSource:
        return dataclasses.replace(self, **changes)


def sample_groups(targets: Sequence[int], domains: Sequence[int] | None = None) -> np.ndarray:
    """A group id per sample: its class, or its (domain, class) pair when ``domains`` is given."""
    labels = np.asarray(targets, dtype=np.int64)
    if domains is None:
        return labels
    return np.asarray(domains, dtype=np.int64) * (int(labels.max()) + 1) + labels


def balanced_subsample_indices(
    targets: Sequence[int],
    max_per_group: int,
    seed: int,
    domains: Sequence[int] | None = None,
) -> list[int]:
    """Ascending indices keeping at most ``max_per_group`` samples per class (per domain and
    class when ``domains`` is given), chosen by a private RNG seeded with ``seed``."""
    if max_per_group < 1:
        raise ValueError(f"max per class must be >= 1, got {max_per_group}")
    groups = sample_groups(targets, domains)
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if len(members) > max_per_group:
            members = np.sort(rng.permutation(members)[:max_per_group])
        keep.append(members)
    return sorted(int(i) for i in np.concatenate(keep))


def subsample_source(
    source: DataSource,
    *,
    max_train_per_class: int | None = None,
    max_test_per_class: int | None = None,
    seed: int = 0,
) -> DataSource:
    """A source keeping at most ``max_*_per_class`` samples per class (per domain and class for
    domain-incremental data), chosen deterministically from ``seed``; source order is kept."""
    train, test = source.train, source.test
    if max_train_per_class is not None:
        train = train.subset(
            balanced_subsample_indices(train.targets, max_train_per_class, seed, train.domains)
        )
    if max_test_per_class is not None and test is not None:
        test = test.subset(
            balanced_subsample_indices(test.targets, max_test_per_class, seed + 1, test.domains)
        )
    return source.replace(train=train, test=test)


def prepare_source(
    source: DataSource,
    *,
    verify: bool = False,
    decode_cache: bool = False,
    cache_dir: str | None = None,
    decode_workers: int = 0,
) -> DataSource:
    """Optionally check every image upfront (``verify``) and/or decode all images into memory
    (``decode_cache``; persisted under ``cache_dir`` if given). Datasets that are already arrays
    (CIFAR-100, digits) are left as they are."""
    splits = {}
    for name in ("train", "test"):
        split: SplitData = getattr(source, name)
        if split is None:
            continue
        ds = split.dataset
        if verify and hasattr(ds, "verify"):
            ds.verify()
        if decode_cache and isinstance(ds, ImageFileDataset):
            ds = decode_dataset(ds, cache_dir=cache_dir, num_workers=decode_workers)
        splits[name] = split.with_dataset(ds) if ds is not split.dataset else split
    return source.replace(**splits)


__all__ = [
    "CLASS_INCREMENTAL",
    "DOMAIN_INCREMENTAL",
    "DataSource",
    "SplitData",
    "balanced_subsample_indices",
    "prepare_source",
    "subsample_source",
]
