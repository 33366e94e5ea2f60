"""``tuned.yaml``: what a tune chose for each strategy, and how a sweep applies it.

Written by ``avalanche-clip tune`` (:mod:`avalanche_clip.pipeline.tune`)::

    tuned_for: {scenarios: [cifar10], model: ..., replay_sampling: union, ...}   # the protocol tuned
    settings: {trials: 20, validation_fraction: 0.1, mem_size: 50, seeds: [0], tune_epochs: false}
    strategies:
      gcl:
        strategy: gcl
        params: {lr: 0.0021, tau: 0.07, gamma: 0.62}    # what the sweep will run
        value: 0.731                                       # best validation accuracy
        trials: 20
        wall_time_s: 143.2                                 # the study's trials, summed
        space: {lr: {type: float, low: 1.0e-05, high: 0.1, log: true}, ...}

``sweep --tuned tuned.yaml`` (or the config key ``tuned``) puts each strategy's ``params`` into its
options (``lr`` and ``train_epochs`` as per-method options), after checking every value against
the strategy's current search space: a value no tune could have chosen is refused. A sweep
variant (``{label: gcl-reset, strategy: gcl, options: ...}``) takes its strategy's tuned values
unless it was tuned itself, and keeps the options it sets. Each run records the options it ran
with (``hyperparameters`` in its records).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from avalanche_clip.common.atomic import atomic_write_text
from avalanche_clip.common.yaml_io import read_yaml
from avalanche_clip.pipeline.config import ConfigError
from avalanche_clip.pipeline.config_schema import scenario_label
from avalanche_clip.pipeline.sweep_schema import SweepConfig, parse_sweep_config
from avalanche_clip.strategies.registry import search_space
from avalanche_clip.strategies.spaces import describe, in_space

#: Config keys a tune's result depends on besides the strategies: a sweep applying tuned values
#: that were tuned under other values of these is refused.
PROTOCOL_KEYS = ("model", "pretrained", "image_size", "trainable", "templates", "train_mb_size",
                 "train_epochs", "optimizer", "weight_decay", "replay_sampling", "memory_share",
                 "steps_per_experience", "head", "train_logits")


@dataclass
class TunedStrategy:
    """The outcome of one strategy's study."""

    strategy: str
    params: dict[str, Any]
    value: float
    trials: int
    wall_time_s: float
    space: dict[str, dict[str, Any]]


def tuned_for(config: SweepConfig | dict[str, Any]) -> dict[str, Any]:
    """The protocol a tune ran under (compared when a sweep applies its values)."""
    sweep = parse_sweep_config(config)
    return {"scenarios": [scenario_label(s) for s in sweep.scenario_configs()],
            **{key: sweep.shared.get(key) for key in PROTOCOL_KEYS}}


def write_tuned(path: Path, config: SweepConfig | dict[str, Any], settings: Any,
                results: dict[str, TunedStrategy], storage: str) -> Path:
    document = {
        "tuned_for": tuned_for(config),
        "settings": {**asdict(settings), "storage": _portable(storage, path.parent)},
        "strategies": {label: asdict(result) for label, result in results.items()},
    }
    header = ("# Written by `avalanche-clip tune`: the best validation values of each strategy.\n"
              "# Apply with `avalanche-clip sweep --tuned <this file>` (values are checked against\n"
              "# each strategy's search space when read).\n")
    return atomic_write_text(path, header + yaml.safe_dump(document, sort_keys=True))


def _portable(storage: str, folder: Path) -> str:
    """The storage URL, relative to ``folder`` when it is a SQLite file in it (committed files
    must not name this machine's paths)."""
    prefix = "sqlite:///"
    if storage.startswith(prefix):
        database = Path(storage[len(prefix):])
        if database.parent.resolve() == folder.resolve():
            return f"{prefix}{database.name} (beside this file)"
    return storage


def read_tuned(path: str | Path) -> dict[str, Any]:
    """The document of a ``tuned.yaml``, every value checked against its strategy's space."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"tuned file {path} does not exist (write one with avalanche-clip tune)")
    try:
        document = read_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"tuned file {path} is not valid YAML: {err}") from None
    strategies = document.get("strategies") if isinstance(document, dict) else None
    if not isinstance(strategies, dict):
        raise ConfigError(f"tuned file {path} has no 'strategies' mapping")
    tune_epochs = bool((document.get("settings") or {}).get("tune_epochs", False))
    for label, entry in strategies.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("params"), dict) or "strategy" not in entry:
            raise ConfigError(f"tuned file {path}: strategy {label!r} needs 'strategy' and 'params'")
        space = search_space(entry["strategy"], tune_epochs=tune_epochs)
        for name, value in entry["params"].items():
            if name not in space:
                raise ConfigError(
                    f"tuned file {path}: {label}.{name} is not in the search space of "
                    f"{entry['strategy']!r} ({', '.join(space) or 'empty'})"
                )
            if not in_space(value, space[name]):
                raise ConfigError(
                    f"tuned file {path}: {label}.{name}={value!r} is outside its search space "
                    f"({describe(space[name])})"
                )
    return document


def apply_tuned(config: SweepConfig | dict[str, Any], path: str | Path) -> SweepConfig:
    """The sweep ``config`` with the tuned values of ``path`` in its strategies' options.

    Raises ``ConfigError`` when the tune ran under another protocol (:data:`PROTOCOL_KEYS`; with
    ``tuned_check: false`` in the config, a warning instead) or a value is outside its space.
    """
    config = parse_sweep_config(config)  # tuned_check checked there, with the other sweep keys
    check = config.tuned_check
    document = read_tuned(path)
    recorded = document.get("tuned_for") or {}
    current = tuned_for(config)
    differing = [key for key in PROTOCOL_KEYS if key in recorded and recorded[key] != current[key]]
    if differing:
        detail = "; ".join(f"{k}: tuned {recorded[k]!r} vs now {current[k]!r}" for k in differing)
        if check:
            raise ConfigError(f"tuned file {path} was tuned under another protocol ({detail}); set "
                              "tuned_check: false to apply its values anyway (an ablation)")
        warnings.warn(f"applying values tuned under another protocol ({detail})", stacklevel=2)
    entries = []
    tuned = document["strategies"]
    # each entry's label and strategy as the sweep reads them (checked when the config was made)
    for entry, (label, strategy, _) in zip(copy.deepcopy(config.strategies), config.entries, strict=True):
        # a variant (gcl-reset) takes its strategy's tuned values unless it was tuned itself;
        # what the variant sets (reset_loss_state, gamma=1, ...) stays as it says
        source = label if label in tuned else strategy if strategy in tuned else None
        if source is None:
            entries.append(entry)
            continue
        variant = {"label": entry, "strategy": entry} if isinstance(entry, str) else dict(entry)
        variant["options"] = {**tuned[source]["params"], **(variant.get("options") or {})}
        entries.append(variant)
    return config.replace(strategies=entries)  # entries of the file the sweep does not run are left unused
