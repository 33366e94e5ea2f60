"""ZSCL's configured reference set, checked with the run config (built by
:mod:`avalanche_clip.pipeline.zscl_reference`).

``strategy_options: {zscl: {reference: {...}}}`` is checked into a
:class:`~avalanche_clip.scenarios.heldout.HeldOutSet` by ZSCL's option rule
(:func:`~avalanche_clip.strategies.zscl.check_reference`); :func:`reference_spec` reads it back
typed. A reference that is also one of the run's ``retention_sets`` would let ZSCL distil on the
images whose zero-shot accuracy the run reports as retention: :func:`check_reference_apart`
refuses it when the config is made — the same resolved folder (or the same scenario, resolved
data root and split), with a class in common (a set without ``classes`` holds all of its classes;
likewise ``domains``). Two spellings of one folder (``a/../a``, ``~``) are one folder. When the
run is built, :func:`check_reference_files_apart` also compares the sets' resolved image files,
which catches one image reached two ways (a folder inside a scenario's data, a linked folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from avalanche_clip.common.errors import ConfigError
from avalanche_clip.scenarios.heldout import HeldOutSet, heldout_source, parse_heldout_sets
from avalanche_clip.strategies.zscl import check_reference

KEY = "reference"


def reference_spec(config: Any) -> HeldOutSet | None:
    """The run's configured ZSCL reference (None: not ZSCL, or its held-out default); ``config``
    is a :class:`~avalanche_clip.pipeline.config_schema.RunConfig` (or one being made)."""
    if config.strategy != "zscl" or config.options.get(KEY) is None:
        return None
    spec = check_reference(KEY, config.options[KEY])
    if not isinstance(spec, HeldOutSet):  # a built ReferenceSet cannot be written to config.yaml
        raise ConfigError(f"strategy_options.zscl.{KEY} in a run config must be an entry mapping "
                          f"{{folder | scenario, classes, max_per_class}}, got {type(spec).__name__}")
    return spec


def _origin(spec: HeldOutSet) -> tuple[Any, ...]:
    if spec.folder is not None:
        return ("folder", Path(spec.folder).expanduser().resolve())
    root = None if spec.data_root is None else Path(spec.data_root).expanduser().resolve()
    return ("scenario", spec.scenario, root, spec.split)


def _shared(a: Sequence[str] | None, b: Sequence[str] | None) -> bool:
    """Whether two name lists (None: all names) have one in common."""
    return a is None or b is None or bool(set(a) & set(b))


def _describe(spec: HeldOutSet) -> str:
    origin = _origin(spec)
    where = (f"folder {origin[1]}" if origin[0] == "folder"
             else f"scenario {spec.scenario!r}, {spec.split} split, data_root {origin[2]}")
    return f"{where}, classes {list(spec.classes) if spec.classes else 'all'}"


def check_reference_apart(config: Any) -> None:
    """``ConfigError`` naming both when the ZSCL reference is also a retention set of the run
    (module docstring); nothing for other runs."""
    spec = reference_spec(config)
    if spec is None:
        return
    for other in parse_heldout_sets(config.retention_sets):
        if (_origin(other) == _origin(spec) and _shared(other.classes, spec.classes)
                and _shared(other.domains, spec.domains)):
            raise ConfigError(
                f"strategy_options.zscl.{KEY} ({_describe(spec)}) is also retention set {other.name!r} "
                f"({_describe(other)}): ZSCL would distil on the images whose zero-shot accuracy the run "
                "reports as retention; give the reference other images (another folder or other classes)")


def _image_files(spec: HeldOutSet) -> set[Path]:
    """The resolved image files a set holds (none for in-memory images: the origins tell those apart)."""
    return {Path(p).resolve() for p in getattr(heldout_source(spec).test.dataset, "paths", [])}


def check_reference_files_apart(reference: HeldOutSet, retention: Sequence[HeldOutSet]) -> None:
    """``ConfigError`` when the reference holds an image file of a retention set reached another way
    (a folder inside a scenario's data, a linked folder): the files compared once resolved. Lists
    the files of each set (no image is read): called when the run is built."""
    if not retention:
        return
    files = _image_files(reference)
    for other in retention:
        shared = files & _image_files(other)
        if shared:
            raise ConfigError(
                f"strategy_options.zscl.{KEY} ({_describe(reference)}) holds {len(shared)} image file(s) of "
                f"retention set {other.name!r} ({_describe(other)}), e.g. {min(shared)}: ZSCL would distil on "
                "images whose zero-shot accuracy the run reports as retention; give the reference other images")


__all__ = ["KEY", "check_reference_apart", "check_reference_files_apart", "reference_spec"]
