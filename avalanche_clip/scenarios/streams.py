"""Stream builders: a :class:`DataSource` becomes an Avalanche benchmark.

Class-incremental: the classes, in an order drawn from ``seed`` with a private
``torch.Generator`` (the global RNG is never touched), are cut into ``n_experiences`` equal
groups; train and test experience ``t`` hold the samples of group ``t``. Domain-incremental:
experience ``t`` of both streams holds every sample of domain ``t`` (all classes). Within an
experience samples keep source order (ascending global index).

The benchmark is an Avalanche ``CLScenario`` (``train_stream`` / ``test_stream`` are
``EagerCLStream`` s of ``DatasetExperience`` s, decorated with Avalanche's classes timeline, so each
experience has ``classes_in_this_experience``, ``previous_classes``, ``classes_seen_so_far``), plus:

    class_names, num_classes, num_train_samples, num_test_samples, scenario_kind,
    n_experiences, class_order, classes_per_experience, domain_names (DIL, stream order),
    source (the DataSource), stream_options (the StreamOptions)

and, for domain-incremental streams, ``domain`` / ``domain_id`` on every experience.

Evaluation after training experience ``t`` uses :func:`seen_test_experiences`, which is
``test_stream[:t+1]`` for both kinds: the classes (CIL) or domains (DIL) seen so far.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import DatasetExperience
from avalanche.benchmarks.scenarios.generic_scenario import CLScenario, EagerCLStream
from avalanche.benchmarks.scenarios.supervised import with_classes_timeline

from avalanche_clip.scenarios.indexing import make_stream_dataset
from avalanche_clip.scenarios.source import CLASS_INCREMENTAL, DOMAIN_INCREMENTAL, DataSource


@dataclass(frozen=True)
class StreamOptions:
    """Everything besides the source that decides the streams (kept as ``stream_options``)."""

    kind: str
    n_experiences: int
    seed: int
    class_order: tuple[int, ...]
    with_index: bool = True
    train_transform: Callable | None = None
    eval_transform: Callable | None = None

    def replace(self, **changes: Any) -> StreamOptions:
        return dataclasses.replace(self, **changes)


def seeded_class_order(num_classes: int, seed: int) -> list[int]:
    """A permutation of ``range(num_classes)`` drawn from a private generator seeded by ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_classes, generator=g).tolist()


def check_class_order(class_order: Sequence[int], num_classes: int) -> list[int]:
    order = [int(c) for c in class_order]
    if sorted(order) != list(range(num_classes)):
        raise ValueError(
            f"class_order must be a permutation of 0..{num_classes - 1} "
            f"({num_classes} classes), got {len(order)} entries"
        )
    return order


def check_divides(n_experiences: int, num_classes: int) -> int:
    if n_experiences < 1:
        raise ValueError(f"n_experiences must be >= 1, got {n_experiences}")
    if num_classes % n_experiences:
        raise ValueError(
            f"n_experiences={n_experiences} does not divide the {num_classes} classes; "
            f"choose one of {[d for d in range(1, num_classes + 1) if num_classes % d == 0]}"
        )
    return n_experiences


def experience_groups(source: DataSource, options: StreamOptions) -> list[list[int]]:
    """Per experience, the class ids (CIL, in class order) or ``[domain id]`` (DIL)."""
    if options.kind == DOMAIN_INCREMENTAL:
        return [[d] for d in range(len(source.domain_names or []))]
    order = check_class_order(options.class_order, source.num_classes)
    check_divides(options.n_experiences, source.num_classes)
    per = source.num_classes // options.n_experiences
    return [order[i * per : (i + 1) * per] for i in range(options.n_experiences)]


def _indices_by_group(keys: Sequence[int], groups: list[list[int]]) -> list[list[int]]:
    k = np.asarray(keys, dtype=np.int64)
    return [np.flatnonzero(np.isin(k, g)).tolist() for g in groups]


