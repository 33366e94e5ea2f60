"""The scenario registry: names, kinds, descriptions and options of every registered scenario,
and :func:`build_source`, the raw data of one. Nothing here imports Avalanche (``import
avalanche`` alone costs ~10 s), so commands that only read the registry (``avalanche-clip list``,
config checks) stay fast; :mod:`avalanche_clip.scenarios.build` turns a source into streams.

Each registered entry is a *source factory* ``factory(root, [domains,] **source_options) ->
DataSource`` with metadata ``kind`` ("class-incremental" / "domain-incremental") and
``description``.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from avalanche_clip.common.registry import Registry
from avalanche_clip.scenarios.source import DOMAIN_INCREMENTAL, DataSource

SCENARIOS: Registry[Callable[..., DataSource]] = Registry("scenario")
"""Registered source factories; ``SCENARIOS.info(name)`` gives ``kind`` and ``description``."""

COMMON_OPTIONS: dict[str, str] = {
    "class_order": "explicit class order (class-incremental only; replaces the seed's order)",
    "max_train_per_class": "keep at most this many train samples per class (per domain and class for "
    "domain-incremental data), chosen by subsample_seed; for quick proxies",
    "max_test_per_class": "the same for the test split",
    "subsample_seed": "seed of the subsampling (default 0, independent of seed)",
    "verify": "decode every image upfront and report all unreadable files (default False)",
    "decode_cache": "decode all images once into memory (small data sets of one image size; "
    "default False; split-cifar100 and digits are in memory already)",
    "cache_dir": "with decode_cache: persist the decoded array as .npy here",
    "decode_workers": "with decode_cache: worker processes used to decode (default 0)",
    "validation_fraction": "evaluate on a stratified validation split of this fraction carved from "
    "the training data (seeded by seed) instead of the test split, which is then never read "
    "(for tuning)",
}

_BUILD_PARAMS = ("root", "domains", "train_only")


def source_options(name: str) -> list[str]:
    """The source-specific options the scenario ``name`` accepts."""
    sig = inspect.signature(SCENARIOS.get(name))
    return [
        p.name
        for p in sig.parameters.values()
        if p.name not in _BUILD_PARAMS and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def scenario_kind(name: str) -> str:
    """``"class-incremental"`` or ``"domain-incremental"``."""
    return SCENARIOS.info(name)["kind"]


def build_source(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    domains: Sequence[str] | None = None,
    train_only: bool = False,
    **options: Any,
) -> DataSource:
    """The raw :class:`DataSource` of scenario ``name`` (no subsampling, no streams);
    ``train_only``: the test split is not read (the source's ``test`` is None)."""
    factory = SCENARIOS.get(name)
    if train_only:
        options = {**options, "train_only": True}
    accepted = source_options(name)
    unknown = sorted(set(options) - set(accepted) - {"train_only"})
    if unknown:
        raise TypeError(
            f"scenario {name!r}: unknown option(s) {unknown}; accepted: {accepted or 'none'} "
            f"(build_scenario also takes {sorted(COMMON_OPTIONS)})"
        )
    if scenario_kind(name) == DOMAIN_INCREMENTAL:
        return factory(root, domains=domains, **options)
    if domains is not None:
        raise ValueError(
            f"scenario {name!r} is class-incremental; 'domains' applies to domain-incremental ones"
        )
    return factory(root, **options)


def check_scenario_options(name: str, options: Mapping[str, Any]) -> None:
    """``TypeError`` naming every option ``build_scenario(name, ...)`` would not accept."""
    accepted = sorted(COMMON_OPTIONS) + source_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise TypeError(
            f"build_scenario({name!r}): unknown option(s) {unknown}; accepted: {accepted} "
            "(besides root, n_experiences, seed, domains, with_index, train_transform, "
            "eval_transform)"
        )


def list_scenarios(pattern: str = "*") -> list[str]:
    """Registered scenario names matching the glob ``pattern``."""
    return SCENARIOS.list(pattern)


__all__ = [
    "COMMON_OPTIONS",
    "SCENARIOS",
    "build_source",
    "check_scenario_options",
    "list_scenarios",
    "scenario_kind",
    "source_options",
]
