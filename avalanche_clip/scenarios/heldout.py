"""Held-out image sets: data a continual stream never touches, scored zero-shot for retention.

A held-out set (a run's ``retention_sets`` entry, :class:`HeldOutSet`) is either

- ``folder``: one ImageFolder, ``<folder>/<class>/<image>`` (e.g. ``pacs/photo`` or
  ``cifar10/test``), the whole folder; or
- ``scenario`` (+ ``data_root``, ``domains`` for a domain-incremental one): a registered
  scenario's ``split`` (``test`` by default, or ``train``), every domain it holds;

restricted to ``classes`` (names, default: all; the set's labels become ``0..k-1`` in that
order) and to at most ``max_per_class`` images per class (drawn by a private generator seeded 0,
as ``max_test_per_class`` draws them). Only file names are read when a set is made; images are
decoded when it is scored.

:func:`heldout_benchmark` serves a set as a one-experience class-incremental benchmark whose
test experience holds the set, so a set goes through the same loaders, transforms and feature
cache (``rebuild_scenario``) as a stream. Its ``train`` split, which nothing trains on, is the
first image of each class: the stream builder needs every class in training, and the feature
cache encodes that split too, so it is kept to ``k`` images.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from avalanche.benchmarks.scenarios.generic_scenario import CLScenario

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.common.paths import check_safe_name
from avalanche_clip.common.values import check_int
from avalanche_clip.scenarios.folders import image_folder_source
from avalanche_clip.scenarios.image_files import ArrayImageDataset, ImageFileDataset
from avalanche_clip.scenarios.registry import SCENARIOS, build_source, scenario_kind
from avalanche_clip.scenarios.source import (
    CLASS_INCREMENTAL,
    DOMAIN_INCREMENTAL,
    DataSource,
    SplitData,
    balanced_subsample_indices,
)
from avalanche_clip.scenarios.streams import StreamOptions, build_streams

HELDOUT_KEYS = ("name", "folder", "scenario", "data_root", "domains", "split", "classes", "max_per_class")
SPLITS = ("test", "train")


@dataclass(frozen=True)
class HeldOutSet:
    """One held-out set, checked (see the module docstring; paths as given, resolved by the config)."""

    name: str
    folder: str | None = None
    scenario: str | None = None
    data_root: str | None = None
    domains: tuple[str, ...] | None = None
    split: str = "test"
    classes: tuple[str, ...] | None = None
    max_per_class: int | None = None


def parse_heldout_sets(value: Any, key: str = "retention_sets") -> tuple[HeldOutSet, ...]:
    """``value`` (a list of mappings with :data:`HELDOUT_KEYS`) as checked sets; ``ConfigError``
    naming the entry, the key, the bad value and what is expected. Folders must exist."""
    if not isinstance(value, list) or not all(isinstance(entry, Mapping) for entry in value):
        raise ConfigError(f"{key} must be a list of mappings {{name, folder | scenario, ...}}, got {value!r}")
    sets = tuple(_parse_entry(entry, f"{key}[{i}]") for i, entry in enumerate(value))
    names = [s.name for s in sets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"{key} names {', '.join(map(repr, repeated))} more than once; give each set its own name")
    return sets


def parse_heldout_set(entry: Any, where: str, *, default_name: str | None = None) -> HeldOutSet:
    """One entry (a mapping with :data:`HELDOUT_KEYS`) checked as a retention set's is, for a set
    configured elsewhere (ZSCL's reference); ``default_name`` stands in for a missing ``name``."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping {{folder | scenario, classes, max_per_class, ...}}, "
                          f"got {entry!r}")
    if default_name is not None and "name" not in entry:
        entry = {"name": default_name, **entry}
    return _parse_entry(entry, where)


