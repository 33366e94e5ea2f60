"""Run and sweep configs: YAML defaults, then ``key=value`` overrides, then validation.

A run is one (scenario × strategy × memory × seed). A sweep config is a run config plus the grid
keys ``strategies``, ``mem_sizes``, ``seeds`` and optionally ``scenarios`` (a list of mappings
that override the scenario keys, each with a ``label``). Every key, its default and meaning is in
:data:`RUN_KEYS`; unknown keys are errors. Overrides use dotted keys and YAML values::

    avalanche-clip run --config experiments/cifar10_proxy.yaml mem_size=200 \\
        strategy_options.gcl.tau=0.1 seed=2

The resolved config is written next to the results; checkpoints carry it, so a resumed run can
refuse state that was produced by a different config. Relative ``data_root`` / ``cache_dir``
paths are resolved against the working directory (``data_root`` keeps the symbolic links it names).
"""

from __future__ import annotations

import copy
import importlib.util
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from avalanche_clip.common.errors import AvalancheClipError, ConfigError  # noqa: F401  (re-exported: callers catch it from here)
from avalanche_clip.common.yaml_io import YAMLBoundError, read_yaml
from avalanche_clip.models.factory import DEFAULT_PRETRAINED, default_pretrained, list_models

#: Every run key: (default, description).
RUN_KEYS: dict[str, tuple[Any, str]] = {
    "scenario": ("digits", "registered scenario name (avalanche-clip list)"),
    "label": (None, "name of the scenario in records and reports (default: the scenario name)"),
    "data_root": (None, "data root of the scenario (not needed by digits)"),
    "n_experiences": (None, "stream length (default: the scenario's)"),
    "domains": (None, "domain-incremental: domain names in stream order"),
    "scenario_options": ({}, "extra build_scenario options (max_train_per_class, decode_cache, ...)"),
    "model": ("effnet-lite0-clip", "open_clip architecture or offline config"),
    "pretrained": ("default", "open_clip tag, offline tag or local checkpoint path (null: random "
                   "init); default: the model's own (avalanche-clip list); records name the tag that ran"),
    "image_size": (None, "input resolution override"),
    "templates": ("photo", "prompt template set or list of '{}' templates"),
    "trainable": ("projections", "what trains: all, image, text, projections, last:K, none"),
    "strategy": ("gcl", "registered strategy name"),
    "strategy_label": (None, "name of the method in records and reports (default: the strategy name; sweep variants set it)"),
    "strategy_options": ({}, "per-strategy hyper-parameters: {strategy: {name: value}}"),
    "mem_size": (0, "total replay memory (samples)"),
    "train_epochs": (1, "epochs per experience: passes over each experience's new data (the step budget)"),
    "steps_per_experience": (None, "explicit step budget per experience, the same for every method (null: train_epochs passes over the new data)"),
    "replay_sampling": ("union", "batch composition of every replay method: union (uniform over new data ∪ memory) or share"),
    "memory_share": (0.5, "memory fraction of each batch with replay_sampling=share"),
    "head": ("text", "classifier of every method: text (CLIP prompts over the seen classes) or linear (ablation)"),
    "train_mb_size": (32, "training mini-batch size"),
    "eval_mb_size": (256, "evaluation mini-batch size"),
    "lr": (1e-3, "learning rate (same for every method)"),
    "weight_decay": (0.1, "weight decay (same for every method)"),
    "optimizer": ("adamw", "adamw or sgd (same for every method)"),
    "amp": ("fp32", "mixed precision on CUDA: fp32, bf16, fp16"),
    "seed": (0, "seed of the class order, initialisation and sampling"),
    "device": ("cpu", "cpu, cuda, cuda:N"),
    "num_workers": (0, "data-loader worker processes"),
    "threads": (None, "torch intra-op threads of each run (default: torch's, one per core; "
                "cores / workers under sweep --workers); threads=1 beside other jobs"),
    "feature_cache": ("auto", "reuse frozen image-trunk features across runs: auto (when the trunk is frozen), true (required), false"),
    "cache_dir": (None, "feature cache folder (default: $AVALANCHE_CLIP_CACHE or ~/.cache/avalanche-clip)"),
    "zero_shot_floor": (True, "record the zero-shot accuracy of the untrained model"),
    "checkpoint": (True, "checkpoint at every experience boundary (resumable runs)"),
    "progress": (True, "progress bars"),
    "world_size": (None, "processes that trained the run: run writes torchrun's count (1 in one "
                   "process) to config.yaml; a value given here is replaced by the launch's"),
    "loggers": ([], "Avalanche loggers besides the text log, under the run folder's logs/: any of "
                "tensorboard, csv, wandb (offline unless WANDB_MODE, WANDB_API_KEY or wandb login set it up)"),
}
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
SCENARIO_KEYS = ("scenario", "label", "data_root", "n_experiences", "domains", "scenario_options")
_POSITIVE_INTS = ("train_mb_size", "eval_mb_size")
_NON_NEGATIVE_INTS = ("train_epochs", "mem_size", "num_workers", "seed")
_POSITIVE_INTS_OR_NULL = ("n_experiences", "image_size")  # null: the scenario's / model's own
_BOOLEANS = ("zero_shot_floor", "checkpoint", "progress")
#: Avalanche loggers a config may name (built by avalanche_clip.pipeline.run_loggers).
LOGGER_CHOICES = ("tensorboard", "csv", "wandb")