def build_streams(source: DataSource, options: StreamOptions) -> CLScenario:
    """The Avalanche benchmark of ``source`` under ``options`` (see the module docstring)."""
    if options.kind != source.kind:
        raise ValueError(f"stream kind {options.kind!r} does not match source kind {source.kind!r}")
    groups = experience_groups(source, options)
    if options.kind == DOMAIN_INCREMENTAL and options.n_experiences != len(groups):
        raise ValueError(
            f"n_experiences={options.n_experiences} but the source has {len(groups)} domains "
            f"({source.domain_names}); a domain-incremental stream has one experience per domain"
        )
    if options.kind == CLASS_INCREMENTAL:
        missing = sorted(set(range(source.num_classes)) - set(source.train.targets))
        if missing:
            names = [source.class_names[c] for c in missing[:5]]
            raise ValueError(f"{source.name}: classes {names} have no training samples")

    streams = []
    for split_name, split, group in (
        ("train", source.train, "train"),
        ("test", source.test, "eval"),
    ):
        base = make_stream_dataset(
            split.dataset,
            split.targets,
            with_index=options.with_index,
            train_transform=options.train_transform,
            eval_transform=options.eval_transform,
            initial_group=group,
        )
        keys = split.domains if options.kind == DOMAIN_INCREMENTAL else split.targets
        exps = []
        for t, idx in enumerate(_indices_by_group(keys, groups)):
            if not idx:
                what = _describe_group(source, options, groups[t])
                raise ValueError(
                    f"{source.name}: {split_name} experience {t} ({what}) would be empty"
                )
            exps.append(DatasetExperience(dataset=base.subset(idx)))
        streams.append(EagerCLStream(split_name, exps))

    bm = with_classes_timeline(CLScenario(streams))
    _annotate(bm, source, options, groups)
    return bm


def _describe_group(source: DataSource, options: StreamOptions, group: list[int]) -> str:
    if options.kind == DOMAIN_INCREMENTAL:
        return f"domain {source.domain_names[group[0]]!r}"
    return f"classes {[source.class_names[c] for c in group]}"


def _annotate(
    bm: CLScenario, source: DataSource, options: StreamOptions, groups: list[list[int]]
) -> None:
    bm.source = source
    bm.stream_options = options
    bm.scenario_kind = options.kind
    bm.class_names = list(source.class_names)
    bm.num_classes = source.num_classes
    bm.num_train_samples = len(source.train)
    bm.num_test_samples = len(source.test)
    bm.n_experiences = len(groups)
    bm.class_order = list(options.class_order)
    if options.kind == CLASS_INCREMENTAL:
        bm.classes_per_experience = [list(g) for g in groups]
        bm.n_classes_per_exp = [len(g) for g in groups]
        bm.domain_names = None
    else:
        bm.domain_names = list(source.domain_names or [])
        bm.classes_per_experience = [
            sorted(exp.classes_in_this_experience) for exp in bm.train_stream
        ]
        for stream in (bm.train_stream, bm.test_stream):
            for t, exp in enumerate(stream):
                exp.domain_id = t
                exp.domain = bm.domain_names[t]


def seen_test_experiences(benchmark: CLScenario, t: int):
    """The test experiences to evaluate after training experience ``t`` (0-based).

    Both kinds build test experience ``i`` to match train experience ``i`` (its classes for
    class-incremental streams, its domain for domain-incremental ones), so this is
    ``benchmark.test_stream[:t+1]``: every class / domain trained on so far. Pass it to
    ``strategy.eval(...)``.
    """
    n = len(benchmark.train_stream)
    if not 0 <= t < n:
        raise IndexError(f"training experience {t} out of range 0..{n - 1}")
    return benchmark.test_stream[: t + 1]


__all__ = [
    "StreamOptions",
    "build_streams",
    "check_class_order",
    "seeded_class_order",
    "seen_test_experiences",
]
