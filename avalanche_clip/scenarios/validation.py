"""A validation split carved from the training data, for tuning that never reads the test set.

``carve_validation(source, fraction, seed)`` moves ``round(fraction · n_g)`` samples (at least
one, when the group has two or more) of every group ``g`` — a class, or a (domain, class) pair
for domain-incremental data — from the train split into a validation split, chosen by a private
generator seeded with ``seed``, and returns a source whose *test* split is that validation data.
Streams built from it are the usual ones: experience ``t`` trains on its classes' (or domain's)
remaining samples and is evaluated on their validation samples, so a tuning objective is the
same accuracy a sweep reports, measured on held-out training data. The carved split is
stratified, disjoint from the samples that train, and identical for every method of a seed.
"""

from __future__ import annotations

import numpy as np

from avalanche_clip.scenarios.source import DataSource, sample_groups

VALIDATION_SPLIT = "validation"


def validation_indices(targets: list[int], fraction: float, seed: int,
                       domains: list[int] | None = None) -> list[int]:
    """Ascending positions of the validation samples (see the module docstring)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation_fraction must lie in (0, 1), got {fraction!r}")
    groups = sample_groups(targets, domains)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if len(members) < 2:
            continue
        k = min(max(1, round(fraction * len(members))), len(members) - 1)
        chosen.append(rng.permutation(members)[:k])
    return sorted(int(i) for i in np.concatenate(chosen)) if chosen else []


def carve_validation(source: DataSource, fraction: float, seed: int) -> DataSource:
    """``source`` with ``test`` replaced by a validation split carved from ``train``."""
    train = source.train
    held_out = validation_indices(train.targets, fraction, seed, train.domains)
    if not held_out:
        raise ValueError(f"{source.name}: no class has two training samples to carve a validation split from")
    keep = sorted(set(range(len(train))) - set(held_out))
    return source.replace(train=train.subset(keep), test=train.subset(held_out),
                          extra={**source.extra, "split": VALIDATION_SPLIT,
                                 "validation_fraction": fraction})