def default_run_config() -> dict[str, Any]:
    return {key: copy.deepcopy(default) for key, (default, _) in RUN_KEYS.items()}


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
    _resolve_default_pretrained(config)
    return config


def _resolve_default_pretrained(config: dict[str, Any]) -> None:
    """``pretrained: default`` → the model's own tag, so config.yaml and the records name the tag
    that ran (an unknown model is left for validation to report)."""
    if config.get("pretrained") == DEFAULT_PRETRAINED and config.get("model") in list_models():
        config["pretrained"] = default_pretrained(config["model"])


def check_common(config: dict[str, Any]) -> None:
    """Type and range checks that need no registry (the rest is in ``experiment.validate``)."""
    for key in _POSITIVE_INTS + _NON_NEGATIVE_INTS + _POSITIVE_INTS_OR_NULL:
        value = config.get(key)
        if value is None and key in _POSITIVE_INTS_OR_NULL:
            continue
        minimum = 0 if key in _NON_NEGATIVE_INTS else 1
        if not _is_int(value) or value < minimum:
            null = " or null" if key in _POSITIVE_INTS_OR_NULL else ""
            raise ConfigError(f"{key} must be an integer >= {minimum}{null}, got {value!r}")
    for key in _BOOLEANS:
        if not isinstance(config.get(key), bool):
            raise ConfigError(f"{key} must be true or false, got {config.get(key)!r}")
    if not _is_finite(config["lr"]) or config["lr"] <= 0:
        raise ConfigError(f"lr must be a finite number > 0, got {config['lr']!r}")
    if not _is_finite(config["weight_decay"]) or config["weight_decay"] < 0:
        raise ConfigError(f"weight_decay must be a finite number >= 0, got {config['weight_decay']!r}")
    threads = config.get("threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads must be an integer >= 1 or null (torch's default), got {threads!r}")
    if not isinstance(config["strategy_options"], dict) or not all(
        isinstance(v, dict) for v in config["strategy_options"].values()
    ):
        raise ConfigError(
            "strategy_options must map strategy names to mappings of hyper-parameters, e.g. "
            "{gcl: {tau: 0.05}}"
        )
    if not isinstance(config["scenario_options"], dict):
        raise ConfigError(f"scenario_options must be a mapping, got {config['scenario_options']!r}")
    loggers_problem = check_loggers(config.get("loggers", []))
    if loggers_problem:
        raise ConfigError(loggers_problem)


def check_loggers(value: Any) -> str | None:
    """Why ``value`` is not a valid ``loggers`` value (one line), or None when it is."""
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        return f"loggers must be a list of logger names ({', '.join(LOGGER_CHOICES)}), got {value!r}"
    unknown = [name for name in value if name not in LOGGER_CHOICES]
    if unknown:
        return (f"unknown logger(s) {', '.join(map(repr, unknown))} in loggers; known loggers: "
                f"{', '.join(LOGGER_CHOICES)}")
    repeated = sorted({name for name in value if value.count(name) > 1})
    if repeated:
        return f"loggers lists {', '.join(map(repr, repeated))} more than once; name each logger once"
    if "wandb" in value and importlib.util.find_spec("wandb") is None:
        return "loggers: wandb needs the wandb package, which is not installed: pip install wandb"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def dump_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=True, default_flow_style=False)
