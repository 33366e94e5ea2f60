"""Run and sweep configs: YAML defaults, then ``key=value`` overrides, then validation.

A run is one (scenario × strategy × memory × seed). A sweep config is a run config plus the grid
keys ``strategies``, ``mem_sizes``, ``seeds`` and optionally ``scenarios`` (a list of mappings
that override the scenario keys, each with a ``label``). Every run key, its default and meaning is
in the schema (:class:`~avalanche_clip.pipeline.config_schema.RunConfig`, listed as :data:`RUN_KEYS`);
unknown keys are errors. This module resolves the mapping (defaults, ``extends:``, overrides,
paths); :func:`~avalanche_clip.pipeline.config_parse.parse_run_config` checks its values, once,
and gives the typed config the rest of the pipeline receives. Overrides use dotted keys and YAML values::

    avalanche-clip run --config experiments/cifar10_proxy.yaml mem_size=200 \\
        strategy_options.gcl.tau=0.1 seed=2

The resolved config is written next to the results; checkpoints carry it, so a resumed run can
refuse state that was produced by a different config. Relative ``data_root`` / ``cache_dir``
paths are resolved against the working directory (``data_root`` keeps the symbolic links it names).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from avalanche_clip.common.errors import AvalancheClipError, ConfigError  # noqa: F401  (re-exported: callers catch it from here)
from avalanche_clip.common.yaml_io import YAMLBoundError, read_yaml
from avalanche_clip.models.factory import DEFAULT_PRETRAINED, default_pretrained, list_models
from avalanche_clip.pipeline.config_schema import RUN_KEYS, SCENARIO_KEYS, default_run_config  # noqa: F401  (re-exported)

#: Grid keys of a sweep config.
SWEEP_KEYS: dict[str, tuple[Any, str]] = {
    "strategies": (["zero-shot", "ce", "gcl", "gdro"], "strategies to compare: names, or variants {label: NAME, strategy: REGISTERED, options: {...}}"),
    "mem_sizes": ([0, 100], "memory sizes"),
    "seeds": ([0], "seeds"),
    "scenarios": (None, "list of scenario overrides, e.g. [{label: cifar10, scenario: ..., data_root: ...}]"),
    "tune": ({}, "avalanche-clip tune settings: trials, validation_fraction, mem_size, seeds, tune_epochs, sampler_seed, strategies"),
    "tuned": (None, "a tuned.yaml written by avalanche-clip tune whose values the sweep applies"),
    "tuned_check": (True, "refuse tuned values found under another protocol (false: apply them with a warning)"),
}


def load_config(path: str | os.PathLike, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file, with ``extends: other.yaml`` (a path relative to this file) merged under it:
    the file it extends gives every key this one does not set (mappings merge key by key), so an
    ablation can name only what it changes. Chains are followed; a cycle is an error."""
    path = Path(path)
    data = load_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"config file {path}: extends must be a file name, got {parent!r}")
    base = (path.parent / parent).resolve()
    if base in _chain or base == path.resolve():
        raise ConfigError(f"config file {path}: extends {parent!r} makes a cycle")
    return merge(load_config(base, (*_chain, path.resolve())), data)


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; expected a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    with path.open() as stream:
        try:
            data = read_yaml(stream) or {}
        except YAMLBoundError as err:
            raise ConfigError(f"config file {path} is refused: {err}") from None
        except yaml.YAMLError as err:  # not a ValueError: name the file instead of a traceback
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping, not {type(data).__name__}")
    return data


def parse_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1, 2]"]`` → ``{"a": {"b": 1}, "c": [1, 2]}`` (values parsed as YAML)."""
    result: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        try:
            node[parts[-1]] = read_yaml(raw) if raw.strip() else None
        except YAMLBoundError as err:
            raise ConfigError(f"override {item!r} is refused: {err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({err.__class__.__name__}: "
                              f"{getattr(err, 'problem', None) or err}); quote it, e.g. key='value'") from None
    return result


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``update`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(
    sources: Sequence[dict[str, Any]], *, sweep: bool = False
) -> dict[str, Any]:
    """Defaults, then each source in order; unknown keys are an error listing the known ones."""
    allowed = dict(RUN_KEYS) | (SWEEP_KEYS if sweep else {})
    config = default_run_config()
    if sweep:
        config.update({k: copy.deepcopy(v) for k, (v, _) in SWEEP_KEYS.items()})
    for source in sources:
        unknown = sorted(set(source) - set(allowed))
        if unknown:
            hint = " (strategies, mem_sizes, seeds and scenarios belong to sweep configs)" if not sweep and set(unknown) & set(SWEEP_KEYS) else ""
            raise ConfigError(
                f"unknown config key(s) {', '.join(map(repr, unknown))}{hint}; known keys: "
                f"{', '.join(sorted(allowed))}"
            )
        config = merge(config, source)
    for key in ("data_root", "cache_dir", "tuned"):
        if config.get(key):
            path = Path(os.path.expandvars(str(config[key]))).expanduser()
            # data_root: absolute, but through the links the user named (a mounted ../shared is
            # reported as given, not as its target); it never enters a run's identity
            config[key] = str(path.absolute() if key == "data_root" else path.resolve())
    for entry in config.get("retention_sets") or []:  # the held-out sets' folders, as data_root
        for key in ("folder", "data_root"):
            if isinstance(entry, dict) and isinstance(entry.get(key), str) and entry[key]:
                entry[key] = str(Path(os.path.expandvars(entry[key])).expanduser().absolute())
    _resolve_default_pretrained(config)
    return config


def _resolve_default_pretrained(config: dict[str, Any]) -> None:
    """``pretrained: default`` → the model's own tag, so config.yaml and the records name the tag
    that ran (an unknown model is left for validation to report)."""
    if config.get("pretrained") == DEFAULT_PRETRAINED and config.get("model") in list_models():
        config["pretrained"] = default_pretrained(config["model"])


def dump_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)