def _parse_entry(entry: Mapping[str, Any], where: str) -> HeldOutSet:
    unknown = sorted(set(entry) - set(HELDOUT_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected {list(HELDOUT_KEYS)}")
    if "name" not in entry:
        raise ConfigError(f"{where} needs a name (used in records and reports)")
    name = check_safe_name(entry["name"], f"{where}.name")
    where = f"{where} ({name!r})"
    folder, scenario = entry.get("folder"), entry.get("scenario")
    if (folder is None) == (scenario is None):
        raise ConfigError(f"{where} needs exactly one of folder (an ImageFolder <folder>/<class>/<image>) "
                          f"or scenario (a registered scenario), got folder={folder!r}, scenario={scenario!r}")
    if folder is not None:
        for other in ("data_root", "domains", "split"):
            if other in entry:
                raise ConfigError(f"{where}: {other} applies to scenario sets; a folder set is the whole folder")
        _check_folder(folder, f"{where}.folder")
    else:
        if scenario not in SCENARIOS.list():
            raise ConfigError(f"{where}.scenario={scenario!r} is not a registered scenario; "
                              f"expected one of {SCENARIOS.list()}")
        if entry.get("data_root") is not None:
            _check_folder(entry["data_root"], f"{where}.data_root")
        if entry.get("domains") is not None and scenario_kind(scenario) != DOMAIN_INCREMENTAL:
            raise ConfigError(f"{where}.domains applies to domain-incremental scenarios; {scenario!r} is not one")
    split = entry.get("split", "test")
    if split not in SPLITS:
        raise ConfigError(f"{where}.split={split!r}; expected one of {SPLITS}")
    return HeldOutSet(name=name, folder=folder, scenario=scenario, data_root=entry.get("data_root"),
                      domains=_names(entry.get("domains"), f"{where}.domains"), split=split,
                      classes=_names(entry.get("classes"), f"{where}.classes"),
                      max_per_class=_max_per_class(entry.get("max_per_class"), where))


def _check_folder(path: Any, where: str) -> None:
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where} must be a folder path, got {path!r}")
    if not Path(path).expanduser().is_dir():
        raise ConfigError(f"{where}: {path} is not a folder (missing, or a file); expected the folder holding the set")


def _names(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of names, got {value!r}")
    if not value:
        raise ConfigError(f"{where} is empty; list at least one name, or leave it out for all")
    repeated = sorted({v for v in value if value.count(v) > 1})
    if repeated:
        raise ConfigError(f"{where} lists {repeated} more than once")
    return tuple(value)


def _max_per_class(value: Any, where: str) -> int | None:
    try:
        return check_int(f"{where}.max_per_class", value, 1, nullable=True)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def heldout_source(spec: HeldOutSet) -> DataSource:
    """The set's images as a class-incremental source over its classes (module docstring)."""
    if spec.folder is not None:
        folder = Path(spec.folder).expanduser()
        full = image_folder_source(folder.parent, name=spec.name, train_dir=folder.name, train_only=True)
        split = full.train
    else:
        domains = list(spec.domains) if spec.domains is not None else None
        options = {"domains": domains} if scenario_kind(spec.scenario) == DOMAIN_INCREMENTAL else {}
        full = build_source(spec.scenario, root=spec.data_root, **options)
        split = full.test if spec.split == "test" else full.train
    names = list(spec.classes) if spec.classes is not None else list(full.class_names)
    missing = [n for n in names if n not in full.class_names]
    if missing:
        raise ConfigError(f"held-out set {spec.name!r}: classes {missing} are not among its classes "
                          f"{full.class_names}")
    ids = [full.class_names.index(n) for n in names]
    relabel = {old: new for new, old in enumerate(ids)}
    keep = [i for i, t in enumerate(split.targets) if t in relabel]
    if spec.max_per_class is not None:  # per class over the kept images (not per domain): a set's size
        chosen = balanced_subsample_indices([split.targets[i] for i in keep], spec.max_per_class, 0)
        keep = [keep[i] for i in chosen]
    empty = sorted(set(names) - {names[relabel[split.targets[i]]] for i in keep})
    if empty:
        raise ConfigError(f"held-out set {spec.name!r}: classes {empty} have no images in its {spec.split} split")
    targets = [relabel[split.targets[i]] for i in keep]
    test = SplitData(_relabelled(split.dataset, keep, targets, spec.name), targets)
    first = sorted({label: i for i, label in reversed(list(enumerate(targets)))}.values())
    return DataSource(name=spec.name, kind=CLASS_INCREMENTAL, train=test.subset(first), test=test,
                      class_names=names, default_n_experiences=1, root=full.root)


def _relabelled(dataset: Any, keep: Sequence[int], targets: list[int], name: str) -> Any:
    """Items ``keep`` of ``dataset`` whose labels are ``targets`` (the types the feature cache can
    fingerprint: the same samples keep the same cache entry)."""
    if isinstance(dataset, ImageFileDataset):
        return ImageFileDataset([dataset.paths[i] for i in keep], targets)
    if isinstance(dataset, ArrayImageDataset):
        by_image = [0] * len(dataset.images)  # labels by row of the array, read back through indices
        rows = [dataset.indices[i] for i in keep]
        for row, label in zip(rows, targets, strict=True):
            by_image[row] = label
        return ArrayImageDataset(dataset.images, by_image, rows)
    raise ConfigError(f"held-out set {name!r}: its data are a {type(dataset).__name__}; held-out sets "
                      "read image files or in-memory image arrays")


def heldout_benchmark(spec: HeldOutSet, eval_transform: Callable | None) -> CLScenario:
    """The set as a one-experience benchmark (``test_stream[0]`` is the set; module docstring),
    items ``(x, y, t)`` with ``eval_transform`` applied to every split."""
    source = heldout_source(spec)
    options = StreamOptions(kind=CLASS_INCREMENTAL, n_experiences=1, seed=0,
                            class_order=tuple(range(source.num_classes)), with_index=False,
                            train_transform=eval_transform, eval_transform=eval_transform)
    return build_streams(source, options)


__all__ = ["HELDOUT_KEYS", "HeldOutSet", "heldout_benchmark", "heldout_source", "parse_heldout_set",
           "parse_heldout_sets"]
